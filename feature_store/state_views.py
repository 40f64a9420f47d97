"""The feature tables that are not windowed: track_audio_features (a track's intrinsic data,
a row per track changed since the last run) and user_recent_tracks (each listener's last
RECENT_TRACKS plays, clicks and likes, the SASRec input sequence). Each function brings its
table up to `as_of` on the batch job's connection (feature_store.compute runs them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Select, and_, delete, func, or_, select

from feature_store.feature_sql import E, T, U, upsert
from musicrec.db.models import (
    AUDIO_FEATURES,
    FEAT_TRACK_AUDIO_FEATURES,
    FEAT_USER_RECENT_TRACKS,
    Artist,
    ListeningEvent,
    Track,
    User,
)
from musicrec.events import SEQUENCE_EVENTS
from musicrec.text import text_id, track_text
from musicrec.timeutil import as_utc

# user_recent_tracks: the SASRec input sequence, made of musicrec.events.SEQUENCE_EVENTS (those
# training reads), at most this long.
RECENT_TRACKS = 50


def compute_track_features(
    conn: Connection, as_of: datetime, since: datetime | None, rebuild: bool
) -> int:
    """Intrinsic track data: a row for each track changed since the last run started. Audio
    features do not change over time, so what is known now holds as of `as_of` even for
    historical data: the row's time is the track's last change, but never later than `as_of`."""
    table = FEAT_TRACK_AUDIO_FEATURES
    if rebuild:
        conn.execute(delete(table))
    query = select(
        T.spotify_uri,
        T.name,
        Artist.__table__.c.name.label("artist"),
        T.album_name,
        T.lyrics,
        T.genre,
        T.duration_ms,
        T.updated_at,
        *[T[f] for f in AUDIO_FEATURES],
    ).join(Artist, Artist.__table__.c.id == T.artist_id)
    if since is not None:
        query = query.where(T.updated_at > since)
    rows = []
    for r in conn.execute(query).mappings():
        known = min(as_utc(r["updated_at"]), as_of)
        rows.append(
            {
                "track_id": r["spotify_uri"],
                "event_timestamp": known,
                "created": known,
                "genre": r["genre"],
                "duration_ms": r["duration_ms"],
                "text_embedding_id": text_id(
                    track_text(r["name"], r["artist"], r["album_name"], r["lyrics"])
                ),
                **{f: r[f] for f in AUDIO_FEATURES},
            }
        )
    upsert(conn, table, rows)
    return len(rows)


def compute_recent_tracks(conn: Connection, as_of: datetime, rebuild: bool) -> int:
    """Each changed user's last RECENT_TRACKS sequence events up to `as_of`, oldest first.

    A row is stamped (event_timestamp and created) with its newest event's time, not `as_of`:
    its value depends on events up to that instant only and holds until the user's next event,
    so a point-in-time join at any t >= that time gets the exact sequence (with `as_of` it
    would get the previous, staler row for t before `as_of`). Users are picked by events
    after the table's newest timestamp: every event up to it is already in some row, and a new
    row is thus always newer than the user's previous one."""
    table = FEAT_USER_RECENT_TRACKS
    if rebuild:
        conn.execute(delete(table))
    last = conn.execute(select(func.max(table.c.event_timestamp))).scalar()
    users = None
    if last is not None:
        users = select(E.user_id).where(_sequence(as_of), E.occurred_at > as_utc(last)).distinct()
    rows = recent_tracks_rows(conn, users, as_of)
    upsert(conn, table, rows)
    return len(rows)


def recent_tracks_rows(
    conn: Connection, users: Select[Any] | list[int] | None, as_of: datetime
) -> list[dict[str, Any]]:
    """The user_recent_tracks rows of `users` as of `as_of`, stamped as compute_recent_tracks
    says: what the batch job stores and the feedback push sends. Events at the same instant are
    ordered by event_id. `users`: a query of internal ids, None for everyone, or a list of ids
    (a push's few listeners), whose events are first cut to those that can be among their last
    RECENT_TRACKS, so that the cost does not grow with their history."""
    rank = func.row_number().over(
        partition_by=E.user_id, order_by=(E.occurred_at.desc(), E.event_id.desc())
    )
    ranked = select(E.user_id, E.track_id, E.occurred_at, rank.label("rank")).where(
        _sequence(as_of)
    )
    if isinstance(users, list):
        ranked = ranked.where(or_(*_newest(conn, users, as_of)))
    elif users is not None:
        ranked = ranked.where(E.user_id.in_(users))
    r = ranked.subquery("ranked")
    query = (
        select(U.external_id, T.spotify_uri, r.c.occurred_at, r.c.rank)
        .select_from(r)
        .join(User, U.id == r.c.user_id)
        .join(Track, T.id == r.c.track_id)
        .where(r.c.rank <= RECENT_TRACKS)
    )
    df = pd.DataFrame(conn.execute(query).all(), columns=["user", "uri", "at", "rank"])
    if df.empty:
        return []
    df = df.sort_values(["user", "rank"], ascending=[True, False])  # oldest first
    grouped = df.groupby("user", sort=False)
    rows = pd.DataFrame(
        {
            "track_ids": grouped["uri"].agg(" ".join),
            "n_tracks": grouped.size(),
            "newest": grouped["at"].max(),
        }
    )
    return [
        {
            "user_id": user,
            "event_timestamp": as_utc(newest),
            "created": as_utc(newest),
            "track_ids": track_ids,
            "n_tracks": int(n),
        }
        for user, track_ids, n, newest in rows.itertuples()
    ]


def _newest(conn: Connection, users: list[int], as_of: datetime) -> list[Any]:
    """For each user, their events from the time of their RECENT_TRACKS-th newest sequence
    event on (all of them when they have fewer): one index lookup each, in one query."""
    n = ListeningEvent.__table__.alias("newer").c
    since = (
        select(n.occurred_at)
        .where(n.user_id == U.id, _sequence(as_of, n))
        .order_by(n.occurred_at.desc())
        .offset(RECENT_TRACKS - 1)
        .limit(1)
        .scalar_subquery()
    )
    return [
        and_(E.user_id == user, E.occurred_at >= at) if at is not None else E.user_id == user
        for user, at in conn.execute(select(U.id, since).where(U.id.in_(users)))
    ]


def _sequence(as_of: datetime, e: Any = E) -> Any:
    """The events (of listening_events columns `e`) that make up the sequence, up to `as_of`."""
    return and_(e.event_type.in_([t.value for t in SEQUENCE_EVENTS]), e.occurred_at <= as_of)
