"""Reads for people: the alert feed and the sample queue, newest first.

Rows come back as frozen views with ``to_json()``, so the CLI and the review
app print the same fields; every view carries the message ``id``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import Alert, Node, RejectedMessage, ReviewState, Sample

__all__ = [
    "AlertView",
    "NodeView",
    "RejectedView",
    "SampleView",
    "alert_view",
    "list_alerts",
    "list_nodes",
    "list_rejected",
    "list_samples",
    "sample_view",
]


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class _View:
    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times as ISO 8601 UTC)."""
        return {key: _json_value(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class AlertView(_View):
    """One alert for the operators' feed."""

    id: str
    site: str
    line: str
    node: str
    frame_id: str
    captured_at: datetime
    received_at: datetime
    verdict: str
    image_score: float
    threshold: float
    model_name: str
    model_version: str
    sample_id: str | None
    thumbnail_path: str | None
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class SampleView(_View):
    """One sample for the AI team's review queue."""

    id: str
    site: str
    line: str
    node: str
    frame_id: str
    captured_at: datetime
    received_at: datetime
    verdict: str
    image_score: float
    threshold: float
    model_name: str
    model_version: str
    image_path: str
    image_sha256: str
    heatmap_path: str | None
    review_state: str
    reviewed_at: datetime | None
    label: str | None


@dataclass(frozen=True)
class NodeView(_View):
    """One node as the cloud last heard of it."""

    site: str
    line: str
    node: str
    online: bool
    last_seen_at: datetime | None
    grpc_address: str
    model_name: str
    model_version: str
    outbox_backlog: int


def list_alerts(
    session: Session,
    *,
    node: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AlertView]:
    """Return alerts, newest capture first, optionally of one node and after ``since``."""
    query = select(Alert, Node).join(Node, Alert.node_id == Node.id)
    if node is not None:
        query = query.where(Node.node == node)
    if since is not None:
        query = query.where(Alert.captured_at >= since)
    query = query.order_by(Alert.captured_at.desc(), Alert.id).limit(limit)
    return [alert_view(alert, owner) for alert, owner in session.execute(query)]


def list_samples(
    session: Session,
    *,
    verdict: str | None = None,
    reviewed: bool | None = None,
    node: str | None = None,
    limit: int = 100,
) -> list[SampleView]:
    """Return samples, newest capture first, filtered by verdict, review state and node."""
    query = select(Sample, Node).join(Node, Sample.node_id == Node.id)
    if verdict is not None:
        query = query.where(Sample.verdict == verdict)
    if reviewed is True:
        query = query.where(Sample.review_state != ReviewState.PENDING)
    elif reviewed is False:
        query = query.where(Sample.review_state == ReviewState.PENDING)
    if node is not None:
        query = query.where(Node.node == node)
    query = query.order_by(Sample.captured_at.desc(), Sample.id).limit(limit)
    return [sample_view(sample, owner) for sample, owner in session.execute(query)]


def list_nodes(session: Session) -> list[NodeView]:
    """Return every node known to the cloud, by site, line and name."""
    query = select(Node).order_by(Node.site, Node.line, Node.node)
    return [
        NodeView(
            site=n.site,
            line=n.line,
            node=n.node,
            online=n.online,
            last_seen_at=n.last_seen_at,
            grpc_address=n.grpc_address,
            model_name=n.model_name,
            model_version=n.model_version,
            outbox_backlog=n.outbox_backlog,
        )
        for n in session.scalars(query)
    ]


@dataclass(frozen=True)
class RejectedView(_View):
    """One message the collector set aside, and why (the payload stays in the table)."""

    id: int
    received_at: datetime
    topic: str
    payload_size_bytes: int
    reason: str
    collector_id: str


def list_rejected(session: Session, *, limit: int = 100) -> list[RejectedView]:
    """Return dead letters, newest first: what the collector refused to store, and why."""
    query = (
        select(RejectedMessage)
        .order_by(RejectedMessage.received_at.desc(), RejectedMessage.id.desc())
        .limit(limit)
    )
    return [
        RejectedView(
            id=r.id,
            received_at=r.received_at,
            topic=r.topic,
            payload_size_bytes=r.payload_size_bytes,
            reason=r.reason,
            collector_id=r.collector_id,
        )
        for r in session.scalars(query)
    ]


def alert_view(alert: Alert, owner: Node) -> AlertView:
    """Return the view of one alert row and its node."""
    return AlertView(
        id=alert.id,
        site=owner.site,
        line=owner.line,
        node=owner.node,
        frame_id=alert.frame_id,
        captured_at=alert.captured_at,
        received_at=alert.received_at,
        verdict=alert.verdict,
        image_score=alert.image_score,
        threshold=alert.threshold,
        model_name=alert.model_name,
        model_version=alert.model_version,
        sample_id=alert.sample_id,
        thumbnail_path=alert.thumbnail_path,
        acknowledged_at=alert.acknowledged_at,
    )


def sample_view(sample: Sample, owner: Node) -> SampleView:
    """Return the view of one sample row and its node."""
    return SampleView(
        id=sample.id,
        site=owner.site,
        line=owner.line,
        node=owner.node,
        frame_id=sample.frame_id,
        captured_at=sample.captured_at,
        received_at=sample.received_at,
        verdict=sample.verdict,
        image_score=sample.image_score,
        threshold=sample.threshold,
        model_name=sample.model_name,
        model_version=sample.model_version,
        image_path=sample.image_path,
        image_sha256=sample.image_sha256,
        heatmap_path=sample.heatmap_path,
        review_state=sample.review_state,
        reviewed_at=sample.reviewed_at,
        label=sample.label,
    )
