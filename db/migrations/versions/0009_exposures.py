"""exposures: which model version answered which listener with which tracks, and when

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exposures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("tracks", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exposures")),
    )
    op.create_index(
        op.f("ix_exposures_model_version_served_at"),
        "exposures",
        ["model_version", "served_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_exposures_model_version_served_at"), table_name="exposures")
    op.drop_table("exposures")
