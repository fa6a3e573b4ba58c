"""Reading a retrain's gate record back for the Models pages, and the registry read deadline.

The records are built by ``gate_record``, the function retrain itself uses, from
a report the real gate (``judge``) decided on hand-written scores.
"""

from __future__ import annotations

import threading

import pytest

from cloud.errors import RegistryError
from cloud.registry.reports import GATE_REPORT_FILE, TRAINING_SET_FILE
from cloud.retrain.gate import GateReport, ItemSource, RegressionItem, judge
from cloud.retrain.service import gate_record
from cloud.web.gate_reports import (
    GateVerdict,
    _RecordedGate,
    gate_report_view,
    gate_summary,
    learnt_samples,
)
from cloud.web.registry_reader import RegistryReader
from edge.runtime.bundle import TrainingImage


def _failed_report() -> GateReport:
    items = [
        RegressionItem("test/good/000.png", is_defect=False, source=ItemSource.TEST),
        RegressionItem("test/scratch/000.png", is_defect=True, source=ItemSource.TEST),
        RegressionItem("sample n1", is_defect=False, source=ItemSource.REVIEW),
        RegressionItem("sample n2", is_defect=False, source=ItemSource.REVIEW),
        RegressionItem("sample d1", is_defect=True, source=ItemSource.REVIEW),
    ]
    production = [0.2, 1.5, 1.2, 1.3, 1.4]
    candidate = [0.2, 0.5, 0.1, 0.2, 0.3]  # fewer false alarms, but two defects missed
    return judge(items, production, candidate, production_threshold=1.0, candidate_threshold=1.0)


def _record() -> tuple[dict[str, str], dict[str, object]]:
    report = _failed_report()
    fields: dict[str, object] = {
        "production_version": 1,
        "reviewed_normals_used": 2,
        "new_reviewed_normals": 2,
        "reviewed_defects": 1,
        "fit_method": "incremental",
        "fit_s": 1.25,
        "skipped": ["sample gone (normal): image missing"],
    }
    images = [
        TrainingImage(path="/data/train/good/000.png", sha256="a" * 64, role="fit"),
        TrainingImage(path="/data/train/good/001.png", sha256="b" * 64, role="calibration"),
        TrainingImage(path="/store/n1.png", sha256="c" * 64, role="fit", sample_id="n1"),
        TrainingImage(path="/store/n2.png", sha256="d" * 64, role="fit", sample_id="n2"),
    ]
    return gate_record(fields, report, 2, images, reviewed_defect_ids=["d1"])


def test_the_page_mirror_of_the_gate_report_has_its_fields() -> None:
    assert set(_RecordedGate.model_fields) == set(GateReport.model_fields)


def test_a_version_without_a_gate_tag_is_a_first_training() -> None:
    summary = gate_summary({"status": "production", "model_sha256": "ab" * 32})
    assert summary.verdict is GateVerdict.NONE
    assert summary.label == "no gate: first training"


def test_tags_give_the_verdict_and_key_figures() -> None:
    tags, _ = _record()
    summary = gate_summary(tags)
    assert summary.verdict is GateVerdict.FAILED
    assert summary.label == "gate failed"
    assert (summary.false_alarms_before, summary.false_alarms_after) == (2, 0)
    assert summary.new_miss_count == 2
    assert summary.reviewed_normals_used == 2
    assert summary.base_version == "1"


def test_the_report_reads_as_a_table_with_the_missed_samples_named() -> None:
    _, documents = _record()
    view = gate_report_view(documents[GATE_REPORT_FILE])
    assert not view.passed
    assert any("missed" in reason for reason in view.reasons)
    assert [(item.key, item.sample_id) for item in view.new_misses] == [
        ("test/scratch/000.png", None),
        ("sample d1", "d1"),
    ]
    rows = {figure.measure: figure for figure in view.figures}
    reviewed = rows["false alarms on reviewed normals"]
    assert (reviewed.of, reviewed.production, reviewed.candidate) == (2, "2", "0")
    assert rows["new misses"].candidate == "2"
    assert view.reviewed_defect_ids == ("d1",)
    assert view.production_version == "1"
    assert view.skipped == ("sample gone (normal): image missing",)


def test_a_report_recorded_before_defect_ids_says_they_are_unknown() -> None:
    _, documents = _record()
    older = dict(documents[GATE_REPORT_FILE])  # type: ignore[call-overload]
    del older["reviewed_defect_ids"]
    assert gate_report_view(older).reviewed_defect_ids is None


def test_something_else_is_not_a_gate_report() -> None:
    with pytest.raises(ValueError, match="not a gate report"):
        gate_report_view({"gate": "passed"})


def test_the_training_set_names_its_reviewed_samples() -> None:
    _, documents = _record()
    samples, dataset_images = learnt_samples(documents[TRAINING_SET_FILE])
    assert [(s.sample_id, s.role) for s in samples] == [("n1", "fit"), ("n2", "fit")]
    assert dataset_images == 2
    with pytest.raises(ValueError, match="not a list"):
        learnt_samples({"images": []})


def test_a_read_past_its_deadline_says_mlflow_did_not_answer() -> None:
    release = threading.Event()
    reader = RegistryReader(timeout_s=0.05, max_in_flight=1)
    try:
        with pytest.raises(RegistryError, match=r"did not answer within 0\.05 s"):
            reader.run("listing versions", release.wait)
        with pytest.raises(RegistryError, match="still waiting"):
            reader.run("listing versions", lambda: 1)  # the only slot is still held
    finally:
        release.set()


def test_a_read_returns_its_value_or_raises_its_error() -> None:
    reader = RegistryReader(timeout_s=5)
    assert reader.run("reading", lambda: 42) == 42

    def refuse() -> int:
        msg = "MLflow at sqlite:///x: refused"
        raise RegistryError(msg)

    with pytest.raises(RegistryError, match="refused"):
        reader.run("reading", refuse)
    assert reader.run("reading", lambda: "again") == "again"  # the slot came back
