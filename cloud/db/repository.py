"""Idempotent writes of what the nodes send: alerts, samples, node status, dead letters.

A batch of alerts (or samples) is inserted with one ``INSERT ... ON CONFLICT DO
NOTHING RETURNING id`` on their message ids, so a resent message (after an
outage, a killed collector, a restarted node) is stored once, even with several
collectors sharing the stream, and the ids that come back say which were new.
The statements are Core, not ORM: per row, the ORM's unit of work costs more
than the database does. Nodes are created the first time anything names them
and their ids cached. The caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.db.models import Alert, Node, RejectedMessage, Sample
from cloud.errors import StoreError
from edge.runtime.mqtt_link import NodeIdentity

__all__ = [
    "AlertRecord",
    "BatchOutcome",
    "MessageWriter",
    "Record",
    "RejectedRecord",
    "SampleRecord",
    "StatusRecord",
]

_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
_SAMPLES: Table = Sample.__table__  # type: ignore[assignment]
_NODES: Table = Node.__table__  # type: ignore[assignment]
_REJECTED: Table = RejectedMessage.__table__  # type: ignore[assignment]
_Stored = TypeVar("_Stored", "AlertRecord", "SampleRecord")


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


@dataclass(frozen=True)
class RejectedRecord:
    """A message set aside (a dead letter): its first bytes and why it was refused."""

    fingerprint: str
    received_at: datetime
    topic: str
    payload: bytes
    payload_size_bytes: int
    reason: str
    collector_id: str


Record = AlertRecord | SampleRecord | StatusRecord | RejectedRecord


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch changed: the ids that were new, and the rest counted."""

    new_alert_ids: frozenset[str] = frozenset()
    new_sample_ids: frozenset[str] = frozenset()
    duplicates: int = 0
    statuses_applied: int = 0
    rejected_new: int = 0


