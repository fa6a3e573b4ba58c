"""The retrain's pure parts: the gate's rules, recall calibration, the next set, the trigger."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud.calibration import SCORE_MARGIN, recall_threshold
from cloud.errors import ConfigError, LinewatchError, RetrainBusy
from cloud.retrain.gate import ItemSource, RegressionItem, judge
from cloud.retrain.lock import model_lock
from cloud.retrain.training_set import (
    ReviewedSample,
    ReviewedSamples,
    SetImage,
    next_training_set,
)
from cloud.retrain.watch import parse_duration, should_retrain

GOOD = RegressionItem("test/good/000.png", False, ItemSource.TEST)
DEFECT = RegressionItem("test/crack/000.png", True, ItemSource.TEST)
NORMAL = RegressionItem("sample n1", False, ItemSource.REVIEW)
REVIEWED_DEFECT = RegressionItem("sample d1", True, ItemSource.REVIEW)
ITEMS = [GOOD, DEFECT, NORMAL, REVIEWED_DEFECT]


def test_gate_passes_when_reviewed_false_alarms_fall_and_nothing_is_missed() -> None:
    report = judge(
        ITEMS, [0.2, 3.0, 1.5, 2.0], [0.1, 2.5, 0.4, 1.2],
        production_threshold=1.0, candidate_threshold=1.0,
    )  # fmt: skip
    assert report.passed, report.reasons
    assert (report.false_alarms_before, report.false_alarms_after) == (1, 0)
    assert report.new_misses == []


def test_gate_names_each_defect_production_caught_and_the_candidate_misses() -> None:
    report = judge(
        ITEMS, [0.2, 3.0, 1.5, 2.0], [0.1, 0.9, 0.4, 0.5],
        production_threshold=1.0, candidate_threshold=1.0,
    )  # fmt: skip
    assert not report.passed
    assert report.new_misses == ["test/crack/000.png", "sample d1"]
    assert "2 defect(s) production catches are missed" in report.reasons[0]


def test_a_defect_production_also_missed_is_not_a_new_miss() -> None:
    report = judge(
        ITEMS, [0.2, 0.5, 1.5, 2.0], [0.1, 0.6, 0.4, 1.1],
        production_threshold=1.0, candidate_threshold=1.0,
    )  # fmt: skip
    assert report.passed
    assert (report.misses_before, report.misses_after) == (1, 1)


def test_gate_fails_when_good_test_alarms_rise_or_reviewed_ones_do_not_fall() -> None:
    report = judge(
        ITEMS, [0.2, 3.0, 1.5, 2.0], [1.1, 3.0, 1.4, 2.0],
        production_threshold=1.0, candidate_threshold=1.0,
    )  # fmt: skip
    assert not report.passed
    assert any("good test images rose from 0 to 1" in reason for reason in report.reasons)
    assert any("reviewed normals did not fall" in reason for reason in report.reasons)


def test_each_model_is_judged_at_its_own_threshold() -> None:
    report = judge(
        ITEMS, [0.2, 3.0, 1.5, 2.0], [0.2, 0.9, 0.6, 0.9],
        production_threshold=1.0, candidate_threshold=0.8,
    )  # fmt: skip
    assert report.passed, report.reasons


def test_recall_threshold_catches_the_target_share_below_the_ceiling() -> None:
    found = recall_threshold([5.0, 4.0, 3.0, 0.5], recall=0.75, ceiling=4.5)
    assert found.threshold == pytest.approx(3.0 - SCORE_MARGIN)
    assert found.recall == 0.75
    assert found.limited_by == "recall"
    every = recall_threshold([5.0, 4.0, 3.0, 0.5], recall=1.0, ceiling=4.5)
    assert every.threshold == pytest.approx(0.5 - SCORE_MARGIN)
    assert every.recall == 1.0


def test_recall_threshold_never_rises_above_the_good_quantile() -> None:
    found = recall_threshold([9.0, 8.0], recall=1.0, ceiling=2.0)
    assert found.threshold == 2.0
    assert found.limited_by == "good-quantile"


@pytest.mark.parametrize("recall", [0.0, 1.5])
def test_recall_outside_the_unit_interval_is_refused(recall: float) -> None:
    with pytest.raises(LinewatchError, match="recall"):
        recall_threshold([1.0], recall=recall, ceiling=2.0)


def _reviewed(sample_id: str, sha: str, label: str = "normal") -> ReviewedSample:
    return ReviewedSample(sample_id, label, "line3", Path(f"/store/{sha}.png"), sha)


def test_next_set_keeps_previous_images_and_adds_new_normals_once() -> None:
    previous = [
        SetImage(Path("/data/a.png"), "a" * 64, "fit"),
        SetImage(Path("/data/b.png"), "b" * 64, "calibration"),
        SetImage(Path("/store/c.png"), "c" * 64, "fit", "s-old"),
    ]
    reviewed = ReviewedSamples(
        normals=(
            _reviewed("s-old", "c" * 64),
            _reviewed("s1", "d" * 64),
            _reviewed("s2", "d" * 64),
        ),
        defects=(),
        skipped=("sample s9 (normal): image gone",),
    )
    built = next_training_set(previous, reviewed, data_root=Path("/data"))
    assert built.previous == tuple(previous)
    assert [image.sample_id for image in built.added] == ["s1"]
    assert all(image.role == "fit" for image in built.added)
    assert built.reviewed_normals_used == 2
    assert built.skipped == ("sample s9 (normal): image gone",)


def test_a_learnt_normal_later_corrected_to_defect_is_dropped() -> None:
    previous = [
        SetImage(Path("/data/a.png"), "a" * 64, "fit"),
        SetImage(Path("/store/c.png"), "c" * 64, "fit", "s-old"),
    ]
    reviewed = ReviewedSamples(normals=(), defects=(_reviewed("s-old", "c" * 64, "defect"),))
    built = next_training_set(previous, reviewed, data_root=None)
    assert [image.sample_id for image in built.images] == [None]


def test_retrain_is_due_by_count_or_by_period_with_new_reviews() -> None:
    assert should_retrain(50, 10.0, every_s=86400.0, min_new=50).due
    assert not should_retrain(49, 10.0, every_s=86400.0, min_new=50).due
    assert should_retrain(1, 90000.0, every_s=86400.0, min_new=50).due
    assert not should_retrain(0, 90000.0, every_s=86400.0, min_new=None).due
    assert not should_retrain(3, 90000.0, every_s=None, min_new=5).due


def test_durations_read_as_seconds() -> None:
    assert parse_duration("24h") == 86400.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("1.5m") == 90.0
    with pytest.raises(ConfigError, match=r"e\.g\. 24h"):
        parse_duration("daily")


def test_the_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path: Path) -> None:
    lock = tmp_path / "metal.lock"
    lock.write_text(f"{os.getppid()}\n")
    with pytest.raises(RetrainBusy, match=f"pid {os.getppid()}"), model_lock(tmp_path, "metal"):
        pass
    lock.write_text("999999999\n")  # no such process: a crashed retrain's lock
    with model_lock(tmp_path, "metal") as held:
        assert held.read_text().strip() == str(os.getpid())
    assert not lock.exists()
