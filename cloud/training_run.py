"""After training: evaluate on ``test/`` when it exists, log the run to MLflow, maybe register.

Kept apart from ``train.py`` so fitting stays free of MLflow and the CLI stays thin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cloud import registry
from cloud.bundle_writer import update_manifest
from cloud.dataset import load_layout
from cloud.evaluation import evaluate_bundle
from cloud.train_settings import TrainSettings
from cloud.types import StageProgress
from edge.runtime.bundle import ModelBundle

__all__ = ["RecordedTraining", "record_training"]


@dataclass(frozen=True)
class RecordedTraining:
    """Where a training run was recorded and what it measured."""

    run_id: str
    tracking_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    version: int | None = None


def _evaluation_metrics(
    bundle: ModelBundle, data: Path, progress: StageProgress
) -> dict[str, float]:
    if not load_layout(data).test:
        return {}
    outcome = evaluate_bundle(
        bundle.directory,
        data,
        progress=lambda done, total: progress("evaluating on test/", done, total),
    )
    report = outcome.report
    candidates = {
        "image_auroc": report.image_auroc,
        "pixel_auroc": report.pixel_auroc,
        "fpr_at_full_recall": report.fpr_at_full_recall,
        "recall_at_threshold": report.recall_at_threshold,
        "false_alarm_rate_at_threshold": report.false_alarm_rate_at_threshold,
        "latency_median_ms": report.latency.median_ms,
    }
    return {key: float(value) for key, value in candidates.items() if value is not None}


def record_training(
    bundle: ModelBundle,
    data: Path,
    settings: TrainSettings,
    *,
    tracking_uri: str | None = None,
    signing_key: Path | None = None,
    register: bool = False,
    progress: StageProgress | None = None,
) -> RecordedTraining:
    """Evaluate, write the figures into the manifest, log the MLflow run, optionally register.

    The metrics go into the manifest before the run logs the bundle, so the logged
    bundle carries them; the run id is stamped into the local bundle afterwards.

    Raises:
        RegistryError: MLflow refused.
    """
    report = progress or (lambda stage, done, total: None)
    metrics = _evaluation_metrics(bundle, data, report)
    manifest = bundle.manifest
    metrics |= {
        "calibration_location": manifest.calibration.raw_location,
        "calibration_scale": manifest.calibration.raw_scale,
        "threshold": manifest.decision.threshold,
        "uncertain_low": manifest.decision.uncertain_low,
    }
    bundle = update_manifest(bundle, metrics=metrics)
    registry_settings = registry.load_registry_settings(
        tracking_uri=tracking_uri, signing_key=signing_key
    )
    report("logging to MLflow", 0, 1)
    run_id = registry.log_training_run(
        bundle.directory,
        params=settings.model_dump() | {"name": manifest.name},
        metrics=metrics,
        data_digest=manifest.training_data.dataset_digest,
        settings=registry_settings,
    )
    images = manifest.training_data.images or ()
    registry.log_run_json(
        run_id,
        registry.TRAINING_SET_FILE,
        [image.model_dump() for image in images],
        settings=registry_settings,
    )
    update_manifest(
        bundle,
        training_data=manifest.training_data.model_copy(update={"mlflow_run_id": run_id}),
    )
    report("logging to MLflow", 1, 1)
    version = None
    if register:
        version = registry.register_bundle(
            bundle.directory, manifest.name, settings=registry_settings, run_id=run_id
        ).version
    return RecordedTraining(
        run_id=run_id,
        tracking_uri=registry.tracking_uri(registry_settings),
        metrics=metrics,
        version=version,
    )
