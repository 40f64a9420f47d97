"""feature tables, feature job runs, tracks.updated_at

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feat_track_audio_features",
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
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
        sa.Column("genre", sa.String(length=128), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("text_embedding_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint(
            "track_id", "event_timestamp", name=op.f("pk_feat_track_audio_features")
        ),
    )
    op.create_table(
        "feat_track_popularity",
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("unique_listeners", sa.Integer(), nullable=False),
        sa.Column("skip_rate", sa.Float(), nullable=False),
        sa.Column("trend", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "track_id", "event_timestamp", name=op.f("pk_feat_track_popularity")
        ),
    )
    op.create_table(
        "feat_user_audio_preferences",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pref_danceability", sa.Float(), nullable=True),
        sa.Column("pref_energy", sa.Float(), nullable=True),
        sa.Column("pref_valence", sa.Float(), nullable=True),
        sa.Column("pref_tempo", sa.Float(), nullable=True),
        sa.Column("pref_acousticness", sa.Float(), nullable=True),
        sa.Column("pref_instrumentalness", sa.Float(), nullable=True),
        sa.Column("pref_speechiness", sa.Float(), nullable=True),
        sa.Column("pref_liveness", sa.Float(), nullable=True),
        sa.Column("pref_loudness", sa.Float(), nullable=True),
        sa.Column("spread_danceability", sa.Float(), nullable=True),
        sa.Column("spread_energy", sa.Float(), nullable=True),
        sa.Column("spread_valence", sa.Float(), nullable=True),
        sa.Column("spread_tempo", sa.Float(), nullable=True),
        sa.Column("spread_acousticness", sa.Float(), nullable=True),
        sa.Column("spread_instrumentalness", sa.Float(), nullable=True),
        sa.Column("spread_speechiness", sa.Float(), nullable=True),
        sa.Column("spread_liveness", sa.Float(), nullable=True),
        sa.Column("spread_loudness", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "user_id", "event_timestamp", name=op.f("pk_feat_user_audio_preferences")
        ),
    )
    op.create_table(
        "feat_user_listening_stats",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("skips", sa.Integer(), nullable=False),
        sa.Column("skip_rate", sa.Float(), nullable=False),
        sa.Column("completed_play_ratio", sa.Float(), nullable=False),
        sa.Column("distinct_tracks", sa.Integer(), nullable=False),
        sa.Column("distinct_artists", sa.Integer(), nullable=False),
        sa.Column("listening_minutes", sa.Float(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("mean_session_minutes", sa.Float(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "user_id", "event_timestamp", name=op.f("pk_feat_user_listening_stats")
        ),
    )
    op.create_table(
        "feat_user_track_interactions",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("skips", sa.Integer(), nullable=False),
        sa.Column("last_played_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "user_id", "track_id", "event_timestamp", name=op.f("pk_feat_user_track_interactions")
        ),
    )
    op.create_table(
        "feature_job_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rebuild", sa.Boolean(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_job_runs")),
    )
    with op.batch_alter_table("feature_job_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feature_job_runs_started_at"), ["started_at"], unique=False
        )

    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            )
        )
        batch_op.create_index(batch_op.f("ix_tracks_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_updated_at"))
        batch_op.drop_column("updated_at")

    with op.batch_alter_table("feature_job_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_job_runs_started_at"))

    op.drop_table("feature_job_runs")
    op.drop_table("feat_user_track_interactions")
    op.drop_table("feat_user_listening_stats")
    op.drop_table("feat_user_audio_preferences")
    op.drop_table("feat_track_popularity")
    op.drop_table("feat_track_audio_features")
