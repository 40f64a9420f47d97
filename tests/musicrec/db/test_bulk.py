"""The bulk writer: generic events round-trip exactly, writes are idempotent and atomic, and
the Postgres bulk mode leaves the schema exactly as it found it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from musicrec.db.bulk import bulk_transaction, write_batch
from musicrec.db.models import Base, ListeningEvent, Track
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord, PlaylistRecord, TrackRecord
from tests.conftest import backends

WHEN = datetime(2026, 11, 20, 18, 30, 15, 123000, tzinfo=UTC)


def _batch() -> CatalogBatch:
    batch = CatalogBatch()
    for n in range(3):
        uri = f"spotify:track:{n:022d}"
        batch.tracks[uri] = TrackRecord(
            uri=uri,
            name=f"  Song\t{n} ",
            artist_name="Ｂand",
            audio_features={"danceability": 0.5, "key": 3},
            genre="rock",
        )
    batch.users = {"u1": "User One", "u2": None}
    batch.playlists.append(
        PlaylistRecord(
            source="app", pid=1, name="Mix", user_external_id="u1", track_uris=[*batch.tracks]
        )
    )
    batch.events = [
        EventRecord(
            event_id=uuid.UUID(int=n + 1),
            user_external_id="u2",
            track_uri=f"spotify:track:{n:022d}",
            event_type=EventType.SKIP if n else EventType.LIKE,
            occurred_at=WHEN,
            ms_played=12_000 if n else None,
            device="mobile",
            session_id="s1",
            position=n,
        )
        for n in range(3)
    ]
    return batch


@backends
def test_generic_events_round_trip(engine: Engine) -> None:
    counts = write_batch(engine, _batch())
    assert counts.as_dict() == {
        "artists": 1,
        "tracks": 3,
        "users": 2,
        "playlists": 1,
        "playlist_tracks": 3,
        "events": 3,
    }
    with engine.connect() as conn:
        events = conn.execute(select(ListeningEvent).order_by(ListeningEvent.position)).all()
        track = conn.execute(select(Track).where(Track.spotify_uri.endswith("00"))).first()
    assert [e.event_id for e in events] == [uuid.UUID(int=n + 1) for n in range(3)]
    assert [e.event_type for e in events] == ["like", "skip", "skip"]
    assert all(e.occurred_at.replace(tzinfo=UTC) == WHEN for e in events)
    assert (events[0].ms_played, events[1].ms_played, events[1].device) == (None, 12_000, "mobile")
    assert track is not None
    assert (track.name, track.danceability, track.key, track.genre) == ("Song 0", 0.5, 3, "rock")
    assert write_batch(engine, _batch()).as_dict() == dict.fromkeys(counts.as_dict(), 0)


@backends
def test_a_failed_write_leaves_nothing(engine: Engine) -> None:
    batch = _batch()
    # Events are merged last: a CHECK violation there must undo the tracks written before.
    batch.events[0].event_type = SimpleNamespace(value="bogus")  # type: ignore[assignment]
    with pytest.raises(Exception, match="(?i)check"):
        write_batch(engine, batch)
    with engine.connect() as conn:
        assert conn.execute(select(Track.id)).first() is None
    assert write_batch(engine, _batch()).tracks == 3  # the connection is usable again


@backends
def test_bulk_mode_restores_indexes_and_foreign_keys(engine: Engine) -> None:
    before = {
        t: (inspect(engine).get_indexes(t), inspect(engine).get_foreign_keys(t))
        for t in ("tracks", "playlist_tracks", "listening_events")
    }
    with bulk_transaction(engine, defer_indexes=True) as writer:
        writer.write(_batch())
    after = {
        t: (inspect(engine).get_indexes(t), inspect(engine).get_foreign_keys(t)) for t in before
    }
    assert after == before
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


@backends
def test_an_event_for_an_unknown_track_is_refused(engine: Engine) -> None:
    from musicrec.db.bulk import UnknownReference

    batch = _batch()
    batch.events[0].track_uri = "spotify:track:nowhere"
    with pytest.raises(UnknownReference, match="spotify:track:nowhere"):
        write_batch(engine, batch)
    with engine.connect() as conn:
        assert conn.execute(select(Track.id)).first() is None  # nothing of the batch stayed
