"""Reference data per version and the sampled prediction log.

Revision ID: 0007_monitoring
Revises: 0003_deployments
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_monitoring"
down_revision = "0003_deployments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_data",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("input_name", sa.String(128), nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("sample", sa.JSON, nullable=False),
        sa.Column("predictions", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
    )
    op.create_index("ix_prediction_log_model_version_at", "prediction_log", ["model", "version", "at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_model_version_at", "prediction_log")
    op.drop_table("prediction_log")
    op.drop_table("reference_data")
