import numpy as np
import pytest
import torch

from cloud.detector.fitting import calibration_stats, greedy_coreset


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
