"""The recommender's item table: every track it can recommend, with its name, artist, release key
and training popularity, and how a seed named by an app is matched to it.

A seed resolves by URI first, then by normalized title + artist (another release of the same
song), else not at all; its artist still counts when the artist is known. Releases of one song
share a `song` id, so a seed's other releases are never recommended back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from musicrec.text import match_key, track_key

Ints = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Seed:
    """A track as an app names it: URI when it has one, always title and artist."""

    track_name: str
    artist_name: str
    track_uri: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedSeed:
    item: int | None  # the table's item, or None when no release of the song is known
    artist: int | None  # the table's artist id, or None when no track of the artist is known
    song: str  # normalized artist|title


@dataclass
class ItemTable:
    uris: list[str]
    names: list[str]
    artists: list[str]  # display names
    popularity: NDArray[np.float32]  # plays in the training playlists
    artist_ids: Ints = field(init=False)  # item -> artist id (by normalized name)
    song_ids: Ints = field(init=False)  # item -> song id (normalized artist + title)
    index: dict[str, int] = field(init=False)
    by_song: dict[str, int] = field(init=False)  # song key -> its most played item
    by_artist: dict[str, int] = field(init=False)  # normalized artist -> artist id
    artist_items: list[Ints] = field(init=False)  # artist id -> items, most played first

    def __post_init__(self) -> None:
        n = len(self.uris)
        if not (len(self.names) == len(self.artists) == len(self.popularity) == n):
            raise ValueError("item table columns differ in length")
        self.index = {uri: i for i, uri in enumerate(self.uris)}
        artist_keys = [match_key(a) for a in self.artists]
        self.by_artist = {}
        self.artist_ids = np.array(
            [self.by_artist.setdefault(a, len(self.by_artist)) for a in artist_keys], np.int64
        )
        songs = [track_key(a, t) for a, t in zip(self.artists, self.names, strict=True)]
        song_index: dict[str, int] = {}
        self.song_ids = np.array([song_index.setdefault(s, len(song_index)) for s in songs])
        order = np.argsort(-self.popularity, kind="stable")
        self.by_song = {}
        for i in order.tolist():
            self.by_song.setdefault(songs[i], i)
        by_artist = order[np.argsort(self.artist_ids[order], kind="stable")]
        bounds = np.searchsorted(self.artist_ids[by_artist], np.arange(len(self.by_artist) + 1))
        self.artist_items = [by_artist[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def __len__(self) -> int:
        return len(self.uris)

    def resolve(self, seed: Seed) -> ResolvedSeed:
        song = track_key(seed.artist_name, seed.track_name)
        item = self.index.get(seed.track_uri) if seed.track_uri else None
        if item is None:
            item = self.by_song.get(song)
        if item is not None:
            return ResolvedSeed(item, int(self.artist_ids[item]), song)
        return ResolvedSeed(None, self.by_artist.get(match_key(seed.artist_name)), song)

    def seed_songs(self, seeds: list[ResolvedSeed]) -> NDArray[np.bool_]:
        """A mask over the table of the items that are a release of a seed's song."""
        return self.is_seed_song(np.arange(len(self)), seeds)

    def is_seed_song(
        self, items: NDArray[np.int64], seeds: list[ResolvedSeed]
    ) -> NDArray[np.bool_]:
        """Whether each of `items` is a release of a seed's song."""
        ids = [int(self.song_ids[s.item]) for s in seeds if s.item is not None]
        return np.isin(self.song_ids[items], ids) if ids else np.zeros(len(items), bool)

    def save(self, path: Path) -> None:
        """JSON for the text (NumPy's fixed-width strings took 250 MB for 138k tracks)."""
        text = {"uris": self.uris, "names": self.names, "artists": self.artists}
        path.with_suffix(".json").write_text(json.dumps(text, ensure_ascii=False))
        np.save(path.with_suffix(".npy"), self.popularity)

    @classmethod
    def load(cls, path: Path) -> ItemTable:
        text = json.loads(path.with_suffix(".json").read_text())
        popularity = np.load(path.with_suffix(".npy")).astype(np.float32)
        return cls(text["uris"], text["names"], text["artists"], popularity)
