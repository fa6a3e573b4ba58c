"""The rollout's record in the database: one deployment, one row per node, kept current.

Each state change of a node is committed at once, so ``linewatch deploy status``
run from another shell shows a rollout in progress, and a deployer that dies
leaves the last known state of every node behind. A node reached by address
alone, unknown to the collector, gets a placeholder ``nodes`` row (empty site
and line, the address as its name) so that its outcome can be kept.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Deployment, DeploymentTarget, ModelVersion, Node, utc_now
from cloud.deploy.pusher import PackedBundle
from cloud.deploy.targets import Target
from cloud.errors import StoreError

__all__ = ["DeploymentRecorder", "DeploymentView", "TargetView", "deployment_status"]

logger = logging.getLogger(__name__)

_FINAL = frozenset({"succeeded", "failed", "skipped"})


class DeploymentRecorder:
    """Writes one rollout's progress; thread-safe (one short transaction per change)."""

    def __init__(self, session_factory: sessionmaker[Session], *, requested_by: str = "") -> None:
        self.session_factory = session_factory
        self.requested_by = requested_by
        self.deployment_id: int | None = None
        self._target_ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, packed: PackedBundle, targets: list[Target], *, run_id: str = "") -> int:
        """Create the deployment and its pending targets; return the deployment id."""
        try:
            with self.session_factory.begin() as session:
                version = _model_version(session, packed, run_id)
                self._create(session, "rollout", version.id, targets, packed.size)
        except SQLAlchemyError as exc:
            msg = f"deployment record: cannot start the record of {packed.label} ({exc})"
            raise StoreError(msg) from exc
        assert self.deployment_id is not None
        return self.deployment_id

    def start_rollback(self, targets: list[Target]) -> int:
        """Create a rollback record (no single model version) and its pending targets."""
        try:
            with self.session_factory.begin() as session:
                self._create(session, "rollback", None, targets, 0)
        except SQLAlchemyError as exc:
            msg = f"deployment record: cannot start the record of a rollback ({exc})"
            raise StoreError(msg) from exc
        assert self.deployment_id is not None
        return self.deployment_id

    def _create(
        self,
        session: Session,
        kind: str,
        version_id: int | None,
        targets: list[Target],
        bytes_total: int,
    ) -> None:
        deployment = Deployment(
            kind=kind,
            model_version_id=version_id,
            state="running",
            requested_by=self.requested_by,
        )
        session.add(deployment)
        session.flush()
        for target in targets:
            row = DeploymentTarget(
                deployment_id=deployment.id,
                node_id=_node_id(session, target),
                state="pending",
                bytes_total=bytes_total,
            )
            session.add(row)
            session.flush()
            self._target_ids[target.address] = row.id
        self.deployment_id = deployment.id

    def update(
        self, target: Target, state: str, *, bytes_sent: int | None = None, outcome: str = ""
    ) -> None:
        """Record a node's new state (``pushing``, ``activating``, ``succeeded``…)."""
        now = utc_now()
        with self._lock, self.session_factory.begin() as session:
            row = session.get(DeploymentTarget, self._target_ids[target.address])
            if row is None:
                return
            row.state = state
            if bytes_sent is not None:
                row.bytes_sent = bytes_sent
            if outcome:
                row.outcome = outcome
            if row.started_at is None and state not in _FINAL | {"pending"}:
                row.started_at = now
            if state in _FINAL:
                row.finished_at = now

    def node_runs(self, target: Target, name: str, version: str) -> None:
        """Note the model a node now runs (its next heartbeat confirms it)."""
        with self.session_factory.begin() as session:
            node = session.get(Node, _node_id(session, target))
            if node is not None:
                node.model_name, node.model_version = name, version

    def finish(self, state: str) -> None:
        """Close the deployment with its overall state."""
        with self.session_factory.begin() as session:
            deployment = session.get(Deployment, self.deployment_id)
            if deployment is not None:
                deployment.state, deployment.finished_at = state, utc_now()


def _model_version(session: Session, packed: PackedBundle, run_id: str) -> ModelVersion:
    found = session.scalars(
        select(ModelVersion).where(
            ModelVersion.name == packed.name, ModelVersion.version == packed.version
        )
    ).first()
    if found is None:
        found = ModelVersion(
            name=packed.name,
            version=packed.version,
            model_sha256=packed.model_sha256,
            mlflow_run_id=run_id,
        )
        session.add(found)
        session.flush()
    return found


def _node_id(session: Session, target: Target) -> int:
    query = select(Node.id).where(Node.grpc_address == target.address)
    if target.online is not None:  # known to the collector: match its name too
        query = query.where(Node.node == target.name)
    node_id = session.scalars(query.order_by(Node.id)).first()
    if node_id is not None:
        return node_id
    placeholder = Node(site="", line="", node=target.address, grpc_address=target.address)
    session.add(placeholder)
    session.flush()
    logger.info("node recorded by address only address=%s", target.address)
    return placeholder.id


@dataclass(frozen=True)
class TargetView:
    """One node's progress in a deployment."""

    node: str
    address: str
    state: str
    bytes_sent: int
    bytes_total: int
    outcome: str
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class DeploymentView:
    """A deployment (or rollback) and its nodes, for ``deploy status``."""

    id: int
    kind: str
    model_name: str
    model_version: str
    state: str
    requested_by: str
    created_at: datetime
    finished_at: datetime | None
    targets: list[TargetView]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, times as ISO 8601."""

        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, list):
                return [{k: convert(v) for k, v in item.items()} for item in value]
            return value

        return {key: convert(value) for key, value in asdict(self).items()}


def deployment_status(session: Session, deployment_id: int | None = None) -> DeploymentView | None:
    """The given deployment, or the latest one; None when there is none."""
    query = select(Deployment, ModelVersion).outerjoin(
        ModelVersion, Deployment.model_version_id == ModelVersion.id
    )
    query = query.where(Deployment.id == deployment_id) if deployment_id else query
    row = session.execute(query.order_by(Deployment.id.desc()).limit(1)).first()
    if row is None:
        return None
    deployment, version = row
    targets = session.execute(
        select(DeploymentTarget, Node)
        .join(Node, DeploymentTarget.node_id == Node.id)
        .where(DeploymentTarget.deployment_id == deployment.id)
        .order_by(DeploymentTarget.id)
    )
    return DeploymentView(
        id=deployment.id,
        kind=deployment.kind,
        model_name=version.name if version else "",
        model_version=version.version if version else "",
        state=deployment.state,
        requested_by=deployment.requested_by,
        created_at=deployment.created_at,
        finished_at=deployment.finished_at,
        targets=[
            TargetView(
                node=node.node,
                address=node.grpc_address,
                state=target.state,
                bytes_sent=target.bytes_sent,
                bytes_total=target.bytes_total,
                outcome=target.outcome,
                started_at=target.started_at,
                finished_at=target.finished_at,
            )
            for target, node in targets
        ],
    )
