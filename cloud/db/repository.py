"""Idempotent writes of what the nodes send: alerts, samples and node status.

An alert or sample is inserted with ``ON CONFLICT DO NOTHING`` on its message
id, so a resent message (after an outage, a killed collector, a restarted
node) is stored once, even with several collectors sharing the stream. Nodes
are created the first time anything names them. The caller owns the
transaction: nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.db.models import Alert, Node, Sample
from cloud.errors import StoreError
from edge.runtime.mqtt_link import NodeIdentity

__all__ = ["AlertRecord", "MessageWriter", "SampleRecord", "StatusRecord"]


@dataclass(frozen=True)
class AlertRecord:
    """An alert as the collector received it."""

    id: str
    node: NodeIdentity
    frame_id: str
    captured_at: datetime
    received_at: datetime
    verdict: str
    image_score: float
    threshold: float
    model_name: str
    model_version: str
    model_sha256: str
    thumbnail_path: str | None
    sample_id: str | None


@dataclass(frozen=True)
class SampleRecord:
    """A sample as the collector received it; images already in the store."""

    id: str
    node: NodeIdentity
    frame_id: str
    captured_at: datetime
    received_at: datetime
    verdict: str
    image_score: float
    threshold: float
    uncertain_low: float
    model_name: str
    model_version: str
    model_sha256: str
    image_path: str
    image_sha256: str
    heatmap_path: str | None
    heatmap_sha256: str | None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusRecord:
    """A heartbeat or last will: ``at`` orders statuses of one node."""

    node: NodeIdentity
    online: bool
    at: datetime
    grpc_address: str
    model_name: str
    model_version: str
    frames_processed: int
    outbox_backlog: int


class MessageWriter:
    """Writes collector messages inside a caller's transaction; caches node ids."""

    def __init__(self) -> None:
        """Start with an empty node cache."""
        self._node_ids: dict[NodeIdentity, int] = {}
        self._uncommitted: set[NodeIdentity] = set()

    def add_alert(self, session: Session, record: AlertRecord) -> bool:
        """Insert an alert unless its id is stored; True when it was new."""
        values = _fields(record, exclude=("node",))
        values["node_id"] = self._node_id(session, record.node, record.received_at)
        return _insert_new(session, Alert, values)

    def add_sample(self, session: Session, record: SampleRecord) -> bool:
        """Insert a sample unless its id is stored; True when it was new."""
        values = _fields(record, exclude=("node",))
        values["node_id"] = self._node_id(session, record.node, record.received_at)
        return _insert_new(session, Sample, values)

    def apply_status(self, session: Session, record: StatusRecord) -> bool:
        """Apply a status unless a newer one was applied; True when it changed the node."""
        node_id = self._node_id(session, record.node, record.at if record.online else None)
        result = session.execute(
            update(Node)
            .where(Node.id == node_id)
            .where((Node.status_at.is_(None)) | (Node.status_at <= record.at))
            .values(
                online=record.online,
                status_at=record.at,
                grpc_address=record.grpc_address,
                model_name=record.model_name,
                model_version=record.model_version,
                frames_processed=record.frames_processed,
                outbox_backlog=record.outbox_backlog,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def committed(self) -> None:
        """Tell the writer the transaction committed: new node ids may be reused."""
        self._uncommitted.clear()

    def rolled_back(self) -> None:
        """Tell the writer the transaction rolled back: forget node ids made in it."""
        for key in self._uncommitted:
            self._node_ids.pop(key, None)
        self._uncommitted.clear()

    def _node_id(self, session: Session, key: NodeIdentity, seen_at: datetime | None) -> int:
        node_id = self._node_ids.get(key)
        if node_id is None:
            values = {"site": key.site, "line": key.line, "node": key.node}
            _insert_new(session, Node, values, conflict=("site", "line", "node"))
            node_id = session.execute(
                select(Node.id).where(
                    Node.site == key.site, Node.line == key.line, Node.node == key.node
                )
            ).scalar_one()
            self._node_ids[key] = node_id
            self._uncommitted.add(key)
        if seen_at is not None:
            session.execute(
                update(Node)
                .where(Node.id == node_id)
                .where((Node.last_seen_at.is_(None)) | (Node.last_seen_at < seen_at))
                .values(last_seen_at=seen_at)
            )
        return node_id


def _fields(record: object, exclude: tuple[str, ...]) -> dict[str, Any]:
    names = record.__dataclass_fields__  # type: ignore[attr-defined]
    return {name: getattr(record, name) for name in names if name not in exclude}


def _insert_new(
    session: Session,
    table: type[Alert] | type[Sample] | type[Node],
    values: dict[str, Any],
    conflict: tuple[str, ...] = ("id",),
) -> bool:
    statement: Insert
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = (
            postgresql.insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=list(conflict))
        )
    elif dialect == "sqlite":
        statement = (
            sqlite.insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=list(conflict))
        )
    else:
        msg = f"database dialect {dialect!r} is not supported; use a sqlite:// or postgresql:// URL"
        raise StoreError(msg)
    result = session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]
