"""A small event set whose feature values are computed by hand in the tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from musicrec.db.bulk import write_batch
from musicrec.events import EventType, ListeningEvent
from musicrec.records import CatalogBatch, EventRecord, TrackRecord

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
T1, T2, T3 = (f"spotify:track:{n:022d}" for n in (1, 2, 3))
FEATURES = {  # energy is the one the tests check; the others only need to be present
    T1: {"energy": 0.8},
    T2: {"energy": 0.2},
    T3: {"energy": 0.5},
}
DURATIONS = {T1: 200_000, T2: 100_000, T3: 180_000}
ARTISTS = {T1: "Artist A", T2: "Artist B", T3: "Artist A"}

# (user, track, type, time, ms_played, session)
EVENTS = [
    ("u1", T1, EventType.PLAY, T0 - timedelta(days=1), 200_000, "s1"),
    ("u1", T2, EventType.SKIP, T0 - timedelta(days=1) + timedelta(minutes=5), 10_000, "s1"),
    ("u1", T1, EventType.PLAY, T0 - timedelta(days=2), 100_000, "s2"),
    ("u1", T3, EventType.LIKE, T0 - timedelta(days=3), None, "s2"),
    ("u1", T3, EventType.PLAY, T0 - timedelta(days=10), 180_000, "s3"),
    ("u2", T1, EventType.PLAY, T0 - timedelta(days=12), 200_000, "s4"),
    ("u2", T1, EventType.PLAY, T0 - timedelta(hours=1), 200_000, "s5"),
]


def batch() -> CatalogBatch:
    b = CatalogBatch()
    for uri in (T1, T2, T3):
        others = dict.fromkeys(
            ("danceability", "valence", "acousticness", "instrumentalness", "speechiness"), 0.5
        )
        b.tracks[uri] = TrackRecord(
            uri=uri,
            name=f"Song {uri[-1]}",
            artist_name=ARTISTS[uri],
            duration_ms=DURATIONS[uri],
            audio_features={
                **others,
                "liveness": 0.1,
                "tempo": 120.0,
                "loudness": -6.0,
                **FEATURES[uri],
            },
            genre="pop",
        )
    b.users = {"u1": "One", "u2": "Two"}
    b.events = [
        EventRecord(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{i}"),
            user_external_id=user,
            track_uri=track,
            event_type=kind,
            occurred_at=when,
            ms_played=ms,
            session_id=session,
        )
        for i, (user, track, kind, when, ms, session) in enumerate(EVENTS)
    ]
    return b


def store_events(engine: Engine, events: Sequence[ListeningEvent]) -> None:
    """Store events as the feedback consumer does before it pushes them (a new listener gets a
    users row)."""
    records = [EventRecord.from_event(e) for e in events]
    write_batch(engine, CatalogBatch(users={e.user_id: None for e in events}, events=records))
