"""Evaluation metrics against cases small enough to compute by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cloud.evaluation.metrics import (
    EvaluationReport,
    PixelSampler,
    counts_by_type,
    fpr_at_full_recall,
    image_auroc,
    latency_stats,
    operating_point,
    per_defect_metrics,
)

GOOD_SCORES = [0.1, 0.2, 0.3, 0.4]


def test_perfect_separation_gives_auroc_1_and_no_false_alarm_at_full_recall() -> None:
    labels = [False] * 4 + [True] * 3
    scores = [*GOOD_SCORES, 2.0, 3.0, 4.0]

    assert image_auroc(labels, scores) == 1.0
    assert fpr_at_full_recall(labels, scores) == (0.0, 2.0)


def test_one_overlapping_defect_costs_exactly_the_good_images_above_it() -> None:
    # The faint defect scores 0.25: goods 0.3 and 0.4 must alarm to catch it.
    labels = [False] * 4 + [True] * 3
    scores = [*GOOD_SCORES, 0.25, 3.0, 4.0]

    assert fpr_at_full_recall(labels, scores) == (0.5, 0.25)
    # 12 pairs, 2 misordered (0.25 below 0.3 and 0.4).
    assert image_auroc(labels, scores) == pytest.approx(10 / 12)


def test_a_good_image_tied_with_the_lowest_defect_is_a_false_alarm() -> None:
    assert fpr_at_full_recall([False, False, True], [0.5, 1.0, 1.0]) == (0.5, 1.0)


def test_operating_point_flags_scores_at_or_above_the_threshold() -> None:
    labels = [False, False, False, False, True, True]
    scores = [0.1, 0.2, 1.0, 1.5, 0.9, 1.0]

    point = operating_point(labels, scores, 1.0)

    assert point.recall == 0.5
    assert point.false_alarm_rate == 0.5
    assert (point.missed, point.false_alarms) == (1, 2)


def test_nan_scores_count_as_abnormal() -> None:
    labels = [False, False, True]
    scores = [0.1, float("nan"), 5.0]

    assert operating_point(labels, scores, 1.0).false_alarm_rate == 0.5
    assert image_auroc(labels, scores) == 0.5  # the NaN good ranks above the defect


def test_one_class_only_has_no_auroc_and_no_full_recall_point() -> None:
    assert image_auroc([False, False], [0.1, 0.2]) is None
    assert fpr_at_full_recall([True], [1.0]) is None
    point = operating_point([False, False], [0.1, 2.0], 1.0)
    assert point.recall is None and point.false_alarm_rate == 0.5


def test_per_defect_auroc_compares_each_type_with_good_only() -> None:
    types = ["good", "good", "scratch", "scratch", "dent"]
    scores = [0.1, 0.5, 0.9, 0.3, 2.0]

    result = per_defect_metrics(types, scores, threshold=1.0)

    assert sorted(result) == ["dent", "scratch"]
    assert result["dent"].auroc == 1.0
    assert result["scratch"].auroc == pytest.approx(3 / 4)
    assert result["scratch"].recall_at_threshold == 0.0
    assert result["dent"].count == 1 and result["scratch"].min_score == pytest.approx(0.3)


def test_counts_put_good_first_then_defects_sorted() -> None:
    assert list(counts_by_type(["b", "good", "a", "b"]).items()) == [
        ("good", 1),
        ("a", 1),
        ("b", 2),
    ]


def test_pixel_auroc_uses_masks_resized_with_nearest_and_good_as_all_normal() -> None:
    anomaly_map = np.zeros((8, 8), dtype=np.float32)
    anomaly_map[:4, :4] = 5.0
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[:8, :8] = 255  # at map size: exactly the hot quarter
    sampler = PixelSampler(pixels_per_image=64)

    sampler.add(anomaly_map, mask, is_anomalous=True)
    sampler.add(np.zeros((8, 8), np.float32), None, is_anomalous=False)
    sampler.add(np.full((8, 8), 9.0, np.float32), None, is_anomalous=True)  # no mask: skipped

    assert sampler.auroc() == 1.0
    assert (sampler.n_images, sampler.n_samples) == (2, 128)


def test_pixel_auroc_is_none_without_any_defect_mask() -> None:
    sampler = PixelSampler()
    sampler.add(np.zeros((4, 4), np.float32), None, is_anomalous=False)
    assert sampler.auroc() is None


def test_pixel_sampling_is_deterministic_and_bounded() -> None:
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 32, 32)).astype(np.float32)
    masks = (rng.random((3, 32, 32)) > 0.7).astype(np.uint8)

    def run() -> float | None:
        sampler = PixelSampler(pixels_per_image=100, seed=0)
        for anomaly_map, mask in zip(maps, masks, strict=True):
            sampler.add(anomaly_map + mask, mask, is_anomalous=True)
        assert sampler.n_samples == 300
        return sampler.auroc()

    assert run() == run()


def test_latency_stats_median_and_p95() -> None:
    stats = latency_stats([float(value) for value in range(1, 101)], batch_size=4)
    assert stats.median_ms == 50.5
    assert stats.p95_ms == pytest.approx(95.05)
    assert stats.n_images == 100


def test_report_is_frozen_and_serialises_nan_as_null() -> None:
    schema_keys = set(EvaluationReport.model_fields)
    for key in ("image_auroc", "pixel_auroc", "fpr_at_full_recall", "recall_at_threshold"):
        assert key in schema_keys
    point = operating_point([True], [math.nan], 1.0)
    assert json.loads(point.model_dump_json())["recall"] == 1.0
    with pytest.raises(ValueError, match="frozen"):
        point.recall = 0.0  # type: ignore[misc]
