"""api_keys.app and api_keys.scopes; stored listener ids ("<app>:<id>") widened to 200

Existing keys get their own name as app and the scopes read and write (what every key could do
before). Existing listeners keep their ids: ingested MPD listeners (`mpd:<source>:<pid>`) are
the app `mpd`'s, synthetic ones (`demo:user:<n>`) the app `demo`'s.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column) holding a stored listener id.
LISTENER_COLUMNS = [
    ("users", "external_id"),
    ("event_outbox", "user_id"),
    ("feat_user_listening_stats", "user_id"),
    ("feat_user_audio_preferences", "user_id"),
    ("feat_user_track_interactions", "user_id"),
    ("feat_user_recent_tracks", "user_id"),
    ("feat_user_interest_graph", "user_id"),
]


def _resize(old: int, new: int) -> None:
    # Postgres widens a varchar in place (no table rewrite); SQLite's batch mode copies the table.
    for table, column in LISTENER_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=old),
                type_=sa.String(length=new),
                existing_nullable=False,
            )


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.String(length=64), nullable=True))
    op.execute("UPDATE api_keys SET app = name, scopes = 'read,write'")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("app", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("scopes", existing_type=sa.String(length=64), nullable=False)
    _resize(128, 200)


def downgrade() -> None:
    # Fails on Postgres if a stored listener id is longer than 128 characters by then.
    _resize(200, 128)
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("scopes")
        batch_op.drop_column("app")
