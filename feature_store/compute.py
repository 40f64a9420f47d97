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

user_recent_tracks is not windowed: a run writes one row per user with a sequence event (play,
click or like) since the previous run (everyone on the first run or a rebuild), holding their
last RECENT_TRACKS such events as of `as_of`.

The feedback push (feature_store.push) sends rows computed by the same SQL (WindowedView.values,
recent_tracks_rows), so the online values of the pushed views do not depend on the path.

The same SQL runs on Postgres and SQLite; ratios, square roots and clipping are done in pandas.

The views' SQL lives in feature_store.windowed_views (the windowed ones) and
feature_store.state_views (track_audio_features, user_recent_tracks); this module is the job:
when to take snapshots, which entities changed, and the run itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select

from feature_store.feature_sql import E, in_window, records, upsert
from feature_store.state_views import compute_recent_tracks, compute_track_features
from feature_store.windowed_views import WINDOWED_VIEWS, WindowedView
from musicrec.db.models import FeatureJobRun
from musicrec.timeutil import as_utc

DAY = timedelta(days=1)


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
        report.rows["track_audio_features"] = compute_track_features(conn, as_of, since, rebuild)
        if on_view:
            on_view("user_recent_tracks")
        report.rows["user_recent_tracks"] = compute_recent_tracks(conn, as_of, rebuild)
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
        df = view.values(conn, _changed_entities(view, previous, at), at)
        if not df.empty:
            df["event_timestamp"] = df["created"] = at  # known from events up to `at` only
            upsert(conn, view.table, records(df))
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
        condition = in_window(at - view.window * view.windows, at)
    else:
        condition = or_(
            *[in_window(previous - view.window * k, at - view.window * k) for k in _shifts(view)]
        )
    return select(*ids).where(condition).distinct().subquery("changed")


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
