"""The feature batch job: aggregates listening_events with SQL into the feature tables (the
offline sources of the Feast views).

Point in time: a row with event_timestamp T holds aggregates over events in (T - window, T]
only, so a training example at time t >= T that is joined to it sees nothing from after T.

Snapshots are written only where values change. At snapshot T (previous snapshot P), the rows
written are those of entities with events that entered a window, (P, T], or left one,
(P - window, T - window]; an entity whose events all left its window gets a row of zeros, so an
old value never outlives its window. A run takes snapshots at the end of every day on which
something changed since the last run, and at `as_of`; re-running with the same `as_of` writes
nothing. `rebuild=True` deletes the rows and recomputes all history.

Every table is keyed by (entity, event_timestamp), and a row the job computes again for a key it
has already written replaces that row (an upsert, in the job's one transaction) instead of
failing on the key: track_audio_features stamps a track changed after `as_of` at `as_of`, so a
re-run at the same `as_of` (historical data: `as_of` is the newest event) after new audio
features were joined recomputes the rows of that instant, now with the new values.

user_recent_tracks is not windowed: a run writes one row per user with a play or click since
the previous run (everyone on the first run or a rebuild), holding their last RECENT_TRACKS
such events as of `as_of`.

The same SQL runs on Postgres and SQLite; ratios, square roots and clipping are done in pandas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Select,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from musicrec.db.models import (
    AUDIO_FEATURES,
    AUDIO_PREFERENCE_FEATURES,
    FEAT_TRACK_AUDIO_FEATURES,
    FEAT_TRACK_POPULARITY,
    FEAT_USER_AUDIO_PREFERENCES,
    FEAT_USER_LISTENING_STATS,
    FEAT_USER_RECENT_TRACKS,
    FEAT_USER_TRACK_INTERACTIONS,
    Artist,
    FeatureJobRun,
    ListeningEvent,
    Track,
    User,
)
from musicrec.events import EventType
from musicrec.text import text_id, track_text
from musicrec.timeutil import as_utc

E = ListeningEvent.__table__.c
T = Track.__table__.c
U = User.__table__.c
DAY = timedelta(days=1)
# A play counts as completed at 90% of the track, or 30 s when the duration is unknown.
COMPLETED_SHARE, COMPLETED_MS_UNKNOWN = 0.9, 30_000
# How much each kind of event says about taste (skips count against).
PREFERENCE_WEIGHTS = {"play": 1.0, "like": 2.0, "skip": -0.5, "dislike": -1.0}
FEATURE_RANGES = {"tempo": (0.0, 250.0), "loudness": (-60.0, 5.0)}  # others 0..1
# user_recent_tracks: the SASRec input sequence, made of these events, at most this long.
RECENT_TRACKS = 50
SEQUENCE_EVENTS = (EventType.PLAY, EventType.CLICK)


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


def _in(start: datetime, end: datetime) -> Any:
    return and_(E.occurred_at > start, E.occurred_at <= end)


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _is(event_type: EventType) -> Any:
    return E.event_type == event_type.value


# --- user_listening_stats (7 d) ---------------------------------------------------------------


def _user_listening_stats(changed: Any, at: datetime) -> Select[Any]:
    window = _in(at - timedelta(days=7), at)
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
            and_(E.user_id == changed.c.user_id, _in(at - timedelta(days=30), at)),
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
    week = _in(at - timedelta(days=7), at)
    prior = _in(at - timedelta(days=14), at - timedelta(days=7))
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
    window = _in(at - timedelta(days=30), at)
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


WINDOWED_VIEWS = (
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


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).fillna(0.0).astype(float)


# --- the job ----------------------------------------------------------------------------------


@dataclass
class ComputeReport:
    rows: dict[str, int]
    snapshots: dict[str, int]
    as_of: datetime


def latest_event_time(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(select(func.max(E.occurred_at))).scalar()
    return as_utc(value) if value is not None else None


def compute_features(
    engine: Engine,
    as_of: datetime,
    *,
    rebuild: bool = False,
    on_view: Callable[[str], None] | None = None,
) -> ComputeReport:
    """Bring every feature table up to `as_of` in one transaction, and record the run.
    `on_view` is told each view's name before it is computed (progress)."""
    started = datetime.now(UTC)
    report = ComputeReport(rows={}, snapshots={}, as_of=as_of)
    with engine.begin() as conn:
        last_run = conn.execute(select(func.max(FeatureJobRun.started_at))).scalar()
        for view in WINDOWED_VIEWS:
            if on_view:
                on_view(view.name)
            rows, snapshots = _compute_windowed(conn, view, as_of, rebuild)
            report.rows[view.name], report.snapshots[view.name] = rows, snapshots
        since = None if rebuild or last_run is None else as_utc(last_run)
        if on_view:
            on_view("track_audio_features")
        report.rows["track_audio_features"] = _compute_track_features(conn, as_of, since, rebuild)
        if on_view:
            on_view("user_recent_tracks")
        report.rows["user_recent_tracks"] = _compute_recent_tracks(conn, as_of, rebuild)
        conn.execute(
            insert(FeatureJobRun).values(
                as_of=as_of,
                started_at=started,
                finished_at=datetime.now(UTC),
                rebuild=rebuild,
                rows=report.rows,
            )
        )
    return report


