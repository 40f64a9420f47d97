"""The track catalog as serving needs it, in memory: names and genres for responses, seed
matching by normalized name, what is popular this week, then of all time (the fallback ranking),
and a search index. Loaded from the database at start and refreshed with the model."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Container
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Connection, Engine, func, select, true

from musicrec.db.models import Artist, ListeningEvent, Track
from musicrec.events import EventType
from musicrec.text import match_key, track_key

POPULAR_WINDOW = timedelta(days=7)
POPULAR_SIZE = 1000
# Events that say a track was listened to (skips and dislikes do not make a track popular).
LISTENS = (EventType.PLAY.value, EventType.CLICK.value, EventType.LIKE.value)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    uri: str
    name: str
    artist: str
    genre: str | None


class Catalog:
    def __init__(self, tracks: list[TrackInfo], keys: list[str], popular: list[str]) -> None:
        self.tracks = {t.uri: t for t in tracks}
        self.by_key: dict[str, list[str]] = defaultdict(list)  # one key can name several releases
        for track, key in zip(tracks, keys, strict=True):
            self.by_key[key].append(track.uri)
        self.popular = [uri for uri in popular if uri in self.tracks]
        rank = {uri: i for i, uri in enumerate(self.popular)}
        self._search = SearchIndex(tracks, rank)

    @classmethod
    def load(cls, engine: Engine) -> Catalog:
        t, a, e = Track.__table__.c, Artist.__table__.c, ListeningEvent.__table__.c
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.spotify_uri, t.name, a.name, t.genre, t.match_key)
                .join(Artist.__table__, a.id == t.artist_id)
                .order_by(t.id)
            ).all()
            latest = conn.execute(select(func.max(e.occurred_at))).scalar()
            popular: list[str] = []
            if latest is not None:
                popular = _most_listened(conn, e.occurred_at > latest - POPULAR_WINDOW)
            if len(popular) < POPULAR_SIZE:
                # A quiet week (or a few live events after historical data) lists only a few
                # tracks: all-time popularity fills the rest, so the fallback is never a handful.
                chosen = set(popular)
                rest = [uri for uri in _most_listened(conn, true()) if uri not in chosen]
                popular = (popular + rest)[:POPULAR_SIZE]
        tracks = [TrackInfo(uri, name, artist, genre) for uri, name, artist, genre, _ in rows]
        return cls(tracks, [row[4] for row in rows], popular)

    def __len__(self) -> int:
        return len(self.tracks)

    def match(
        self, name: str, artist: str, uri: str | None = None, known: Container[str] = ()
    ) -> str | None:
        """The catalog track a seed names: by URI when given and known, else by normalized
        artist and title, preferring a release in `known` (the model's tracks), as
        inference.cold_start's database matching does."""
        if uri and uri in self.tracks:
            return uri
        releases = self.by_key.get(track_key(artist, name), [])
        return next((u for u in releases if u in known), releases[0] if releases else None)

    def search(self, query: str, limit: int = 20) -> list[TrackInfo]:
        return [self.tracks[uri] for uri in self._search.find(query, limit)]


class SearchIndex:
    """Tracks by the words of their title and artist: every word of the query must match a
    word, the last one as a prefix (search as you type); popular tracks first."""

    def __init__(self, tracks: list[TrackInfo], rank: dict[str, int]) -> None:
        postings: dict[str, list[int]] = defaultdict(list)
        for i, track in enumerate(tracks):
            for word in set(_words(f"{track.name} {track.artist}")):
                postings[word].append(i)
        self.uris = [t.uri for t in tracks]
        self.words = sorted(postings)
        self.postings = {w: frozenset(ids) for w, ids in postings.items()}
        unranked = len(rank)
        self.order = [rank.get(uri, unranked) for uri in self.uris]

    def find(self, query: str, limit: int) -> list[str]:
        words = _words(query)
        if not words:
            return []
        *whole, last = words
        matches: set[int] | frozenset[int] | None = None
        for word in whole:
            ids = self.postings.get(word, frozenset())
            matches = ids if matches is None else matches & ids
        prefixed: set[int] = set()
        start = bisect.bisect_left(self.words, last)
        for word in self.words[start:]:
            if not word.startswith(last):
                break
            prefixed |= self.postings[word]
        matches = prefixed if matches is None else matches & prefixed
        best = sorted(matches, key=lambda i: (self.order[i], i))[:limit]
        return [self.uris[i] for i in best]


def _words(text: str) -> list[str]:
    return [w for w in (match_key(part) for part in text.split()) if w]


def _most_listened(conn: Connection, when: ColumnElement[bool]) -> list[str]:
    """The POPULAR_SIZE tracks most listened to among the events `when` selects."""
    t, e = Track.__table__.c, ListeningEvent.__table__.c
    plays = func.count().label("plays")
    return list(
        conn.execute(
            select(t.spotify_uri)
            .join(ListeningEvent.__table__, e.track_id == t.id)
            .where(when)
            .where(e.event_type.in_(LISTENS))
            .group_by(t.spotify_uri)
            .order_by(plays.desc(), t.spotify_uri)
            .limit(POPULAR_SIZE)
        ).scalars()
    )
