"""Deployments (batching, workers, canary splits) and the kind of each alias history event.

Revision ID: 0003_deployments
Revises: 0002_gateway
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_deployments"
down_revision = "0002_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("models.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("max_batch_size", sa.Integer, nullable=True),
        sa.Column("max_wait_ms", sa.Float, nullable=True),
        sa.Column("workers", sa.Integer, nullable=True),
        sa.Column("canaries", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False, server_default=""),
    )
    with op.batch_alter_table("alias_history") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="set"))


def downgrade() -> None:
    with op.batch_alter_table("alias_history") as batch:
        batch.drop_column("kind")
    op.drop_table("deployments")
