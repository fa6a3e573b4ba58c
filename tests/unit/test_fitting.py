import numpy as np
import pytest
import torch

from cloud.detector.fitting import calibration_stats, greedy_coreset, patch_normalisation


def test_coreset_covers_every_cluster() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    points = torch.cat([c + torch.randn(200, 2, generator=generator) for c in centres])
    chosen = greedy_coreset(points, 4, seed=1)
    clusters = {int(index) // 200 for index in chosen}
    assert clusters == {0, 1, 2, 3}


def test_coreset_larger_than_data_keeps_all() -> None:
    points = torch.randn(10, 3)
    assert greedy_coreset(points, 50).tolist() == list(range(10))


def test_calibration_z_scores_and_threshold() -> None:
    raw = np.arange(1.0, 22.0)
    stats = calibration_stats(raw, target_false_alarm_rate=0.1, band_margin=0.5)
    assert stats.location == pytest.approx(11.0)
    assert stats.scale == pytest.approx(np.std(raw, ddof=1))
    calibrated = np.array(stats.calibrated_scores)
    assert calibrated.mean() == pytest.approx(0.0)
    assert stats.threshold == pytest.approx(np.quantile(calibrated, 0.9))
    assert stats.uncertain_low == pytest.approx(stats.threshold - 0.5)


def test_threshold_never_sits_inside_normal() -> None:
    raw = np.array([1.0, 1.0, 1.0, 1.1])
    stats = calibration_stats(raw, target_false_alarm_rate=0.5, band_margin=0.5)
    assert stats.threshold >= 1.0


def test_constant_calibration_scores_do_not_explode() -> None:
    stats = calibration_stats(np.full(5, 2.0), target_false_alarm_rate=0.05, band_margin=0.5)
    assert stats.scale == pytest.approx(0.1)


def _maps_with_a_busy_border(count: int, seed: int = 0) -> torch.Tensor:
    """Good maps whose outer ring is both higher and far more variable, as at real borders."""
    generator = torch.Generator().manual_seed(seed)
    maps = 10.0 + torch.randn(count, 8, 8, generator=generator)
    border = torch.ones(8, 8, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    maps[:, border] += 5.0 + 4.0 * torch.randn(count, int(border.sum()), generator=generator)
    return maps


def test_patch_normalisation_learns_where_normal_varies() -> None:
    location, scale = patch_normalisation(_maps_with_a_busy_border(400), prior_images=0.0)
    assert location[0, 0] == pytest.approx(15.0, abs=0.6)
    assert location[4, 4] == pytest.approx(10.0, abs=0.3)
    assert scale[0, 0] > 3.0 * scale[4, 4]
    # A centre patch 5 units high is a stronger anomaly than a border patch 5 units high.
    centre_hit = (15.0 - location[4, 4]) / scale[4, 4]
    border_hit = (20.0 - location[0, 0]) / scale[0, 0]
    assert centre_hit > 2.0 * border_hit


def test_patch_normalisation_trusts_few_images_little() -> None:
    maps = _maps_with_a_busy_border(3)
    location, scale = patch_normalisation(maps, prior_images=8.0)
    global_mean = float(maps.mean())
    # Three images move each location only 3/11 of the way from the global mean.
    local = maps.mean(dim=0)
    expected = 3 / 11 * local + 8 / 11 * global_mean
    assert torch.allclose(location, expected, atol=1e-5)
    assert float(scale.min()) >= 0.5 * float(scale.median()) - 1e-6


def test_patch_normalisation_of_one_image_stays_finite() -> None:
    location, scale = patch_normalisation(torch.full((1, 4, 4), 3.0))
    assert torch.isfinite(location).all()
    assert (scale > 0).all()
