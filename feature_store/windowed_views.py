"""The feature views aggregated over a sliding window of events: user_listening_stats (7 d),
user_audio_preferences (30 d), track_popularity (7 d, with the prior 7 d for the trend) and
user_track_interactions (30 d). For each, the SQL that aggregates the events in the window
ending at a snapshot time for the entities that changed, and the pandas step that finishes the
row (ratios, square roots and clipping); WINDOWED_VIEWS lists them for the batch job
(feature_store.compute), which decides the snapshot times and writes the rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Float, Select, Table, and_, case, cast, func, or_, select

from feature_store.feature_sql import E, T, U, in_window
from musicrec.db.models import (
    AUDIO_PREFERENCE_FEATURES,
    FEAT_TRACK_POPULARITY,
    FEAT_USER_AUDIO_PREFERENCES,
    FEAT_USER_LISTENING_STATS,
    FEAT_USER_TRACK_INTERACTIONS,
    ListeningEvent,
    Track,
    User,
)
from musicrec.events import EventType

# A play counts as completed at 90% of the track, or 30 s when the duration is unknown.
COMPLETED_SHARE, COMPLETED_MS_UNKNOWN = 0.9, 30_000
# How much each kind of event says about taste (skips count against).
PREFERENCE_WEIGHTS = {"play": 1.0, "like": 2.0, "skip": -0.5, "dislike": -1.0}
FEATURE_RANGES = {"tempo": (0.0, 250.0), "loudness": (-60.0, 5.0)}  # others 0..1


@dataclass(frozen=True)
class WindowedView:
    """A feature view aggregated over a sliding window of events."""

    name: str
    table: Table
    keys: tuple[str, ...]  # "user_id" and/or "track_id" (external ids)
    window: timedelta
    # Consecutive windows the values depend on: 2 when the prior window counts too (a trend).
    windows: int
    aggregate: Callable[[Any, datetime], Select[Any]]  # (changed entities, T) -> rows
    finish: Callable[[pd.DataFrame], pd.DataFrame]

    def values(self, conn: Connection, changed: Any, at: datetime) -> pd.DataFrame:
        """The finished rows of the `changed` entities (a subquery of their internal ids) for
        the window ending at `at`: what the batch job stores and the feedback push sends."""
        df = pd.DataFrame(conn.execute(self.aggregate(changed, at)).mappings().all())
        return self.finish(df) if not df.empty else df


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _is(event_type: EventType) -> Any:
    return E.event_type == event_type.value


# --- user_listening_stats (7 d) ---------------------------------------------------------------


def _user_listening_stats(changed: Any, at: datetime) -> Select[Any]:
    window = in_window(at - timedelta(days=7), at)
    completed = and_(
        _is(EventType.PLAY),
        E.ms_played >= func.coalesce(T.duration_ms * COMPLETED_SHARE, COMPLETED_MS_UNKNOWN),
    )
    return (
        select(
            U.external_id.label("user_id"),
            _count(_is(EventType.PLAY)).label("plays"),
            _count(_is(EventType.SKIP)).label("skips"),
            _count(completed).label("completed"),
            func.count(func.distinct(E.track_id)).label("distinct_tracks"),
            func.count(func.distinct(T.artist_id)).label("distinct_artists"),
            (func.coalesce(func.sum(E.ms_played), 0) / 60000.0).label("listening_minutes"),
            func.count(func.distinct(E.session_id)).label("sessions"),
            func.max(E.occurred_at).label("last_event_at"),
        )
        .select_from(changed)
        .join(User, U.id == changed.c.user_id)
        .outerjoin(ListeningEvent, and_(E.user_id == changed.c.user_id, window))
        .outerjoin(Track, T.id == E.track_id)
        .group_by(U.external_id)
    )


def _finish_listening_stats(df: pd.DataFrame) -> pd.DataFrame:
    listened = df["plays"] + df["skips"]
    df["skip_rate"] = _ratio(df["skips"], listened)
    df["completed_play_ratio"] = _ratio(df["completed"], df["plays"])
    df["mean_session_minutes"] = _ratio(df["listening_minutes"], df["sessions"])
    return df.drop(columns=["completed"])


# --- user_audio_preferences (30 d) ------------------------------------------------------------


def _user_audio_preferences(changed: Any, at: datetime) -> Select[Any]:
    # Only events of tracks with audio features say anything here.
    weight = case(
        (T.id.is_(None), 0.0),
        *[(E.event_type == kind, w) for kind, w in PREFERENCE_WEIGHTS.items()],
        else_=0.0,
    )
    positive = E.event_type.in_(["play", "like"])
    columns = [U.external_id.label("user_id"), func.sum(weight).label("weight")]
    for f in AUDIO_PREFERENCE_FEATURES:
        x = cast(T[f], Float)
        columns += [
            func.sum(weight * x).label(f"wsum_{f}"),
            func.avg(case((positive, x))).label(f"mean_{f}"),
            func.avg(case((positive, x * x))).label(f"meansq_{f}"),
        ]
    return (
        select(*columns)
        .select_from(changed)
        .join(User, U.id == changed.c.user_id)
        .outerjoin(
            ListeningEvent,
            and_(E.user_id == changed.c.user_id, in_window(at - timedelta(days=30), at)),
        )
        .outerjoin(Track, and_(T.id == E.track_id, T.danceability.is_not(None)))
        .group_by(U.external_id)
    )


def _finish_audio_preferences(df: pd.DataFrame) -> pd.DataFrame:
    weight = df.pop("weight").astype(float)
    for f in AUDIO_PREFERENCE_FEATURES:
        low, high = FEATURE_RANGES.get(f, (0.0, 1.0))
        pref = df.pop(f"wsum_{f}").astype(float) / weight.where(weight > 0)
        df[f"pref_{f}"] = pref.clip(low, high)
        mean, meansq = df.pop(f"mean_{f}").astype(float), df.pop(f"meansq_{f}").astype(float)
        df[f"spread_{f}"] = np.sqrt((meansq - mean * mean).clip(lower=0.0))
    return df


# --- track_popularity (7 d, with the prior 7 d for the trend) ---------------------------------


def _track_popularity(changed: Any, at: datetime) -> Select[Any]:
    week = in_window(at - timedelta(days=7), at)
    prior = in_window(at - timedelta(days=14), at - timedelta(days=7))
    return (
        select(
            T.spotify_uri.label("track_id"),
            _count(and_(week, _is(EventType.PLAY))).label("plays"),
            _count(and_(week, _is(EventType.SKIP))).label("skips"),
            _count(and_(prior, _is(EventType.PLAY))).label("prior_plays"),
            func.count(func.distinct(case((week, E.user_id)))).label("unique_listeners"),
        )
        .select_from(changed)
        .join(Track, T.id == changed.c.track_id)
        .outerjoin(ListeningEvent, and_(E.track_id == changed.c.track_id, or_(week, prior)))
        .group_by(T.spotify_uri)
    )


def _finish_popularity(df: pd.DataFrame) -> pd.DataFrame:
    df["skip_rate"] = _ratio(df["skips"], df["plays"] + df["skips"])
    prior = df.pop("prior_plays")
    df["trend"] = (df["plays"] - prior) / prior.clip(lower=1)
    return df.drop(columns=["skips"])


# --- user_track_interactions (30 d) -----------------------------------------------------------


def _user_track_interactions(changed: Any, at: datetime) -> Select[Any]:
    window = in_window(at - timedelta(days=30), at)
    return (
        select(
            U.external_id.label("user_id"),
            T.spotify_uri.label("track_id"),
            _count(_is(EventType.PLAY)).label("plays"),
            _count(_is(EventType.SKIP)).label("skips"),
            func.max(case((_is(EventType.PLAY), E.occurred_at))).label("last_played_at"),
        )
        .select_from(changed)
        .join(User, U.id == changed.c.user_id)
        .join(Track, T.id == changed.c.track_id)
        .outerjoin(
            ListeningEvent,
            and_(E.user_id == changed.c.user_id, E.track_id == changed.c.track_id, window),
        )
        .group_by(U.external_id, T.spotify_uri)
    )


WINDOWED_VIEWS: tuple[WindowedView, ...] = (
    WindowedView(
        "user_listening_stats",
        FEAT_USER_LISTENING_STATS,
        ("user_id",),
        timedelta(days=7),
        1,
        _user_listening_stats,
        _finish_listening_stats,
    ),
    WindowedView(
        "user_audio_preferences",
        FEAT_USER_AUDIO_PREFERENCES,
        ("user_id",),
        timedelta(days=30),
        1,
        _user_audio_preferences,
        _finish_audio_preferences,
    ),
    WindowedView(
        "track_popularity",
        FEAT_TRACK_POPULARITY,
        ("track_id",),
        timedelta(days=7),
        2,
        _track_popularity,
        _finish_popularity,
    ),
    WindowedView(
        "user_track_interactions",
        FEAT_USER_TRACK_INTERACTIONS,
        ("user_id", "track_id"),
        timedelta(days=30),
        1,
        _user_track_interactions,
        lambda df: df,
    ),
)

BY_NAME = {view.name: view for view in WINDOWED_VIEWS}


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).fillna(0.0).astype(float)
