"""Attach a retrain's gate report to a registered version: tags to filter on, JSON to read.

The tags (``gate``, ``false_alarms_before``, …) let the web app and a person
with the MLflow UI see at a glance whether a version passed; the JSON artifacts
in its run hold the whole report and the training set it learnt from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from cloud.registry.client import mlflow_client
from cloud.registry.settings import RegistrySettings

__all__ = [
    "GATE_REPORT_FILE",
    "TRAINING_SET_FILE",
    "attach_gate_report",
    "log_run_json",
    "read_run_json",
]

logger = logging.getLogger(__name__)

GATE_REPORT_FILE = "gate_report.json"
TRAINING_SET_FILE = "training_set.json"


def attach_gate_report(
    name: str,
    version: int,
    *,
    run_id: str,
    tags: Mapping[str, str],
    documents: Mapping[str, Any],
    settings: RegistrySettings,
) -> None:
    """Set version tags and log JSON documents (file name: content) into the version's run.

    Raises:
        RegistryError: MLflow refused.
    """
    with mlflow_client(
        settings, f"recording the gate report of {name} version {version}"
    ) as client:
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, value)
        for file_name, content in documents.items():
            client.log_text(run_id, json.dumps(content, indent=2, default=str), file_name)
    logger.info("gate report attached model=%s version=%d run_id=%s", name, version, run_id)


def log_run_json(run_id: str, file_name: str, content: Any, *, settings: RegistrySettings) -> None:
    """Log one JSON document into a run, e.g. the training set a ``linewatch train`` used.

    Raises:
        RegistryError: MLflow refused.
    """
    with mlflow_client(settings, f"logging {file_name} into run {run_id}") as client:
        client.log_text(run_id, json.dumps(content, indent=2, default=str), file_name)


def read_run_json(run_id: str, file_name: str, *, settings: RegistrySettings) -> Any:
    """Read back a JSON document logged into a run, e.g. ``gate_report.json``.

    Raises:
        RegistryError: no such run or file, or MLflow refused.
    """
    import mlflow

    with mlflow_client(settings, f"reading {file_name} of run {run_id}"):
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{file_name}")
    return json.loads(text)
