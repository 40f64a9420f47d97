"""dead_events: feedback messages the sink could not apply, with the reason

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_events")),
    )
    op.create_index(op.f("ix_dead_events_source"), "dead_events", ["source"], unique=False)
    op.create_index(op.f("ix_dead_events_event_id"), "dead_events", ["event_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_events_event_id"), table_name="dead_events")
    op.drop_index(op.f("ix_dead_events_source"), table_name="dead_events")
    op.drop_table("dead_events")
