"""feat_user_recent_tracks: a listener's latest played/clicked tracks (SASRec input)

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feat_user_recent_tracks",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("track_ids", sa.Text(), nullable=False),
        sa.Column("n_tracks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_id", "event_timestamp", name=op.f("pk_feat_user_recent_tracks")
        ),
    )


def downgrade() -> None:
    op.drop_table("feat_user_recent_tracks")
