"""Rollbacks are deployments too: a kind column, and no single model version for them.

A rollback sends each node back to the bundle it ran before, which need not be
the same version on every node, so ``deployments.model_version_id`` may be empty;
each node's outcome says where it went.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Batch mode: SQLite cannot alter a column in place; Alembic copies the table.
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), server_default="rollout", nullable=False)
        )
        batch.alter_column("model_version_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    """Downgrade schema (rollback records are dropped: they have no model version)."""
    op.execute(
        "DELETE FROM deployment_targets WHERE deployment_id IN "
        "(SELECT id FROM deployments WHERE model_version_id IS NULL)"
    )
    op.execute("DELETE FROM deployments WHERE model_version_id IS NULL")
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("model_version_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("kind")
