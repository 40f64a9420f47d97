"""feat_user_interest_graph: a listener's interest-graph profile (ranking feature)

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feat_user_interest_graph",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_id", "event_timestamp", name=op.f("pk_feat_user_interest_graph")
        ),
    )


def downgrade() -> None:
    op.drop_table("feat_user_interest_graph")
