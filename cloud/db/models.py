"""The database: nodes, what they flagged, what experts said, and what was deployed where.

SQLAlchemy 2 typed ORM models; Alembic migrations in ``cloud.db.migrations``
create the same tables (a test compares them). Message ids from the edge are
the primary keys of alerts and samples, so storing a resent message is a no-op.
Times are timezone-aware UTC on the way out, whatever the engine keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Alert",
    "Base",
    "Deployment",
    "DeploymentTarget",
    "ModelVersion",
    "Node",
    "RejectedMessage",
    "Review",
    "ReviewState",
    "Role",
    "Sample",
    "SampleEmbedding",
    "User",
    "UtcDateTime",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC timestamp: stored naive UTC (SQLite keeps no zone), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = f"timestamp {value.isoformat()} has no timezone; pass an aware UTC datetime"
            raise ValueError(msg)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ReviewState(StrEnum):
    """Where a sample stands in the AI team's review queue."""

    PENDING = "pending"
    REVIEWED = "reviewed"
    SKIPPED = "skipped"


class Role(StrEnum):
    """What a person may do: each role can do everything the one before it can."""

    OPERATOR = "operator"  # sees alerts and nodes
    EXPERT = "expert"  # also reviews samples
    ADMIN = "admin"  # also manages users


class Base(DeclarativeBase):
    """Declarative base of every Linewatch table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class Node(Base):
    """One edge node, keyed by where it stands; updated by status, alerts and samples."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("site", "line", "node", name="uq_nodes_site_line_node"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(128))
    line: Mapped[str] = mapped_column(String(128))
    node: Mapped[str] = mapped_column(String(128))
    grpc_address: Mapped[str] = mapped_column(String(256), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]  # time of the status that set ``online``
    model_name: Mapped[str] = mapped_column(String(256), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    frames_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    outbox_backlog: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ModelVersion(Base):
    """A registered model version (MLflow name and version) the fleet may run."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64), default="")
    mlflow_run_id: Mapped[str] = mapped_column(String(64), default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Alert(Base):
    """An abnormal frame an operator must hear about; the id is the edge's message id."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    frame_id: Mapped[str] = mapped_column(String(256))
    captured_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)  # live feed
    verdict: Mapped[str] = mapped_column(String(16))
    image_score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64), default="")
    thumbnail_path: Mapped[str | None] = mapped_column(String(512))
    sample_id: Mapped[str | None] = mapped_column(String(64), index=True)  # may arrive later
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))

    node: Mapped[Node] = relationship()


class Sample(Base):
    """An uncertain or abnormal frame with its image and map, waiting for review."""

    __tablename__ = "samples"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    frame_id: Mapped[str] = mapped_column(String(256))
    captured_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    image_score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    uncertain_low: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64), default="")
    image_path: Mapped[str] = mapped_column(String(512))
    image_sha256: Mapped[str] = mapped_column(String(64))
    heatmap_path: Mapped[str | None] = mapped_column(String(512))
    heatmap_sha256: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    review_state: Mapped[str] = mapped_column(String(16), default=ReviewState.PENDING, index=True)
    reviewed_at: Mapped[datetime | None]
    label: Mapped[str | None] = mapped_column(String(64))

    node: Mapped[Node] = relationship()


class Review(Base):
    """One expert's judgement of a sample: an append-only trail, a correction is a new row.

    The sample's ``label`` and ``review_state`` mirror its newest review, so the
    queue never has to look at the trail.
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[str] = mapped_column(ForeignKey("samples.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(64))
    defect_type: Mapped[str | None] = mapped_column(String(128), index=True)  # types seen
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)  # today's count


class Deployment(Base):
    """A rollout of one model version to a set of nodes, or a rollback of some nodes.

    A rollback has no single model version (each node goes back to what it ran
    before); its targets' outcomes say where each went.
    """

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default="rollout", server_default="rollout")
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id"), index=True
    )
    state: Mapped[str] = mapped_column(String(32), default="pending")
    requested_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None]

    targets: Mapped[list[DeploymentTarget]] = relationship(back_populates="deployment")


class DeploymentTarget(Base):
    """One node's progress and outcome within a deployment."""

    __tablename__ = "deployment_targets"
    __table_args__ = (
        UniqueConstraint("deployment_id", "node_id", name="uq_deployment_targets_node"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    state: Mapped[str] = mapped_column(String(32), default="pending")
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    outcome: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    deployment: Mapped[Deployment] = relationship(back_populates="targets")


class SampleEmbedding(Base):
    """A sample's compact image descriptor, for the similar-past-cases search.

    A table of its own rather than a column on ``samples``: rows are only ever
    appended, so a search index catches up by reading ids above the last it saw.
    """

    __tablename__ = "sample_embeddings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[str] = mapped_column(ForeignKey("samples.id"), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float16, L2-normalised
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class User(Base):
    """A person who may log in to the web app; never deleted, only disabled."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class RejectedMessage(Base):
    """A message the collector could not store, set aside with the reason (a dead letter).

    Kept so that a bad or hostile message is acknowledged (the broker stops resending
    it) without being lost from sight. ``fingerprint`` is the sha256 of topic and
    payload: a resend of the same bytes is stored once.
    """

    __tablename__ = "rejected_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    topic: Mapped[str] = mapped_column(String(256))
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the first bytes only
    payload_size_bytes: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(1024))
    collector_id: Mapped[str] = mapped_column(String(64))


# The review queue: pending samples of a verdict, oldest first.
Index("ix_samples_queue", Sample.review_state, Sample.verdict, Sample.captured_at)