def _compute_windowed(
    conn: Connection, view: WindowedView, as_of: datetime, rebuild: bool
) -> tuple[int, int]:
    if rebuild:
        conn.execute(delete(view.table))
    last = conn.execute(select(func.max(view.table.c.event_timestamp))).scalar()
    previous = as_utc(last) if last is not None else None
    rows = snapshots = 0
    for at in _snapshot_times(conn, view, previous, as_of):
        changed = _changed_entities(view, previous, at)
        df = pd.DataFrame(conn.execute(view.aggregate(changed, at)).mappings().all())
        if not df.empty:
            df = view.finish(df)
            df["event_timestamp"] = df["created"] = at  # known from events up to `at` only
            _upsert(conn, view.table, _records(df))
            rows += len(df)
            snapshots += 1
        previous = at
    return rows, snapshots


def _shifts(view: WindowedView) -> range:
    """Multiples of the window at which an event changes the view: when it happens, and when
    it leaves each window."""
    return range(view.windows + 1)


def _snapshot_times(
    conn: Connection, view: WindowedView, previous: datetime | None, as_of: datetime
) -> list[datetime]:
    """Ends of days on which an event entered or left one of the view's windows, after
    `previous` and before `as_of`, then `as_of` itself."""
    day = func.date(E.occurred_at)
    if conn.dialect.name == "postgresql":  # the date in UTC, whatever the session time zone
        day = func.date(func.timezone("UTC", E.occurred_at))
    query = select(day).where(E.occurred_at <= as_of).distinct()
    if previous is not None:
        query = query.where(E.occurred_at > previous - view.window * view.windows - DAY)
    times = set()
    for value in conn.execute(query).scalars():
        end_of_day = datetime.combine(_as_date(value), time(), UTC) + DAY
        for k in _shifts(view):
            at = end_of_day + view.window * k
            if (previous is None or at > previous) and at < as_of:
                times.add(at)
    if previous is None or as_of > previous:
        times.add(as_of)
    return sorted(times)


def _changed_entities(view: WindowedView, previous: datetime | None, at: datetime) -> Any:
    """Entities with an event that entered or left one of the view's windows in (previous, at]."""
    ids = [E.user_id if key == "user_id" else E.track_id for key in view.keys]
    if previous is None:  # first snapshot: everything within reach of the windows
        condition = _in(at - view.window * view.windows, at)
    else:
        condition = or_(
            *[_in(previous - view.window * k, at - view.window * k) for k in _shifts(view)]
        )
    return select(*ids).where(condition).distinct().subquery("changed")


def _compute_track_features(
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
    _upsert(conn, table, rows)
    return len(rows)


def _compute_recent_tracks(conn: Connection, as_of: datetime, rebuild: bool) -> int:
    """Each changed user's last RECENT_TRACKS plays and clicks up to `as_of`, oldest first.

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
    sequence = and_(E.event_type.in_([t.value for t in SEQUENCE_EVENTS]), E.occurred_at <= as_of)
    users = None
    if last is not None:
        users = select(E.user_id).where(sequence, E.occurred_at > as_utc(last)).distinct()
    rank = func.row_number().over(
        partition_by=E.user_id, order_by=(E.occurred_at.desc(), E.event_id.desc())
    )
    ranked = select(E.user_id, E.track_id, E.occurred_at, rank.label("rank")).where(sequence)
    if users is not None:
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
        return 0
    df = df.sort_values(["user", "rank"], ascending=[True, False])  # oldest first
    grouped = df.groupby("user", sort=False)
    rows = pd.DataFrame(
        {
            "track_ids": grouped["uri"].agg(" ".join),
            "n_tracks": grouped.size(),
            "newest": grouped["at"].max(),
        }
    )
    records = [
        {
            "user_id": user,
            "event_timestamp": as_utc(newest),
            "created": as_utc(newest),
            "track_ids": track_ids,
            "n_tracks": int(n),
        }
        for user, track_ids, n, newest in rows.itertuples()
    ]
    _upsert(conn, table, records)
    return len(records)


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows; a row whose key (entity, event_timestamp) is stored already replaces it."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if not c.primary_key},
    )
    conn.execute(stmt, rows)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (NaN -> None) for an executemany insert."""
    clean = df.astype(object).where(df.notna(), None)
    return [
        {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        for row in clean.to_dict("records")
    ]


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
