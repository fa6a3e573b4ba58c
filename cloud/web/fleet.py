"""Reads behind the Nodes and Models pages: heartbeat ages, deployments, MLflow versions.

MLflow is asked only when the app was given a tracking URI, and within the
reader's deadline; if it cannot be reached in time the page says so instead of failing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cloud.db.models import Deployment, ModelVersion, Node
from cloud.errors import LinewatchError
from cloud.redact import redact_url
from cloud.web.gate_reports import GateSummary, gate_summary
from cloud.web.model_versions import read_missed
from cloud.web.registry_reader import RegistryReader

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "DeploymentRow",
    "NodeRow",
    "RegistryRow",
    "list_deployments",
    "node_rows",
    "registry_rows",
]

logger = logging.getLogger(__name__)

# Which samples a version misses is in its gate report, one read each; the list
# page reads at most this many (the newest versions come first) to stay quick.
MAX_MISS_READS = 10


@dataclass(frozen=True)
class NodeRow:
    """One node with how long ago it was heard from."""

    site: str
    line: str
    node: str
    online: bool
    heartbeat_age_s: float | None
    model: str
    outbox_backlog: int
    frames_processed: int
    grpc_address: str


@dataclass(frozen=True)
class DeploymentRow:
    """One rollout or rollback and where it went."""

    id: int
    kind: str
    model: str
    state: str
    requested_by: str
    created_at: datetime
    finished_at: datetime | None
    targets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RegistryRow:
    """One registered MLflow version with its aliases, figures and gate."""

    name: str
    version: str
    aliases: list[str]
    metrics: dict[str, float]
    created_at: str
    gate: GateSummary
    run_id: str | None = None


def node_rows(session: Session, now: datetime) -> list[NodeRow]:
    """Return every node by site, line and name, with the age of its last message."""
    rows = []
    for node in session.scalars(select(Node).order_by(Node.site, Node.line, Node.node)):
        age = (now - node.last_seen_at).total_seconds() if node.last_seen_at else None
        model = f"{node.model_name}:{node.model_version}" if node.model_name else "—"
        rows.append(
            NodeRow(
                node.site,
                node.line,
                node.node,
                node.online,
                age,
                model,
                node.outbox_backlog,
                node.frames_processed,
                node.grpc_address,
            )
        )
    return rows


def list_deployments(session: Session, limit: int = 50) -> list[DeploymentRow]:
    """Return the newest deployments with each target node's state."""
    query = (
        select(Deployment)
        .options(selectinload(Deployment.targets))
        .order_by(Deployment.created_at.desc())
        .limit(limit)
    )
    nodes = {n.id: f"{n.site}/{n.line}/{n.node}" for n in session.scalars(select(Node))}
    versions = {v.id: f"{v.name}:{v.version}" for v in session.scalars(select(ModelVersion))}
    return [
        DeploymentRow(
            id=d.id,
            kind=d.kind,
            model=versions.get(d.model_version_id or -1, "(previous bundle)"),
            state=d.state,
            requested_by=d.requested_by,
            created_at=d.created_at,
            finished_at=d.finished_at,
            targets=[f"{nodes.get(t.node_id, t.node_id)}: {t.state}" for t in d.targets],
        )
        for d in session.scalars(query)
    ]


def registry_rows(
    tracking_uri: str | None, reader: RegistryReader
) -> tuple[list[RegistryRow], str | None]:
    """Return MLflow's registered versions, or an empty list and why (no URI, unreachable)."""
    if not tracking_uri:
        return [], "no --tracking-uri given; start `linewatch web` with one to list MLflow versions"
    try:
        return reader.run("listing versions", lambda: _registry_rows(tracking_uri)), None
    except LinewatchError as exc:
        logger.warning("MLflow unavailable tracking_uri=%s error=%s", redact_url(tracking_uri), exc)
        return [], str(exc)


def _registry_rows(tracking_uri: str) -> list[RegistryRow]:
    from cloud.registry import load_registry_settings
    from cloud.registry.client import mlflow_client

    settings = load_registry_settings(tracking_uri=tracking_uri)
    rows: list[RegistryRow] = []
    with mlflow_client(settings, "listing versions") as client:
        for model in client.search_registered_models():
            aliases_of: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                aliases_of.setdefault(str(version), []).append(alias)
            for version in client.search_model_versions(f"name='{model.name}'"):
                metrics: dict[str, float] = {}
                if version.run_id:
                    metrics = dict(client.get_run(version.run_id).data.metrics)
                rows.append(
                    RegistryRow(
                        model.name,
                        str(version.version),
                        sorted(aliases_of.get(str(version.version), [])),
                        metrics,
                        str(version.creation_timestamp),
                        gate_summary(dict(version.tags or {})),
                        version.run_id or None,
                    )
                )
        rows.sort(key=lambda r: (r.name, -int(r.version) if r.version.isdigit() else 0))
        return _with_missed_ids(client, rows)


def _with_missed_ids(client: MlflowClient, rows: list[RegistryRow]) -> list[RegistryRow]:
    """Rows whose gate counts new misses, with the missed items read from their reports."""
    reads = 0
    filled: list[RegistryRow] = []
    for row in rows:
        if row.run_id and row.gate.new_miss_count and reads < MAX_MISS_READS:
            reads += 1
            row = replace(row, gate=replace(row.gate, new_misses=read_missed(client, row.run_id)))
        filled.append(row)
    return filled
