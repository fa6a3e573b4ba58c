"""Initial tables: nodes, alerts, samples, reviews, model versions, deployments.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("line", sa.String(length=128), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("grpc_address", sa.String(length=256), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("status_at", sa.DateTime(), nullable=True),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("frames_processed", sa.BigInteger(), nullable=False),
        sa.Column("outbox_backlog", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site", "line", "node", name="uq_nodes_site_line_node"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.String(length=256), nullable=False),
        sa.Column("captured_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("image_score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("thumbnail_path", sa.String(length=512), nullable=True),
        sa.Column("sample_id", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_captured_at", "alerts", ["captured_at"], unique=False)
    op.create_index("ix_alerts_node_id", "alerts", ["node_id"], unique=False)
    op.create_index("ix_alerts_sample_id", "alerts", ["sample_id"], unique=False)
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_deployments_model_version_id", "deployments", ["model_version_id"], unique=False
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.String(length=256), nullable=False),
        sa.Column("captured_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("image_score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("uncertain_low", sa.Float(), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("image_path", sa.String(length=512), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("heatmap_path", sa.String(length=512), nullable=True),
        sa.Column("heatmap_sha256", sa.String(length=64), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("review_state", sa.String(length=16), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_samples_captured_at", "samples", ["captured_at"], unique=False)
    op.create_index("ix_samples_node_id", "samples", ["node_id"], unique=False)
    op.create_index("ix_samples_review_state", "samples", ["review_state"], unique=False)
    op.create_index("ix_samples_verdict", "samples", ["verdict"], unique=False)
    op.create_table(
        "deployment_targets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_id", "node_id", name="uq_deployment_targets_node"),
    )
    op.create_index(
        "ix_deployment_targets_deployment_id", "deployment_targets", ["deployment_id"], unique=False
    )
    op.create_index(
        "ix_deployment_targets_node_id", "deployment_targets", ["node_id"], unique=False
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sample_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("defect_type", sa.String(length=128), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reviews_sample_id", "reviews", ["sample_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_reviews_sample_id", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_deployment_targets_node_id", table_name="deployment_targets")
    op.drop_index("ix_deployment_targets_deployment_id", table_name="deployment_targets")
    op.drop_table("deployment_targets")
    op.drop_index("ix_samples_verdict", table_name="samples")
    op.drop_index("ix_samples_review_state", table_name="samples")
    op.drop_index("ix_samples_node_id", table_name="samples")
    op.drop_index("ix_samples_captured_at", table_name="samples")
    op.drop_table("samples")
    op.drop_index("ix_deployments_model_version_id", table_name="deployments")
    op.drop_table("deployments")
    op.drop_index("ix_alerts_sample_id", table_name="alerts")
    op.drop_index("ix_alerts_node_id", table_name="alerts")
    op.drop_index("ix_alerts_captured_at", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("nodes")
    op.drop_table("model_versions")
