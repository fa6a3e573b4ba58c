"""Registered versions read from MLflow for the version page: gate, report, samples learnt.

A document that is missing or unreadable becomes a note on the page, never an
error: the version exists, and the rest of what MLflow knows about it is still
worth showing. Every read runs within the ``RegistryReader``'s deadline.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cloud.errors import LinewatchError, VersionNotFound
from cloud.redact import redact_url
from cloud.web.gate_reports import (
    GATE_REPORT_FILE,
    TRAINING_SET_FILE,
    GateReportView,
    GateSummary,
    GateVerdict,
    LearntSample,
    MissedItem,
    gate_report_view,
    gate_summary,
    learnt_samples,
)
from cloud.web.registry_reader import RegistryReader

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from cloud.registry.settings import RegistrySettings

__all__ = [
    "MAX_LISTED_SAMPLES",
    "VersionDetail",
    "read_missed",
    "read_version_detail",
    "version_detail",
]

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # a training set of ~100k images; larger is not read
MAX_LISTED_SAMPLES = 1000  # the detail page lists this many reviewed samples, then counts
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # as the registry accepts


@dataclass(frozen=True)
class VersionDetail:
    """One registered version: its gate, its report and the reviewed samples it learnt from."""

    name: str
    version: str
    aliases: tuple[str, ...]
    status: str
    created_ms: int | None
    run_id: str | None
    gate: GateSummary
    report: GateReportView | None
    reviewed_normals: tuple[LearntSample, ...]  # at most MAX_LISTED_SAMPLES
    reviewed_normals_total: int
    dataset_images: int | None  # None: the training set was not recorded
    notes: tuple[str, ...]  # what could not be read, each said once

    @property
    def created_at(self) -> datetime | None:
        """When MLflow registered the version (UTC)."""
        if self.created_ms is None:
            return None
        return datetime.fromtimestamp(self.created_ms / 1000, tz=UTC)


def _read_json(client: MlflowClient, run_id: str, file_name: str, size: int | None) -> object:
    """One JSON document of a run, refused when larger than a page should hold."""
    if size is not None and size > MAX_DOCUMENT_BYTES:
        msg = f"{file_name} is {size} bytes, more than the {MAX_DOCUMENT_BYTES} a page reads"
        raise ValueError(msg)
    with tempfile.TemporaryDirectory(prefix="linewatch-web-") as workdir:
        local = client.download_artifacts(run_id, file_name, workdir)
        return json.loads(Path(local).read_text(encoding="utf-8"))


def _run_documents(
    client: MlflowClient, run_id: str, wanted: Sequence[str]
) -> tuple[dict[str, object], list[str]]:
    """The wanted JSON documents the run holds, and a note for each one that failed to read."""
    from mlflow.exceptions import MlflowException

    sizes = {item.path: item.file_size for item in client.list_artifacts(run_id)}
    found: dict[str, object] = {}
    notes: list[str] = []
    for file_name in wanted:
        if file_name not in sizes:
            continue
        try:
            found[file_name] = _read_json(client, run_id, file_name, sizes[file_name])
        except (MlflowException, OSError, ValueError) as exc:
            logger.warning(
                "run document unreadable run_id=%s file=%s error=%s", run_id, file_name, exc
            )
            notes.append(f"{file_name} of run {run_id} could not be read: {exc}")
    return found, notes


def read_missed(client: MlflowClient, run_id: str) -> tuple[MissedItem, ...]:
    """The new misses listed in a run's gate report; none when it cannot be read."""
    from mlflow.exceptions import MlflowException

    try:
        documents, _ = _run_documents(client, run_id, [GATE_REPORT_FILE])
        return gate_report_view(documents[GATE_REPORT_FILE]).new_misses
    except (MlflowException, OSError, KeyError, ValueError) as exc:
        logger.warning("new misses unreadable run_id=%s error=%s", run_id, exc)
        return ()


