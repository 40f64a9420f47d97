"""Fresh features from events: a batch of events stored by the feedback consumer updates, online
at once, the listening stats and recent tracks of its listeners and the interactions of its
(listener, track) pairs, without waiting for the next batch run.

The values are recomputed from the stored events by the batch job's own SQL
(WindowedView.values, recent_tracks_rows), as of the newest stored event of the batch's
listeners, so a pushed value is the one the batch job computes as of that instant: events leave
the 7- and 30-day windows, distinct counts and sessions are exact, and the sequence has the
batch's event types, order and length. (Adding the events to the online values instead made
counts grow forever and could not drop what leaves a window.) The events must be stored before
they are pushed; pushing twice changes nothing.

A batch costs five queries on one connection and three pushes, whatever its size, and no
online read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import DateTime, Engine, Float, Integer, Table, func, select

from feature_store.feature_sql import E, U
from feature_store.online import OnlineFeatures
from feature_store.state_views import recent_tracks_rows
from feature_store.windowed_views import BY_NAME
from musicrec.db.models import FEAT_USER_RECENT_TRACKS
from musicrec.events import ListeningEvent
from musicrec.timeutil import as_utc

STATS, INTERACTIONS = BY_NAME["user_listening_stats"], BY_NAME["user_track_interactions"]


def push_events(features: OnlineFeatures, events: Sequence[ListeningEvent], engine: Engine) -> None:
    """Push the online values of the events' listeners and pairs; `engine` is the database
    the events are stored in (events not stored there are left out)."""
    if not events:
        return
    stored = E.event_id.in_([e.event_id for e in events])
    newest = select(func.max(E.occurred_at)).where(E.user_id == U.id).scalar_subquery()
    with engine.connect() as conn:
        found = conn.execute(select(U.id, newest).where(U.id.in_(select(E.user_id).where(stored))))
        listeners = {user: when for user, when in found}  # internal id -> newest stored event
        if not listeners:
            return
        # "Now": the listeners' newest event (an event that arrives late does not move it back).
        at = max(as_utc(t) for t in listeners.values())
        users = select(U.id.label("user_id")).where(U.id.in_(listeners)).subquery("changed")
        pairs = select(E.user_id, E.track_id).where(stored).distinct().subquery("changed")
        stats = STATS.values(conn, users, at)
        interactions = INTERACTIONS.values(conn, pairs, at)
        sequences = pd.DataFrame(recent_tracks_rows(conn, list(listeners), at))
    created = datetime.now(UTC)
    for df in (stats, interactions):
        df["event_timestamp"], df["created"] = at, created
    if not sequences.empty:
        sequences["created"] = created
    _push(features, "user_listening_stats_push", STATS.table, stats)
    _push(features, "user_track_interactions_push", INTERACTIONS.table, interactions)
    _push(features, "user_recent_tracks_push", FEAT_USER_RECENT_TRACKS, sequences)


def _push(features: OnlineFeatures, source: str, table: Table, df: pd.DataFrame) -> None:
    """Push rows with the feature table's column types (Postgres sums come back as Decimal)."""
    if df.empty:
        return
    for column in table.columns:
        if isinstance(column.type, DateTime):
            df[column.name] = pd.to_datetime(df[column.name], utc=True)
        elif isinstance(column.type, Float):
            df[column.name] = df[column.name].astype(float)
        elif isinstance(column.type, Integer):
            df[column.name] = df[column.name].astype("int64")
    features.store.push(source, df[[c.name for c in table.columns]])
