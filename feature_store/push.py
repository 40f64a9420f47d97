"""Fresh features from events: each accepted event updates the listener's stats, the
listener–track interaction and (plays and clicks) the listener's recent tracks online at once,
without waiting for the next batch run.

The new values are the current online values plus the events' contributions. Values that events
cannot settle alone keep their batch value until the next batch run recomputes them exactly:
distinct artists, sessions (a new session id is not known to be new), and the order of recent
tracks (an event is appended at the end, whatever its time). The caller must push each event
once (the feedback consumer pushes only events its idempotent insert actually stored), since
counters are incremented and tracks appended.

A batch costs three reads and three pushes, whatever its size: the events are folded in memory
in their order, then each listener and each pair is written once (one event at a time cost
~0.1 s each and capped the consumer at about ten events a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from feature_store.online import OnlineFeatures, recent_tracks
from feature_store.state_views import RECENT_TRACKS, SEQUENCE_EVENTS
from feature_store.windowed_views import COMPLETED_MS_UNKNOWN, COMPLETED_SHARE
from musicrec.events import EventType, ListeningEvent
from musicrec.timeutil import as_utc


def push_events(features: OnlineFeatures, events: Sequence[ListeningEvent]) -> None:
    if not events:
        return
    users = list(dict.fromkeys(e.user_id for e in events))
    pairs = list(dict.fromkeys((e.user_id, e.track_id) for e in events))
    tracks = list(dict.fromkeys(e.track_id for e in events))
    wanted = [*_names("user_listening_stats", STATS), "user_recent_tracks__track_ids"]
    read = features.stored_user_features(users, features=wanted)
    stats = {
        user: {name: row[f"user_listening_stats__{name}"] for name in STATS}
        for user, row in zip(users, read, strict=True)
    }
    sequences = {user: recent_tracks(row) for user, row in zip(users, read, strict=True)}
    interactions = {
        (user, track): {
            "user_id": user,
            "track_id": track,
            "plays": row["user_track_interactions__plays"],
            "skips": row["user_track_interactions__skips"],
            "last_played_at": row["user_track_interactions__last_played_at"],
        }
        for (user, track), row in zip(pairs, features.pair_features(pairs), strict=True)
    }
    durations = {
        track: row["track_audio_features__duration_ms"]
        for track, row in zip(
            tracks,
            features.track_features(tracks, ["track_audio_features__duration_ms"]),
            strict=True,
        )
    }
    latest: dict[Any, datetime] = {}  # each written row's timestamp: its latest event's
    extended: set[str] = set()  # listeners whose sequence this batch changed
    for event in events:
        user, pair = event.user_id, (event.user_id, event.track_id)
        when = event.occurred_at.astimezone(UTC)
        _add(stats[user], interactions[pair], durations[event.track_id], event, when)
        if event.event_type in SEQUENCE_EVENTS:
            sequences[user] = [*sequences[user], event.track_id][-RECENT_TRACKS:]
            extended.add(user)
        for key in (user, pair):
            latest[key] = max(latest.get(key, when), when)

    _push(
        features,
        "user_listening_stats_push",
        [({"user_id": user, **stats[user]}, latest[user]) for user in users],
    )
    _push(features, "user_track_interactions_push", [(interactions[p], latest[p]) for p in pairs])
    rows = [
        (
            {"user_id": u, "track_ids": " ".join(sequences[u]), "n_tracks": len(sequences[u])},
            latest[u],
        )
        for u in users
        if u in extended
    ]
    _push(features, "user_recent_tracks_push", rows)


def _add(
    s: dict[str, Any],
    pair: dict[str, Any],
    duration: float | None,
    event: ListeningEvent,
    when: datetime,
) -> None:
    """Add one event to a listener's stats and to its (listener, track) interaction."""
    is_play, is_skip = event.event_type == EventType.PLAY, event.event_type == EventType.SKIP
    ms = event.ms_played or 0
    completed = round(s["completed_play_ratio"] * s["plays"])
    if is_play and ms >= (duration * COMPLETED_SHARE if duration else COMPLETED_MS_UNKNOWN):
        completed += 1
    new_track = pair["plays"] + pair["skips"] == 0
    s["plays"] += int(is_play)
    s["skips"] += int(is_skip)
    s["skip_rate"] = s["skips"] / (s["plays"] + s["skips"]) if s["plays"] + s["skips"] else 0.0
    s["completed_play_ratio"] = completed / s["plays"] if s["plays"] else 0.0
    s["distinct_tracks"] += int(new_track and (is_play or is_skip))
    s["listening_minutes"] += ms / 60000.0
    s["sessions"] = max(s["sessions"], 1)
    s["mean_session_minutes"] = s["listening_minutes"] / s["sessions"]
    last = s["last_event_at"]
    s["last_event_at"] = max(as_utc(last), when) if last is not None else when
    pair["plays"] += int(is_play)
    pair["skips"] += int(is_skip)
    if is_play:
        last_played = pair["last_played_at"]
        pair["last_played_at"] = max(as_utc(last_played), when) if last_played else when


STATS = (
    "plays",
    "skips",
    "skip_rate",
    "completed_play_ratio",
    "distinct_tracks",
    "distinct_artists",
    "listening_minutes",
    "sessions",
    "mean_session_minutes",
    "last_event_at",
)


def _names(view: str, names: tuple[str, ...]) -> list[str]:
    return [f"{view}__{name}" for name in names]


def _push(
    features: OnlineFeatures, source: str, rows: list[tuple[dict[str, Any], datetime]]
) -> None:
    if not rows:
        return
    created = datetime.now(UTC)
    df = pd.DataFrame([{**row, "event_timestamp": when, "created": created} for row, when in rows])
    for column in ("last_event_at", "last_played_at"):
        if column in df:
            df[column] = pd.to_datetime(df[column], utc=True)
    features.store.push(source, df)
