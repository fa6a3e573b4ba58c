"""One retrain, end to end: reviews in, a gated and registered candidate out.

Production's bundle (downloaded from the registry) says what it learnt from;
the reviews say what it got wrong. The candidate is fitted, calibrated to
catch the reviewed defects, judged against production on the regression set,
registered with its gate report whatever the verdict, and made ``production``
only when asked and the gate passed; ``linewatch deploy --watch`` rolls it out.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cloud import registry
from cloud.collector.store import BlobStore
from cloud.db.session import make_engine, make_session_factory
from cloud.errors import RetrainError
from cloud.registry.reports import GATE_REPORT_FILE, TRAINING_SET_FILE, attach_gate_report
from cloud.retrain.gate import GateReport, judge
from cloud.retrain.lock import model_lock
from cloud.retrain.refit import FitMethod, fit_candidate, recalibrated_decision, write_candidate
from cloud.retrain.regression import regression_set, score_set
from cloud.retrain.training_set import (
    NextTrainingSet,
    ReviewedSamples,
    next_training_set,
    previous_training_set,
    reviewed_samples,
)
from cloud.train_settings import TrainSettings
from cloud.types import StageProgress
from edge.runtime.bundle import Manifest, ModelBundle, TrainingImage, load_bundle

__all__ = ["RetrainOutcome", "RetrainRequest", "gate_record", "run_retrain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainRequest:
    """What to retrain and from where."""

    name: str
    db_url: str
    store_dir: Path
    state_dir: Path
    data: Path | None = None
    lines: tuple[str, ...] = ()
    promote: bool = False
    method: FitMethod = FitMethod.FULL
    recall: float = 1.0


class RetrainOutcome(BaseModel):
    """The ``--json`` report: the contract scripts and checks read."""

    model_config = ConfigDict(frozen=True)

    name: str
    gate: Literal["passed", "failed"]
    candidate_version: int
    production_version: int
    promoted: bool
    reviewed_normals_used: int
    new_reviewed_normals: int
    reviewed_defects: int
    false_alarms_before: int
    false_alarms_after: int
    new_misses: list[str]
    reasons: list[str]
    fit_method: str
    fit_s: float
    threshold_before: float
    threshold_after: float
    skipped: list[str]
    report: GateReport


def _settings_of(manifest: Manifest) -> TrainSettings:
    """The settings production was trained with (keys this code no longer knows dropped).

    A version trained before the density head existed had none: its retrain keeps
    it so, rather than taking today's preset value and changing the detector.
    """
    recorded = manifest.training_data.settings or {}
    known = {key: value for key, value in recorded.items() if key in TrainSettings.model_fields}
    known.setdefault("density_head", "off")
    return TrainSettings.model_validate(known)


def _reviews(request: RetrainRequest) -> ReviewedSamples:
    engine = make_engine(request.db_url, create_dirs=False)
    try:
        with make_session_factory(engine)() as session:
            found = reviewed_samples(
                session, request.name, BlobStore(request.store_dir), lines=request.lines
            )
    finally:
        engine.dispose()
    if not found.normals and not found.defects:
        where = f" on line {', '.join(request.lines)}" if request.lines else ""
        missing = f" ({len(found.skipped)} skipped: {found.skipped[0]})" if found.skipped else ""
        msg = (
            f"model {request.name}: no reviewed samples{where} yet{missing}; review some with "
            "`linewatch samples review` or the web app. Nothing was trained or registered"
        )
        raise RetrainError(msg)
    if not found.normals:
        msg = (
            f"model {request.name}: {len(found.defects)} samples reviewed as defects but none "
            "as normal; there is nothing new to learn. Nothing was trained or registered"
        )
        raise RetrainError(msg)
    return found


def _build_set(
    request: RetrainRequest,
    production: ModelBundle,
    settings: TrainSettings,
    reviewed: ReviewedSamples,
) -> NextTrainingSet:
    previous, data_root, skipped = previous_training_set(
        production.manifest, settings, data=request.data
    )
    built = next_training_set(previous, reviewed, data_root=data_root, skipped=skipped)
    if not built.added:
        msg = (
            f"model {production.label}: its training set already holds all "
            f"{len(reviewed.normals)} reviewed normals; nothing new to learn"
        )
        raise RetrainError(msg)
    return built


def gate_record(
    outcome_fields: Mapping[str, object],
    report: GateReport,
    version: int,
    images: Sequence[TrainingImage],
    *,
    reviewed_defect_ids: Sequence[str],
) -> tuple[dict[str, str], dict[str, Any]]:
    """The version tags and run documents that record a candidate's gate, in one place.

    The web app's Models page reads exactly these names, so they are built by
    one function that ``retrain`` and the tests share rather than written twice.

    Args:
        outcome_fields: the figures of the ``--json`` outcome (``production_version``,
            ``reviewed_normals_used``, ``fit_method``, …).
        report: the gate's verdict and figures.
        version: the candidate's registered version.
        images: every image the candidate learnt from (its manifest's training set).
        reviewed_defect_ids: the samples reviewed as defects that set its threshold.

    Returns:
        The version tags, and the JSON documents by file name.
    """
    gate = "passed" if report.passed else "failed"
    tags = {
        "gate": gate,
        "status": "candidate" if report.passed else "gate-failed",
        "base_version": str(outcome_fields["production_version"]),
        "new_misses": str(len(report.new_misses)),
        "false_alarms_before": str(report.false_alarms_before),
        "false_alarms_after": str(report.false_alarms_after),
        "reviewed_normals_used": str(outcome_fields["reviewed_normals_used"]),
        "fit_method": str(outcome_fields["fit_method"]),
    }
    documents: dict[str, Any] = {
        GATE_REPORT_FILE: dict(outcome_fields)
        | {
            "gate": gate,
            "candidate_version": version,
            "reviewed_defect_ids": list(reviewed_defect_ids),
            "report": report.model_dump(),
        },
        TRAINING_SET_FILE: [image.model_dump() for image in images],
    }
    return tags, documents


def _register(
    request: RetrainRequest,
    candidate: ModelBundle,
    outcome_fields: dict[str, object],
    report: GateReport,
    settings: registry.RegistrySettings,
    train_settings: TrainSettings,
    reviewed_defect_ids: Sequence[str],
) -> int:
    manifest = candidate.manifest
    run_id = registry.log_training_run(
        candidate.directory,
        params=train_settings.model_dump() | {"name": request.name, "retrain": True},
        metrics={
            "threshold": manifest.decision.threshold,
            "false_alarms_before": float(report.false_alarms_before),
            "false_alarms_after": float(report.false_alarms_after),
            "new_misses": float(len(report.new_misses)),
        },
        data_digest=manifest.training_data.dataset_digest,
        settings=settings,
    )
    version = registry.register_bundle(
        candidate.directory, request.name, settings=settings, run_id=run_id
    ).version
    tags, documents = gate_record(
        outcome_fields,
        report,
        version,
        manifest.training_data.images or (),
        reviewed_defect_ids=reviewed_defect_ids,
    )
    attach_gate_report(
        request.name, version, run_id=run_id, tags=tags, documents=documents, settings=settings
    )
    return version


def run_retrain(
    request: RetrainRequest,
    settings: registry.RegistrySettings,
    progress: StageProgress | None = None,
) -> RetrainOutcome:
    """Retrain ``request.name`` from its reviews, gate, register, and maybe promote.

    Raises:
        RetrainBusy: another retrain of the model is running.
        RetrainError: no reviews, nothing new to learn, no recorded training set.
        RegistryError: no production version, or MLflow refused.
    """
    report_progress = progress or (lambda stage, done, total: None)
    with (
        model_lock(request.state_dir, request.name),
        tempfile.TemporaryDirectory(prefix="linewatch-retrain-") as workdir,
    ):
        production_version = registry.resolve_version(
            request.name, settings=settings, alias="production"
        )
        production = load_bundle(
            registry.download_version(
                request.name,
                dest=Path(workdir) / "production",
                settings=settings,
                version=production_version,
            )
        )
        train_settings = _settings_of(production.manifest)
        reviewed = _reviews(request)
        training_set = _build_set(request, production, train_settings, reviewed)
        fitted = fit_candidate(
            production,
            training_set,
            train_settings,
            method=request.method,
            progress=report_progress,
        )
        decision, _ = recalibrated_decision(
            fitted, train_settings, [sample.image for sample in reviewed.defects], request.recall
        )
        candidate = write_candidate(
            Path(workdir) / "candidate", production, fitted, training_set, train_settings, decision
        )
        regression = regression_set(training_set.data_root, reviewed)
        before = score_set(
            production, regression.paths, lambda d, t: report_progress("scoring production", d, t)
        )
        after = score_set(
            candidate, regression.paths, lambda d, t: report_progress("scoring candidate", d, t)
        )
        report = judge(
            regression.items,
            before,
            after,
            production_threshold=production.manifest.decision.threshold,
            candidate_threshold=candidate.manifest.decision.threshold,
        )
        fields: dict[str, object] = {
            "name": request.name,
            "production_version": production_version,
            "reviewed_normals_used": training_set.reviewed_normals_used,
            "new_reviewed_normals": len(training_set.added),
            "reviewed_defects": len(reviewed.defects),
            "false_alarms_before": report.false_alarms_before,
            "false_alarms_after": report.false_alarms_after,
            "new_misses": report.new_misses,
            "reasons": report.reasons,
            "fit_method": fitted.method.value,
            "fit_s": round(fitted.fit_s, 3),
            "threshold_before": production.manifest.decision.threshold,
            "threshold_after": candidate.manifest.decision.threshold,
            "skipped": list(training_set.skipped),
        }
        report_progress("registering", 0, 1)
        version = _register(
            request,
            candidate,
            fields,
            report,
            settings,
            train_settings,
            [sample.sample_id for sample in reviewed.defects],
        )
        promoted = False
        if request.promote and report.passed:
            registry.promote(request.name, version, settings=settings)
            promoted = True
        report_progress("registering", 1, 1)
    logger.info(
        "retrain done model=%s candidate=%d gate=%s promoted=%s",
        request.name,
        version,
        "passed" if report.passed else "failed",
        promoted,
    )
    return RetrainOutcome.model_validate(
        fields
        | {
            "gate": "passed" if report.passed else "failed",
            "candidate_version": version,
            "promoted": promoted,
            "report": report,
        }
    )
