"""Record a training run in MLflow: parameters, metrics, the data digest and the bundle."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow

from cloud.registry.client import experiment_id, mlflow_client
from cloud.registry.pyfunc import log_bundle_model
from cloud.registry.settings import RegistrySettings
from edge.runtime.bundle import load_bundle

__all__ = ["log_training_run"]

logger = logging.getLogger(__name__)


def log_training_run(
    bundle_dir: Path,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    data_digest: str,
    settings: RegistrySettings,
    experiment: str | None = None,
) -> str:
    """Record one training run: parameters, metrics, the data digest and the bundle.

    Args:
        bundle_dir: the bundle ``train`` wrote; verified before logging.
        params: training settings, logged as MLflow parameters.
        metrics: numbers such as calibration statistics or image AUROC.
        data_digest: sha256 naming the training images (tag ``data_digest``).
        settings: where MLflow lives.
        experiment: the experiment name; ``settings.mlflow_experiment`` if None.

    Returns:
        The MLflow run id.

    Raises:
        BundleCorrupt: a bundle that fails verification.
        RegistryError: MLflow refused.
    """
    bundle = load_bundle(bundle_dir)
    experiment = experiment or settings.mlflow_experiment
    with mlflow_client(settings, f"logging training run of {bundle.label}") as client:
        found_id = experiment_id(client, settings, experiment)
        with mlflow.start_run(
            experiment_id=found_id, run_name=f"train {bundle.manifest.name}"
        ) as run:
            mlflow.log_params({key: str(value)[:6000] for key, value in params.items()})
            mlflow.log_metrics({key: float(value) for key, value in metrics.items()})
            mlflow.set_tags({"data_digest": data_digest, "bundle": bundle.label, "kind": "train"})
            log_bundle_model(bundle)
        run_id = str(run.info.run_id)
    logger.info("training run logged run_id=%s model=%s", run_id, bundle.label)
    return run_id
