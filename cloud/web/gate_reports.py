"""A retrain's gate record read back: verdict, figures, missed items, reviewed samples learnt.

``linewatch retrain`` records a candidate's gate as version tags (``gate``,
``false_alarms_before``, …) and two JSON documents in its run
(``gate_report.json``, ``training_set.json``), all built by
``cloud.retrain.service.gate_record``. A version that ``linewatch train``
registered has no gate: it is a first training. The functions here are pure
(tags and parsed JSON in, frozen dataclasses out) so each is tested on plain data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "GATE_REPORT_FILE",
    "TRAINING_SET_FILE",
    "GateFigure",
    "GateReportView",
    "GateSummary",
    "GateVerdict",
    "LearntSample",
    "MissedItem",
    "gate_report_view",
    "gate_summary",
    "learnt_samples",
    "missed_items",
]

# The names ``cloud.registry.reports`` gives them; repeated so that reading a
# page does not import the registry (and MLflow) before a page needs it.
GATE_REPORT_FILE = "gate_report.json"
TRAINING_SET_FILE = "training_set.json"
_SAMPLE_KEY = re.compile(r"^sample (?P<id>[A-Za-z0-9_.-]{1,128})$")  # the gate's key of a review


class GateVerdict(StrEnum):
    """What the gate said about a version; ``none`` for one trained, not retrained."""

    PASSED = "passed"
    FAILED = "failed"
    NONE = "none"


@dataclass(frozen=True)
class MissedItem:
    """A defect production caught and the version misses: a test file or a reviewed sample."""

    key: str
    sample_id: str | None  # set when the item is a reviewed sample, to link to its page


@dataclass(frozen=True)
class GateSummary:
    """The gate's verdict and key figures, from the version's tags (``None``: not recorded)."""

    verdict: GateVerdict
    base_version: str | None = None
    false_alarms_before: int | None = None
    false_alarms_after: int | None = None
    new_miss_count: int | None = None
    reviewed_normals_used: int | None = None
    new_misses: tuple[MissedItem, ...] = ()  # filled from the report when it was read

    @property
    def label(self) -> str:
        """The verdict in words, as the page shows it."""
        if self.verdict is GateVerdict.NONE:
            return "no gate: first training"
        return f"gate {self.verdict.value}"


@dataclass(frozen=True)
class GateFigure:
    """One row of the report's table: a measure for production and for the candidate."""

    measure: str
    of: int | None  # how many images the measure counts over
    production: str
    candidate: str


@dataclass(frozen=True)
class GateReportView:
    """The whole gate report, arranged for reading."""

    passed: bool
    reasons: tuple[str, ...]
    figures: tuple[GateFigure, ...]
    new_misses: tuple[MissedItem, ...]
    production_version: str | None
    fit_method: str
    fit_s: float | None
    reviewed_normals_used: int
    new_reviewed_normals: int
    reviewed_defects: int
    reviewed_defect_ids: tuple[str, ...] | None  # None: retrained before ids were recorded
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class LearntSample:
    """A reviewed sample a version's training set holds, and the role it was given."""

    sample_id: str
    role: str


class _RecordedGate(BaseModel):
    """``GateReport`` as retrain dumps it (mirrored: importing retrain would import torch)."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reasons: list[str]
    production_threshold: float
    candidate_threshold: float
    n_test_good: int
    n_test_defects: int
    n_reviewed_normals: int
    n_reviewed_defects: int
    false_alarms_test_good_before: int
    false_alarms_test_good_after: int
    false_alarms_reviewed_before: int
    false_alarms_reviewed_after: int
    misses_before: int
    misses_after: int
    new_misses: list[str]


class _GateDocument(BaseModel):
    """``gate_report.json``: the retrain outcome's figures and the gate report."""

    model_config = ConfigDict(frozen=True)

    production_version: int | str | None = None
    reviewed_normals_used: int = 0
    new_reviewed_normals: int = 0
    reviewed_defects: int = 0
    fit_method: str = ""
    fit_s: float | None = None
    skipped: list[str] = []
    reviewed_defect_ids: list[str] | None = None
    report: _RecordedGate


def _int_tag(tags: Mapping[str, str], key: str) -> int | None:
    value = tags.get(key, "")
    return int(value) if value.isdigit() else None


