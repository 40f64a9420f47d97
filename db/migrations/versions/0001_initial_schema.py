"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# BIGINT on Postgres; SQLite auto-increments only a column declared INTEGER.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "artists",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("match_key", sa.String(length=512), nullable=False),
        sa.Column("spotify_uri", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artists")),
        sa.UniqueConstraint("match_key", name=op.f("uq_artists_match_key")),
    )
    op.create_table(
        "users",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("external_id", name=op.f("uq_users_external_id")),
    )
    op.create_table(
        "playlists",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("pid", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("collaborative", sa.Boolean(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("num_followers", sa.Integer(), nullable=True),
        sa.Column("num_edits", sa.Integer(), nullable=True),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_playlists_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playlists")),
        sa.UniqueConstraint("source", "pid", name=op.f("uq_playlists_source_pid")),
    )
    with op.batch_alter_table("playlists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_playlists_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tracks",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("spotify_uri", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("artist_id", BIG_ID, nullable=False),
        sa.Column("album_name", sa.String(length=512), nullable=True),
        sa.Column("album_uri", sa.String(length=64), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("match_key", sa.String(length=1024), nullable=False),
        sa.Column("danceability", sa.Float(), nullable=True),
        sa.Column("energy", sa.Float(), nullable=True),
        sa.Column("key", sa.SmallInteger(), nullable=True),
        sa.Column("loudness", sa.Float(), nullable=True),
        sa.Column("mode", sa.SmallInteger(), nullable=True),
        sa.Column("speechiness", sa.Float(), nullable=True),
        sa.Column("acousticness", sa.Float(), nullable=True),
        sa.Column("instrumentalness", sa.Float(), nullable=True),
        sa.Column("liveness", sa.Float(), nullable=True),
        sa.Column("valence", sa.Float(), nullable=True),
        sa.Column("tempo", sa.Float(), nullable=True),
        sa.Column("time_signature", sa.SmallInteger(), nullable=True),
        sa.Column("audio_features_source", sa.String(length=128), nullable=True),
        sa.Column("genre", sa.String(length=128), nullable=True),
        sa.Column("popularity", sa.SmallInteger(), nullable=True),
        sa.Column("lyrics", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["artists.id"],
            name=op.f("fk_tracks_artist_id_artists"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
        sa.UniqueConstraint("spotify_uri", name=op.f("uq_tracks_spotify_uri")),
    )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracks_artist_id"), ["artist_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tracks_match_key"), ["match_key"], unique=False)

    op.create_table(
        "user_interest_graph",
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("graph", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_interest_graph_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_interest_graph")),
    )
    op.create_table(
        "listening_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("track_id", BIG_ID, nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ms_played", sa.Integer(), nullable=True),
        sa.Column("device", sa.String(length=32), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "event_type IN ('play', 'click', 'skip', 'like', 'dislike')",
            name=op.f("ck_listening_events_event_type"),
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_listening_events_track_id_tracks"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_listening_events_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_listening_events")),
    )
    with op.batch_alter_table("listening_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_listening_events_occurred_at"),
            ["occurred_at"],
            unique=False,
            postgresql_using="brin",
        )
        batch_op.create_index(
            batch_op.f("ix_listening_events_track_id_occurred_at"),
            ["track_id", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_listening_events_user_id_occurred_at"),
            ["user_id", "occurred_at"],
            unique=False,
        )

    op.create_table(
        "playlist_tracks",
        sa.Column("playlist_id", BIG_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("track_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["playlist_id"],
            ["playlists.id"],
            name=op.f("fk_playlist_tracks_playlist_id_playlists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_playlist_tracks_track_id_tracks"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("playlist_id", "position", name=op.f("pk_playlist_tracks")),
    )
    with op.batch_alter_table("playlist_tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_playlist_tracks_track_id"), ["track_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("playlist_tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_playlist_tracks_track_id"))

    op.drop_table("playlist_tracks")
    with op.batch_alter_table("listening_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listening_events_user_id_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_listening_events_track_id_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_listening_events_occurred_at"))

    op.drop_table("listening_events")
    op.drop_table("user_interest_graph")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_match_key"))
        batch_op.drop_index(batch_op.f("ix_tracks_artist_id"))

    op.drop_table("tracks")
    with op.batch_alter_table("playlists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_playlists_user_id"))

    op.drop_table("playlists")
    op.drop_table("users")
    op.drop_table("artists")
