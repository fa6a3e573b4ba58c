import numpy as np
import pytest
import torch

from cloud.detector.fitting import (
    border_tail_factors,
    calibration_stats,
    greedy_coreset,
    out_of_fold_normalised,
    patch_normalisation,
)


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


def _z_maps_with_heavy_border_tails(count: int, tail: float) -> torch.Tensor:
    """Normalised good maps (mean 0, spread 1 everywhere) whose outer ring has heavier tails."""
    generator = torch.Generator().manual_seed(3)
    maps = torch.randn(count, 10, 10, generator=generator)
    ring0 = torch.ones(10, 10, dtype=torch.bool)
    ring0[1:-1, 1:-1] = False
    # Student-t-like: same spread in the bulk, rare big excursions at the border.
    spikes = torch.rand(count, int(ring0.sum()), generator=generator) < 0.03
    maps[:, ring0] += spikes * tail
    return maps


def test_border_tail_factors_match_the_border_tail_to_the_interior() -> None:
    maps = _z_maps_with_heavy_border_tails(400, tail=4.0)
    factors = border_tail_factors(maps)
    assert float(factors[0, 0]) > 1.5 and float(factors[0, 5]) == float(factors[0, 0])
    assert float(factors[5, 5]) == 1.0 and float(factors[1, 1]) == pytest.approx(1.0, abs=0.1)
    interior = torch.quantile(maps[:, 2:-2, 2:-2].flatten(), 0.99)
    border = torch.quantile((maps / factors)[:, 0, :].flatten(), 0.99)
    assert float(border) == pytest.approx(float(interior), rel=0.15)


def test_border_tail_factors_never_sharpen_and_stay_bounded() -> None:
    plain = border_tail_factors(_z_maps_with_heavy_border_tails(400, tail=0.0))
    assert float(plain.min()) == 1.0 and float(plain.max()) < 1.2
    wild = border_tail_factors(_z_maps_with_heavy_border_tails(400, tail=100.0))
    assert float(wild.max()) == 2.0
    tiny = border_tail_factors(torch.randn(5, 3, 3))  # no interior: nothing to match
    assert torch.equal(tiny, torch.ones(3, 3))


def test_out_of_fold_normalisation_does_not_see_its_own_maps() -> None:
    maps = _maps_with_a_busy_border(50)
    maps[7] += 30.0  # one odd good image
    held_out = out_of_fold_normalised(maps, prior_images=0.0)
    in_sample_location, in_sample_scale = patch_normalisation(maps, prior_images=0.0)
    in_sample = (maps[7] - in_sample_location) / in_sample_scale
    # Its own statistics would have absorbed part of the excursion.
    assert float(held_out[7].mean()) > float(in_sample.mean()) + 1.0
