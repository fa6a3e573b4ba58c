"""AUPRO (MVTec's per-region overlap) on masks small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.evaluation.metrics import fpr_at_recall
from cloud.evaluation.region_overlap import RegionOverlap, aupro


def test_a_region_scored_above_every_normal_pixel_gives_1() -> None:
    assert aupro([0.1, 0.2, 0.3, 0.4], [np.array([0.9, 0.8])]) == pytest.approx(1.0)


def test_a_region_scored_below_every_normal_pixel_gives_0() -> None:
    # 100 normal pixels above both region pixels: PRO stays 0 until FPR 1.
    assert aupro(np.linspace(0.5, 1.0, 100), [np.array([0.1, 0.2])]) == pytest.approx(0.0)


def test_half_a_region_found_before_any_false_positive_gives_one_half() -> None:
    # Region pixel 0.5 is flagged first (PRO 0.5); its other pixel 0.05 only after every
    # normal pixel (FPR 1), so PRO is 0.5 over FPR 0..0.3.
    assert aupro([0.1, 0.2, 0.3, 0.4], [np.array([0.5, 0.05])]) == pytest.approx(0.5)


def test_each_region_weighs_the_same_whatever_its_size() -> None:
    big_found = np.full(99, 0.9)
    small_missed = np.array([0.0])
    # The pixel-weighted overlap would be 0.99; per region it is (1 + 0) / 2.
    assert aupro(np.linspace(0.1, 0.5, 50), [big_found, small_missed]) == pytest.approx(0.5)


def test_the_curve_is_interpolated_at_the_fpr_limit() -> None:
    # 10 normal pixels; the region's one pixel ties with nothing and sits below 4 of them:
    # PRO jumps 0 -> 1 at FPR 0.4, beyond 0.3, so the area up to 0.3 is 0.
    normal = np.arange(10, dtype=float)
    assert aupro(normal, [np.array([5.5])]) == pytest.approx(0.0)
    # Below 2 of them: PRO 1 from FPR 0.2, area 0.1 of 0.3.
    assert aupro(normal, [np.array([7.5])]) == pytest.approx(1.0 / 3.0)


def test_no_region_or_no_normal_pixel_gives_none() -> None:
    assert aupro([0.1], []) is None
    assert aupro([], [np.array([1.0])]) is None


def test_collector_splits_masks_into_connected_regions() -> None:
    collector = RegionOverlap()
    good = np.zeros((4, 4), dtype=np.float32)
    collector.add(good, None, is_anomalous=False)
    anomaly_map = np.zeros((4, 4), dtype=np.float32)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0:2] = 255  # region one: found (scored 1)
    mask[3, 3] = 255  # region two, not touching: missed (scored 0 like the normal pixels)
    anomaly_map[0, 0:2] = 1.0
    collector.add(anomaly_map, mask, is_anomalous=True)

    assert collector.n_regions == 2
    # Threshold 1: PRO 0.5 at FPR 0; threshold 0 flags all (FPR 1, PRO 1). The straight
    # line between them is 0.65 at FPR 0.3: area 0.3 * (0.5 + 0.65) / 2, over 0.3.
    assert collector.aupro() == pytest.approx(0.575)


def test_collector_keeps_a_one_pixel_defect_when_shrinking_the_map() -> None:
    collector = RegionOverlap(max_side=4)
    anomaly_map = np.zeros((8, 8), dtype=np.float32)
    anomaly_map[5, 5] = 8.0
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[5, 5] = 255
    collector.add(anomaly_map, mask, is_anomalous=True)
    collector.add(np.zeros((8, 8), dtype=np.float32), None, is_anomalous=False)

    assert collector.n_regions == 1
    assert collector.aupro() == pytest.approx(1.0)


def test_false_alarms_at_95_percent_of_defects_caught() -> None:
    labels = [False] * 4 + [True] * 20
    defects = [10.0] * 19 + [0.15]  # one faint defect of 20: 95% are caught at 10
    scores = [0.1, 0.2, 0.3, 0.4, *defects]

    assert fpr_at_recall(labels, scores, 0.95) == (0.0, 10.0)
    assert fpr_at_recall(labels, scores, 1.0) == (0.75, 0.15)
