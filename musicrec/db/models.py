"""Typed SQLAlchemy 2 models. Alembic migrations in db/migrations/ create exactly these tables
(a test compares them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from musicrec.events import USER_ID_MAX_CHARS, EventType

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on Postgres; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

AUDIO_FEATURES = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "<app>:<the app's id>" (apps/api/tenancy.py); ingested MPD listeners are the app "mpd".
    external_id: Mapped[str] = mapped_column(String(USER_ID_MAX_CHARS), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = _created_at()


class Artist(Base):
    __tablename__ = "artists"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    # Artists are identified by their normalized name: the reduced MPD has no artist URIs.
    match_key: Mapped[str] = mapped_column(String(512), unique=True)
    spotify_uri: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    spotify_uri: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(512))
    artist_id: Mapped[int] = mapped_column(
        ForeignKey("artists.id", ondelete="RESTRICT"), index=True
    )
    album_name: Mapped[str | None] = mapped_column(String(512))
    album_uri: Mapped[str | None] = mapped_column(String(64))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # "<artist key>|<title key>" from musicrec.text.track_key, for joins without a Spotify id.
    match_key: Mapped[str] = mapped_column(String(1024), index=True)

    danceability: Mapped[float | None] = mapped_column(Float)
    energy: Mapped[float | None] = mapped_column(Float)
    key: Mapped[int | None] = mapped_column(SmallInteger)
    loudness: Mapped[float | None] = mapped_column(Float)
    mode: Mapped[int | None] = mapped_column(SmallInteger)
    speechiness: Mapped[float | None] = mapped_column(Float)
    acousticness: Mapped[float | None] = mapped_column(Float)
    instrumentalness: Mapped[float | None] = mapped_column(Float)
    liveness: Mapped[float | None] = mapped_column(Float)
    valence: Mapped[float | None] = mapped_column(Float)
    tempo: Mapped[float | None] = mapped_column(Float)
    time_signature: Mapped[int | None] = mapped_column(SmallInteger)
    audio_features_source: Mapped[str | None] = mapped_column(String(128))

    genre: Mapped[str | None] = mapped_column(String(128))
    popularity: Mapped[int | None] = mapped_column(SmallInteger)
    lyrics: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    # When the track's own data last changed: the feature job picks changed tracks by it.
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), index=True
    )


class Playlist(Base):
    __tablename__ = "playlists"
    __table_args__ = (UniqueConstraint("source", "pid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Dataset the playlist came from (MPD pids are unique only within one dataset).
    source: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(512))
    collaborative: Mapped[bool | None]
    modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    num_followers: Mapped[int | None] = mapped_column(Integer)
    num_edits: Mapped[int | None] = mapped_column(Integer)
    # The listener this playlist stands for (MPD has no listeners of its own).
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()


class PlaylistTrack(Base):
    __tablename__ = "playlist_tracks"

    playlist_id: Mapped[int] = mapped_column(
        ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="RESTRICT"), index=True)


class ListeningEvent(Base):
    __tablename__ = "listening_events"
    __table_args__ = (
        CheckConstraint(
            "event_type IN (" + ", ".join(f"'{t.value}'" for t in EventType) + ")",
            name="event_type",
        ),
        # Feature windows and the trainer read a user's or a track's events in time order.
        Index(None, "user_id", "occurred_at"),
        Index(None, "track_id", "occurred_at"),
        # Time-range scans over all events (feature windows). BRIN on Postgres: events arrive
        # roughly in time order, and it costs almost nothing to maintain on bulk inserts.
        Index(None, "occurred_at", postgresql_using="brin"),
    )

    # The idempotency key is the identity: no surrogate id and one index fewer to maintain.
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="RESTRICT"))
    event_type: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ms_played: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()


class UserInterestGraph(Base):
    __tablename__ = "user_interest_graph"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # "ok" or "failed"
    graph: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A client key of the public API. Only its sha256 is stored (apps/api/security.py)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # The app the key acts for: its listeners are stored as "<app>:<id>" (apps/api/tenancy.py).
    app: Mapped[str] = mapped_column(String(64))
    # What the key may do, comma-separated: read, write, admin (apps/api/security.py SCOPES).
    scopes: Mapped[str] = mapped_column(String(64))
    # The key's first characters: tell keys apart in listings without revealing them.
    prefix: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeadEvent(Base):
    """A feedback message the sink could not apply: not a valid event, or an event for a track
    not in the catalog. Stored with its reason instead of blocking or being lost."""

    __tablename__ = "dead_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = _created_at()
    # Where it came from: "kafka:<topic>/<partition>/<offset>", "in-process:<seq>", "direct".
    source: Mapped[str] = mapped_column(String(300), index=True)
    # Set when the message was a valid event (rejected): a redelivery is not stored twice.
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    payload: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class EventOutbox(Base):
    """A feedback event Kafka did not acknowledge, kept until apps.workers.outbox.OutboxRelay
    publishes it (in id order) and deletes it."""

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)  # the publishing order
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)  # a client retry: one row
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX_CHARS), index=True)
    payload: Mapped[str] = mapped_column(Text)  # the event's JSON, as sent to Kafka
    created_at: Mapped[datetime] = _created_at()


class Exposure(Base):
    """One answer of a model to a listener: which version served which tracks, when (the ML
    service's clock). The promotion job compares the canary and production on the listeners
    each version actually served, and on the feedback to the tracks it showed them."""

    __tablename__ = "exposures"
    # The promotion job reads one version's exposures since the canary started.
    __table_args__ = (Index(None, "model_version", "served_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    served_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The stored listener id ("<app>:<id>"), as users.external_id: no lookup when serving.
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX_CHARS))
    # What the answer names as its model (a registered one: "<registered model>@v<n>").
    model_version: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(64))
    tracks: Mapped[list[str]] = mapped_column(JSON)  # the recommended track URIs, in order


# --- Feature tables ---------------------------------------------------------------------------
# Offline sources of the Feast feature views (feature_store/): one row per entity and snapshot
# time, written by feature_store/compute.py. `event_timestamp` is the instant the values hold
# for (point-in-time joins); `created` is when they could first have been known, which for a
# snapshot computed from events up to T is T itself (Feast's file store hides rows created
# after a training example's time, so a backfill must not stamp them with the run time).


class FeatureJobRun(Base):
    """One run of the feature batch job: its watermark and what it wrote."""

    __tablename__ = "feature_job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rebuild: Mapped[bool]
    rows: Mapped[dict[str, Any]] = mapped_column(JSON)


AUDIO_PREFERENCE_FEATURES = (
    "danceability",
    "energy",
    "valence",
    "tempo",
    "acousticness",
    "instrumentalness",
    "speechiness",
    "liveness",
    "loudness",
)


def _feature_table(name: str, keys: list[Column[Any]], *features: Column[Any]) -> Table:
    return Table(
        name,
        Base.metadata,
        *keys,
        Column("event_timestamp", DateTime(timezone=True), primary_key=True),
        Column("created", DateTime(timezone=True), nullable=False),
        *features,
    )


def _user_key() -> Column[Any]:
    return Column("user_id", String(USER_ID_MAX_CHARS), primary_key=True)


def _track_key() -> Column[Any]:
    return Column("track_id", String(64), primary_key=True)


FEAT_USER_LISTENING_STATS = _feature_table(
    "feat_user_listening_stats",
    [_user_key()],
    Column("plays", Integer, nullable=False),
    Column("skips", Integer, nullable=False),
    Column("skip_rate", Float, nullable=False),
    Column("completed_play_ratio", Float, nullable=False),
    Column("distinct_tracks", Integer, nullable=False),
    Column("distinct_artists", Integer, nullable=False),
    Column("listening_minutes", Float, nullable=False),
    Column("sessions", Integer, nullable=False),
    Column("mean_session_minutes", Float, nullable=False),
    Column("last_event_at", DateTime(timezone=True)),
)
FEAT_USER_AUDIO_PREFERENCES = _feature_table(
    "feat_user_audio_preferences",
    [_user_key()],
    *[Column(f"pref_{f}", Float) for f in AUDIO_PREFERENCE_FEATURES],
    *[Column(f"spread_{f}", Float) for f in AUDIO_PREFERENCE_FEATURES],
)
FEAT_TRACK_AUDIO_FEATURES = _feature_table(
    "feat_track_audio_features",
    [_track_key()],
    *[
        Column(f, SmallInteger if f in ("key", "mode", "time_signature") else Float)
        for f in AUDIO_FEATURES
    ],
    Column("genre", String(128)),
    Column("duration_ms", Integer),
    Column("text_embedding_id", String(40), nullable=False),
)
FEAT_TRACK_POPULARITY = _feature_table(
    "feat_track_popularity",
    [_track_key()],
    Column("plays", Integer, nullable=False),
    Column("unique_listeners", Integer, nullable=False),
    Column("skip_rate", Float, nullable=False),
    Column("trend", Float, nullable=False),
)
FEAT_USER_TRACK_INTERACTIONS = _feature_table(
    "feat_user_track_interactions",
    [_user_key(), _track_key()],
    Column("plays", Integer, nullable=False),
    Column("skips", Integer, nullable=False),
    Column("last_played_at", DateTime(timezone=True)),
)

# Spotify URIs separated by single spaces, oldest first (at most feature_store's RECENT_TRACKS).
FEAT_USER_RECENT_TRACKS = _feature_table(
    "feat_user_recent_tracks",
    [_user_key()],
    Column("track_ids", Text, nullable=False),
    Column("n_tracks", Integer, nullable=False),
)

# The listener's interest graph as ranking reads it (inference.interest_graph.affinity): JSON
# of artist and label weights, written (and pushed online) by the monthly interest-graph job.
FEAT_USER_INTEREST_GRAPH = _feature_table(
    "feat_user_interest_graph",
    [_user_key()],
    Column("profile", Text, nullable=False),
)