class MessageWriter:
    """Writes collector messages inside a caller's transaction; caches node ids."""

    def __init__(self) -> None:
        """Start with an empty node cache."""
        self._node_ids: dict[NodeIdentity, int] = {}
        self._uncommitted: set[NodeIdentity] = set()

    def write_batch(self, session: Session, records: Sequence[Record]) -> BatchOutcome:
        """Write a batch: one insert statement per table, one update per node touched.

        Args:
            session: the caller's open transaction.
            records: checked records, in arrival order.

        Returns:
            Which alerts and samples were new, and how many were already stored.

        Raises:
            StoreError: a database dialect other than SQLite or PostgreSQL.
        """
        alerts = _unique([r for r in records if isinstance(r, AlertRecord)])
        samples = _unique([r for r in records if isinstance(r, SampleRecord)])
        statuses = [r for r in records if isinstance(r, StatusRecord)]
        rejected = [r for r in records if isinstance(r, RejectedRecord)]
        named = [r.node for r in alerts] + [r.node for r in samples] + [r.node for r in statuses]
        node_ids = self._node_ids_for(session, named)
        new_alerts = self._insert_rows(session, _ALERTS, alerts, node_ids)
        new_samples = self._insert_rows(session, _SAMPLES, samples, node_ids)
        applied = self._apply_statuses(session, statuses, node_ids)
        self._mark_seen(session, [*alerts, *samples], statuses, node_ids)
        rejected_new = 0
        if rejected:
            statement = _insert(session, _REJECTED).on_conflict_do_nothing(
                index_elements=["fingerprint"]
            )
            rows = [_fields(r, exclude=()) for r in rejected]
            rejected_new = int(session.connection().execute(statement, rows).rowcount)
        stored = sum(1 for r in records if isinstance(r, AlertRecord | SampleRecord))
        return BatchOutcome(
            new_alert_ids=frozenset(new_alerts),
            new_sample_ids=frozenset(new_samples),
            duplicates=stored - len(new_alerts) - len(new_samples),
            statuses_applied=applied,
            rejected_new=rejected_new,
        )

    def add_alert(self, session: Session, record: AlertRecord) -> bool:
        """Insert an alert unless its id is stored; True when it was new."""
        return bool(self.write_batch(session, [record]).new_alert_ids)

    def add_sample(self, session: Session, record: SampleRecord) -> bool:
        """Insert a sample unless its id is stored; True when it was new."""
        return bool(self.write_batch(session, [record]).new_sample_ids)

    def apply_status(self, session: Session, record: StatusRecord) -> bool:
        """Apply a status unless a newer one was applied; True when it changed the node."""
        return bool(self.write_batch(session, [record]).statuses_applied)

    def committed(self) -> None:
        """Tell the writer the transaction committed: new node ids may be reused."""
        self._uncommitted.clear()

    def rolled_back(self) -> None:
        """Tell the writer the transaction rolled back: forget node ids made in it."""
        for key in self._uncommitted:
            self._node_ids.pop(key, None)
        self._uncommitted.clear()

    def _insert_rows(
        self,
        session: Session,
        table: Table,
        records: Sequence[AlertRecord | SampleRecord],
        node_ids: dict[NodeIdentity, int],
    ) -> list[str]:
        if not records:
            return []
        rows = []
        for record in records:
            values = _fields(record, exclude=("node",))
            values["node_id"] = node_ids[record.node]
            if "extra" in values:  # Sample.extra lives in the column "metadata"
                values["metadata"] = values.pop("extra")
            rows.append(values)
        statement = (
            _insert(session, table)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(table.c.id)
        )
        # A list of rows goes out as one multi-row INSERT ("insertmanyvalues").
        return list(session.connection().execute(statement, rows).scalars())

    def _apply_statuses(
        self, session: Session, statuses: Sequence[StatusRecord], node_ids: dict[NodeIdentity, int]
    ) -> int:
        newest: dict[NodeIdentity, StatusRecord] = {}
        for record in statuses:  # only a node's newest status in the batch can win
            held = newest.get(record.node)
            if held is None or held.at <= record.at:
                newest[record.node] = record
        applied = 0
        connection = session.connection()
        for record in newest.values():
            result = connection.execute(
                update(_NODES)
                .where(_NODES.c.id == node_ids[record.node])
                .where(or_(_NODES.c.status_at.is_(None), _NODES.c.status_at <= record.at))
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
            applied += int(result.rowcount)
        return applied

    def _mark_seen(
        self,
        session: Session,
        stored: Sequence[AlertRecord | SampleRecord],
        statuses: Sequence[StatusRecord],
        node_ids: dict[NodeIdentity, int],
    ) -> None:
        seen: dict[int, datetime] = {}
        moments = [(r.node, r.received_at) for r in stored]
        moments += [(r.node, r.at) for r in statuses if r.online]
        for node, at in moments:
            node_id = node_ids[node]
            if node_id not in seen or seen[node_id] < at:
                seen[node_id] = at
        if not seen:
            return
        statement = (
            update(_NODES)
            .where(_NODES.c.id == bindparam("node_id"))
            .where(
                or_(_NODES.c.last_seen_at.is_(None), _NODES.c.last_seen_at < bindparam("seen_at"))
            )
            .values(last_seen_at=bindparam("seen_at"))
        )
        rows = [{"node_id": node_id, "seen_at": at} for node_id, at in seen.items()]
        session.connection().execute(statement, rows)

    def _node_ids_for(
        self, session: Session, nodes: Sequence[NodeIdentity]
    ) -> dict[NodeIdentity, int]:
        found: dict[NodeIdentity, int] = {}
        for key in nodes:
            if key in found:
                continue
            node_id = self._node_ids.get(key)
            if node_id is None:
                node_id = self._create_node(session, key)
            found[key] = node_id
        return found

    def _create_node(self, session: Session, key: NodeIdentity) -> int:
        connection = session.connection()
        values = {"site": key.site, "line": key.line, "node": key.node}
        insert = _insert(session, _NODES).on_conflict_do_nothing(
            index_elements=["site", "line", "node"]
        )
        connection.execute(insert, values)
        node_id = int(
            connection.execute(
                select(_NODES.c.id).where(
                    _NODES.c.site == key.site, _NODES.c.line == key.line, _NODES.c.node == key.node
                )
            ).scalar_one()
        )
        self._node_ids[key] = node_id
        self._uncommitted.add(key)
        return node_id


def _unique(records: list[_Stored]) -> list[_Stored]:
    by_id: dict[str, _Stored] = {}
    for record in records:
        by_id.setdefault(record.id, record)  # the same id twice in a batch: a resend
    return list(by_id.values())


def _fields(record: object, exclude: tuple[str, ...]) -> dict[str, Any]:
    names = record.__dataclass_fields__  # type: ignore[attr-defined]
    return {name: getattr(record, name) for name in names if name not in exclude}


def _insert(session: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    msg = f"database dialect {dialect!r} is not supported; use a sqlite:// or postgresql:// URL"
    raise StoreError(msg)