def gate_summary(tags: Mapping[str, str]) -> GateSummary:
    """The gate's verdict and figures from a version's tags; no ``gate`` tag: first training."""
    gate = tags.get("gate")
    if gate not in (GateVerdict.PASSED, GateVerdict.FAILED):
        return GateSummary(GateVerdict.NONE)
    return GateSummary(
        verdict=GateVerdict(gate),
        base_version=tags.get("base_version"),
        false_alarms_before=_int_tag(tags, "false_alarms_before"),
        false_alarms_after=_int_tag(tags, "false_alarms_after"),
        new_miss_count=_int_tag(tags, "new_misses"),
        reviewed_normals_used=_int_tag(tags, "reviewed_normals_used"),
    )


def missed_items(keys: Iterable[str]) -> tuple[MissedItem, ...]:
    """The gate's missed keys, each with its sample id when it names a reviewed sample."""
    items = []
    for key in keys:
        found = _SAMPLE_KEY.match(key)
        items.append(MissedItem(key, found.group("id") if found else None))
    return tuple(items)


def _figures(gate: _RecordedGate) -> tuple[GateFigure, ...]:
    n_defects = gate.n_test_defects + gate.n_reviewed_defects
    return (
        GateFigure(
            "threshold",
            None,
            f"{gate.production_threshold:.4g}",
            f"{gate.candidate_threshold:.4g}",
        ),
        GateFigure(
            "false alarms on reviewed normals",
            gate.n_reviewed_normals,
            str(gate.false_alarms_reviewed_before),
            str(gate.false_alarms_reviewed_after),
        ),
        GateFigure(
            "false alarms on good test images",
            gate.n_test_good,
            str(gate.false_alarms_test_good_before),
            str(gate.false_alarms_test_good_after),
        ),
        GateFigure(
            "false alarms, all normal images",
            gate.n_reviewed_normals + gate.n_test_good,
            str(gate.false_alarms_reviewed_before + gate.false_alarms_test_good_before),
            str(gate.false_alarms_reviewed_after + gate.false_alarms_test_good_after),
        ),
        GateFigure("misses on defects", n_defects, str(gate.misses_before), str(gate.misses_after)),
        GateFigure("new misses", n_defects, "", str(len(gate.new_misses))),
    )


def gate_report_view(document: object) -> GateReportView:
    """Arrange ``gate_report.json`` for reading.

    Raises:
        ValueError: a document that is not a gate report as retrain writes it.
    """
    try:
        found = _GateDocument.model_validate(document)
    except ValidationError as exc:
        msg = f"{GATE_REPORT_FILE} is not a gate report ({exc.error_count()} problems)"
        raise ValueError(msg) from exc
    gate = found.report
    return GateReportView(
        passed=gate.passed,
        reasons=tuple(gate.reasons),
        figures=_figures(gate),
        new_misses=missed_items(gate.new_misses),
        production_version=(
            str(found.production_version) if found.production_version is not None else None
        ),
        fit_method=found.fit_method,
        fit_s=found.fit_s,
        reviewed_normals_used=found.reviewed_normals_used,
        new_reviewed_normals=found.new_reviewed_normals,
        reviewed_defects=found.reviewed_defects,
        reviewed_defect_ids=(
            tuple(found.reviewed_defect_ids) if found.reviewed_defect_ids is not None else None
        ),
        skipped=tuple(found.skipped),
    )


def learnt_samples(document: object) -> tuple[tuple[LearntSample, ...], int]:
    """The reviewed samples of ``training_set.json`` and how many dataset images it holds.

    Raises:
        ValueError: a document that is not a list of training images.
    """
    if not isinstance(document, list):
        msg = f"{TRAINING_SET_FILE} is not a list of images"
        raise ValueError(msg)
    samples: list[LearntSample] = []
    dataset_images = 0
    for entry in document:
        if not isinstance(entry, dict):
            msg = f"{TRAINING_SET_FILE} holds an entry that is not an image record"
            raise ValueError(msg)
        sample_id = entry.get("sample_id")
        if isinstance(sample_id, str) and sample_id:
            samples.append(LearntSample(sample_id, str(entry.get("role") or "fit")))
        else:
            dataset_images += 1
    return tuple(samples), dataset_images
