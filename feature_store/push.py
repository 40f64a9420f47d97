"""Fresh features from single events: each accepted event updates the listener's stats, the
listener–track interaction and (plays and clicks) the listener's recent tracks online at once,
without waiting for the next batch run.

The new values are the current online values plus the event's contribution. Values that one
event cannot settle alone keep their batch value until the next batch run recomputes them
exactly: distinct artists, sessions (a new session id is not known to be new), and the order of
recent tracks (an event is appended at the end, whatever its time). The caller must push each
event once (the feedback consumer pushes only events its idempotent insert actually stored),
since counters are incremented and tracks appended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from feature_store.compute import (
    COMPLETED_MS_UNKNOWN,
    COMPLETED_SHARE,
    RECENT_TRACKS,
    SEQUENCE_EVENTS,
)
from feature_store.online import OnlineFeatures, recent_tracks
from musicrec.events import EventType, ListeningEvent
from musicrec.timeutil import as_utc


def push_event(features: OnlineFeatures, event: ListeningEvent) -> None:
    user, track = event.user_id, event.track_id
    # One read for the user's stats and sequence.
    wanted = [*_names("user_listening_stats", STATS), "user_recent_tracks__track_ids"]
    stats = features.user_features(user, features=wanted)
    pair = features.user_track_features(user, [track])[0]
    duration = features.track_features([track], ["track_audio_features__duration_ms"])[0][
        "track_audio_features__duration_ms"
    ]
    when = event.occurred_at.astimezone(UTC)
    is_play, is_skip = event.event_type == EventType.PLAY, event.event_type == EventType.SKIP
    ms = event.ms_played or 0

    s = {name: stats[f"user_listening_stats__{name}"] for name in STATS}
    completed = round(s["completed_play_ratio"] * s["plays"])
    if is_play and ms >= (duration * COMPLETED_SHARE if duration else COMPLETED_MS_UNKNOWN):
        completed += 1
    new_track = pair["user_track_interactions__plays"] + pair["user_track_interactions__skips"] == 0
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
    _push(features, "user_listening_stats_push", {"user_id": user, **s}, when)

    last_played = pair["user_track_interactions__last_played_at"]
    interactions = {
        "user_id": user,
        "track_id": track,
        "plays": pair["user_track_interactions__plays"] + int(is_play),
        "skips": pair["user_track_interactions__skips"] + int(is_skip),
        "last_played_at": when if is_play else last_played,
    }
    _push(features, "user_track_interactions_push", interactions, when)

    if event.event_type in SEQUENCE_EVENTS:
        sequence = [*recent_tracks(stats), track][-RECENT_TRACKS:]
        row = {"user_id": user, "track_ids": " ".join(sequence), "n_tracks": len(sequence)}
        _push(features, "user_recent_tracks_push", row, when)


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


def _push(features: OnlineFeatures, source: str, row: dict[str, Any], when: datetime) -> None:
    df = pd.DataFrame([{**row, "event_timestamp": when, "created": datetime.now(UTC)}])
    for column in ("last_event_at", "last_played_at"):
        if column in df:
            df[column] = pd.to_datetime(df[column], utc=True)
    features.store.push(source, df)
