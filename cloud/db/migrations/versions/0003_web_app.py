"""The web app: users, image embeddings for similar cases, indexes for the review queue.

Reviews already form an append-only trail (0001); this adds indexes on their
time (today's throughput) and defect type (the types seen so far), one
matching the review queue's order, and one on when alerts arrived (the live feed
asks for what arrived since its last poll).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "sample_embeddings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sample_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"]),
        sa.ForeignKeyConstraint(["sample_id"], ["samples.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sample_id"),
    )
    op.create_index("ix_sample_embeddings_node_id", "sample_embeddings", ["node_id"], unique=False)
    op.create_index("ix_reviews_created_at", "reviews", ["created_at"], unique=False)
    op.create_index("ix_reviews_defect_type", "reviews", ["defect_type"], unique=False)
    op.create_index("ix_alerts_received_at", "alerts", ["received_at"], unique=False)
    op.create_index(
        "ix_samples_queue", "samples", ["review_state", "verdict", "captured_at"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema (users and embeddings are dropped; reviews stay)."""
    op.drop_index("ix_samples_queue", table_name="samples")
    op.drop_index("ix_alerts_received_at", table_name="alerts")
    op.drop_index("ix_reviews_defect_type", table_name="reviews")
    op.drop_index("ix_reviews_created_at", table_name="reviews")
    op.drop_index("ix_sample_embeddings_node_id", table_name="sample_embeddings")
    op.drop_table("sample_embeddings")
    op.drop_table("users")
