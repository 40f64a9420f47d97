"""A listener's listening in a few hundred tokens: what a provider builds the graph from. Top
artists (with their labels), genres, moods and eras, audio preference stats, skip patterns and
time of day, and which of their artists are listened to together."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic import BaseModel

from inference.interest_graph.facets import Facets
from inference.interest_graph.schema import NODE_KINDS, NodeKind
from musicrec.events import EventType
from musicrec.text import match_key

AUDIO_STATS = ("danceability", "energy", "valence", "acousticness", "instrumentalness", "tempo")
POSITIVE = {EventType.PLAY.value: 1.0, EventType.CLICK.value: 1.0, EventType.LIKE.value: 2.0}
TOP_ARTISTS, TOP_LABELS, TOP_PAIRS, ARTIST_LABELS = 12, 8, 10, 3
DAYPARTS = (("night", 0), ("morning", 6), ("afternoon", 12), ("evening", 18))


@dataclass(frozen=True)
class Listen:
    uri: str
    artist: str  # display name
    event_type: str
    occurred_at: datetime
    audio: tuple[float | None, ...] = ()  # AUDIO_STATS, in order; () when unknown


class Weighted(BaseModel):
    name: str
    weight: float


class ArtistShare(Weighted):
    labels: list[str]  # "genre:hip hop", the artist's strongest labels


class AudioStat(BaseModel):
    mean: float
    std: float


class ArtistPair(BaseModel):
    a: str
    b: str
    weight: float  # how often the two share playlists across all listeners (Jaccard)


class ListeningSummary(BaseModel):
    listener: str
    events: int
    plays: int
    skips: int
    likes: int
    distinct_tracks: int
    distinct_artists: int
    top_artists: list[ArtistShare]
    genres: list[Weighted]
    moods: list[Weighted]
    eras: list[Weighted]
    audio: dict[str, AudioStat]
    audio_coverage: float  # share of the listened tracks with audio features
    skip_rate: float
    most_skipped_artists: list[Weighted]
    time_of_day: dict[str, float]
    co_listened: list[ArtistPair]

    def labels(self, kind: NodeKind) -> list[Weighted]:
        return {"genre": self.genres, "mood": self.moods, "era": self.eras, "artist": []}[kind]


def summarize(listener: str, listens: Sequence[Listen], facets: Facets) -> ListeningSummary:
    positive = [(x, POSITIVE[x.event_type]) for x in listens if x.event_type in POSITIVE]
    skipped = [x for x in listens if x.event_type == EventType.SKIP.value]
    total = sum(w for _, w in positive) or 1.0

    artist_weight: dict[str, float] = defaultdict(float)
    names: dict[str, str] = {}
    label_weight: dict[NodeKind, dict[str, float]] = {
        kind: defaultdict(float) for kind in NODE_KINDS
    }
    for listen, w in positive:
        key = match_key(listen.artist)
        names.setdefault(key, listen.artist)
        artist_weight[key] += w / total
        for (kind, label), share in facets.labels(listen.uri).items():
            label_weight[kind][label] += w * share / total
    top = _strongest(artist_weight, TOP_ARTISTS)
    top_artists = [
        ArtistShare(name=names[key], weight=_round(share), labels=_artist_labels(facets, key))
        for key, share in top
    ]
    skips_by_artist = Counter(x.artist for x in skipped)
    n_skip = len(skipped)
    return ListeningSummary(
        listener=listener,
        events=len(listens),
        plays=sum(x.event_type == EventType.PLAY.value for x in listens),
        skips=n_skip,
        likes=sum(x.event_type == EventType.LIKE.value for x in listens),
        distinct_tracks=len({x.uri for x in listens}),
        distinct_artists=len({match_key(x.artist) for x in listens}),
        top_artists=top_artists,
        genres=_top(label_weight["genre"]),
        moods=_top(label_weight["mood"]),
        eras=_top(label_weight["era"]),
        audio=_audio_stats([x for x, _ in positive]),
        audio_coverage=_round(
            sum(bool(x.audio) for x, _ in positive) / len(positive) if positive else 0.0
        ),
        skip_rate=_round(n_skip / (n_skip + len(positive)) if listens else 0.0),
        most_skipped_artists=[
            Weighted(name=a, weight=_round(n / n_skip)) for a, n in skips_by_artist.most_common(5)
        ],
        time_of_day=_dayparts([x for x, _ in positive]),
        co_listened=_pairs(facets, [key for key, _ in top], names),
    )


def _round(value: float) -> float:
    return round(float(value), 3)


def _strongest(weights: dict[str, float], n: int) -> list[tuple[str, float]]:
    return sorted(weights.items(), key=lambda item: (-item[1], item[0]))[:n]


def _top(weights: dict[str, float]) -> list[Weighted]:
    return [
        Weighted(name=label, weight=_round(w))
        for label, w in _strongest(weights, TOP_LABELS)
        if w >= 0.001
    ]


def _artist_labels(facets: Facets, artist_key: str) -> list[str]:
    found = facets.artist_labels.get(artist_key, {})
    best = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:ARTIST_LABELS]
    return [f"{kind}:{label}" for (kind, label), _ in best]


def _audio_stats(listens: list[Listen]) -> dict[str, AudioStat]:
    columns: dict[str, list[float]] = defaultdict(list)
    for listen in listens:
        for name, value in zip(AUDIO_STATS, listen.audio, strict=False):
            if value is not None:
                columns[name].append(value)
    return {
        name: AudioStat(mean=_round(float(np.mean(values))), std=_round(float(np.std(values))))
        for name, values in columns.items()
    }


def _dayparts(listens: list[Listen]) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for listen in listens:
        hour = listen.occurred_at.hour
        counts[next(name for name, start in reversed(DAYPARTS) if hour >= start)] += 1
    n = sum(counts.values()) or 1
    return {name: _round(counts[name] / n) for name, _ in DAYPARTS}


def _pairs(facets: Facets, keys: list[str], names: dict[str, str]) -> list[ArtistPair]:
    similarity = facets.co_listening(keys)
    pairs = [
        ArtistPair(a=names[keys[i]], b=names[keys[j]], weight=_round(similarity[i, j]))
        for i in range(len(keys))
        for j in range(i + 1, len(keys))
        if similarity[i, j] > 0
    ]
    return sorted(pairs, key=lambda p: -p.weight)[:TOP_PAIRS]