def _version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """The MLflow model version, or VersionNotFound naming what does exist."""
    from mlflow.exceptions import MlflowException

    from cloud.registry.client import NOT_FOUND

    if not _NAME_PATTERN.match(name):
        msg = f"no model is named {name!r}; model names are letters, digits, '_', '.' and '-'"
        raise VersionNotFound(msg)
    if not version.isdigit():
        msg = f"model {name}: {version!r} is not a version number"
        raise VersionNotFound(msg)
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise
        msg = f"model {name} is not registered in MLflow"
        raise VersionNotFound(msg) from exc
    try:
        return client.get_model_version(name, str(int(version)))
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise
        msg = f"model {name} has no version {version}; see the Models page for its versions"
        raise VersionNotFound(msg) from exc


def _detail(
    name: str, found: ModelVersion, documents: Mapping[str, object], notes: list[str]
) -> VersionDetail:
    tags: dict[str, str] = dict(found.tags or {})
    summary = gate_summary(tags)
    report: GateReportView | None = None
    if GATE_REPORT_FILE in documents:
        try:
            report = gate_report_view(documents[GATE_REPORT_FILE])
        except ValueError as exc:
            notes.append(str(exc))
    elif summary.verdict is not GateVerdict.NONE:
        notes.append(f"the gate's tags are set but its run holds no {GATE_REPORT_FILE}")
    samples: tuple[LearntSample, ...] = ()
    dataset_images: int | None = None
    if TRAINING_SET_FILE in documents:
        try:
            samples, dataset_images = learnt_samples(documents[TRAINING_SET_FILE])
        except ValueError as exc:
            notes.append(str(exc))
    else:
        notes.append(f"no {TRAINING_SET_FILE} was recorded for this version")
    if report is not None:
        summary = replace(summary, new_misses=report.new_misses)
    return VersionDetail(
        name=name,
        version=str(found.version),
        aliases=tuple(sorted(found.aliases or ())),
        status=tags.get("status", ""),
        created_ms=int(found.creation_timestamp) if found.creation_timestamp else None,
        run_id=found.run_id or None,
        gate=summary,
        report=report,
        reviewed_normals=samples[:MAX_LISTED_SAMPLES],
        reviewed_normals_total=len(samples),
        dataset_images=dataset_images,
        notes=tuple(notes),
    )


def read_version_detail(settings: RegistrySettings, name: str, version: str) -> VersionDetail:
    """Everything the registry knows about one version that the detail page shows.

    Raises:
        VersionNotFound: no model ``name``, or no such version of it.
        RegistryError: MLflow could not be read.
    """
    from cloud.registry.client import mlflow_client

    with mlflow_client(settings, f"reading {name} version {version}") as client:
        found = _version(client, name, version)
        documents: dict[str, object] = {}
        notes: list[str] = []
        if found.run_id:
            documents, notes = _run_documents(
                client, found.run_id, [GATE_REPORT_FILE, TRAINING_SET_FILE]
            )
        else:
            notes.append("the version names no MLflow run, so no report or training set")
    return _detail(name, found, documents, notes)


def version_detail(
    tracking_uri: str | None, name: str, version: str, reader: RegistryReader
) -> tuple[VersionDetail | None, str | None]:
    """One version's detail within the reader's deadline, or None and why it could not be read.

    Raises:
        VersionNotFound: MLflow answered, and has no such model or version.
    """
    if not tracking_uri:
        return None, "no --tracking-uri given; start `linewatch web` with one to read MLflow"

    def read() -> VersionDetail:
        from cloud.registry import load_registry_settings

        settings = load_registry_settings(tracking_uri=tracking_uri)
        return read_version_detail(settings, name, version)

    try:
        return reader.run(f"reading {name} version {version}", read), None
    except VersionNotFound:
        raise
    except LinewatchError as exc:
        logger.warning("MLflow unavailable tracking_uri=%s error=%s", redact_url(tracking_uri), exc)
        return None, str(exc)
