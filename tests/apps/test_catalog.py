"""The serving catalog's seed matching, search and popularity list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from apps.ml.catalog import Catalog, TrackInfo
from musicrec.db.bulk import write_batch
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord, TrackRecord
from musicrec.text import track_key
from tests.conftest import backends


def _catalog() -> Catalog:
    tracks = [
        TrackInfo("spotify:track:a", "Song", "Band", None),
        TrackInfo("spotify:track:b", "Song - Remastered", "Band", "rock"),
        TrackInfo("spotify:track:c", "Other Song", "Band", "rock"),
    ]
    keys = [track_key(t.artist, t.name) for t in tracks]
    return Catalog(tracks, keys, popular=["spotify:track:c", "spotify:track:b"])


def test_seeds_match_by_uri_then_name_preferring_a_release_the_model_knows() -> None:
    catalog = _catalog()
    assert catalog.match("anything", "anyone", "spotify:track:c") == "spotify:track:c"
    assert catalog.match("SONG", "band") == "spotify:track:a"  # two releases share the key
    assert catalog.match("Song", "Band", known={"spotify:track:b": 2}) == "spotify:track:b"
    assert catalog.match("No Such Song", "Band") is None


def test_search_needs_every_word_and_ranks_popular_first() -> None:
    found = [t.uri for t in _catalog().search("band so")]
    assert found == ["spotify:track:c", "spotify:track:b", "spotify:track:a"]
    assert [t.uri for t in _catalog().search("other ban")] == ["spotify:track:c"]
    assert _catalog().search("   ") == []


@backends
def test_popularity_is_this_weeks_then_all_time(engine: Engine) -> None:
    """A few live events after historical data: this week's tracks first, then the all-time
    ranking fills the list (it used to hold only this week's handful)."""
    old = datetime(2017, 6, 1, tzinfo=UTC)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    plays = [("a", old, 3), ("b", old, 5), ("c", old, 1), ("d", now, 1)]
    batch = CatalogBatch(
        tracks={
            f"spotify:track:{n}": TrackRecord(f"spotify:track:{n}", n.upper(), "Band")
            for n, _, _ in plays
        },
        users={"u1": None},
        events=[
            EventRecord(uuid.uuid4(), "u1", f"spotify:track:{n}", EventType.PLAY, at + timedelta(i))
            for n, at, count in plays
            for i in range(count)
        ],
    )
    write_batch(engine, batch)
    popular = Catalog.load(engine).popular
    assert popular == [f"spotify:track:{n}" for n in "dbac"]
