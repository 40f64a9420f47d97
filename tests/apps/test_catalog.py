"""The serving catalog's seed matching and search."""

from __future__ import annotations

from apps.ml.catalog import Catalog, TrackInfo
from musicrec.text import track_key


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
