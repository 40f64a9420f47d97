"""Re-ranking for variety: maximal marginal relevance over artist and genre.

Two tracks are similar by ARTIST_WEIGHT if they share the artist plus GENRE_WEIGHT if they share
a (known) genre. MMR picks, one at a time, the candidate maximizing
(1 - diversity) * relevance - diversity * (its highest similarity to the tracks already picked),
relevance being the ranker's scores scaled to 0..1 over the candidates. diversity = 0 keeps the
ranker's order; 1 spreads artists and genres as far as the candidates allow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

ARTIST_WEIGHT, GENRE_WEIGHT = 0.6, 0.4


class Diversity(BaseModel):
    """How varied the list is, after the re-ranking asked for with `diversity`."""

    requested: float = Field(ge=0, le=1)
    distinct_artists: float = Field(description="Share of the list with an artist of its own")
    distinct_genres: float | None = Field(description="Likewise for genres; null when unknown")
    intra_list_diversity: float = Field(description="Mean pairwise dissimilarity, 0..1")


def _codes(values: Sequence[str | None]) -> NDArray[np.int64]:
    """Equal values -> equal codes; every None a code of its own (unknown never matches)."""
    seen: dict[str, int] = {}
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        out[i] = seen.setdefault(value, len(seen)) if value is not None else -1 - i
    return out


def mmr(
    scores: Sequence[float] | NDArray[np.floating],
    artists: Sequence[str],
    genres: Sequence[str | None],
    k: int,
    diversity: float,
) -> list[int]:
    """Positions of the k candidates to show, in order."""
    n = len(scores)
    k = min(k, n)
    if diversity <= 0 or k <= 1:
        return [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[:k]]
    s = np.asarray(scores, dtype=np.float64)
    span = s.max() - s.min()
    relevance = (s - s.min()) / span if span > 0 else np.ones(n)
    artist, genre = _codes(artists), _codes(genres)
    closest = np.zeros(n)  # each candidate's highest similarity to the picked ones
    free = np.ones(n, dtype=bool)
    picked: list[int] = []
    for _ in range(k):
        value = np.where(free, (1 - diversity) * relevance - diversity * closest, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        free[best] = False
        similar = ARTIST_WEIGHT * (artist == artist[best]) + GENRE_WEIGHT * (genre == genre[best])
        np.maximum(closest, similar, out=closest)
    return picked


def measure(artists: Sequence[str], genres: Sequence[str | None], requested: float) -> Diversity:
    """The achieved variety of a list."""
    n = len(artists)
    if n == 0:
        return Diversity(
            requested=requested, distinct_artists=0.0, distinct_genres=None, intra_list_diversity=0
        )
    known = [g for g in genres if g is not None]
    pairs = n * (n - 1) / 2
    if pairs:
        a, g = _codes(artists), _codes(genres)
        same = ARTIST_WEIGHT * (a[:, None] == a[None, :]) + GENRE_WEIGHT * (
            g[:, None] == g[None, :]
        )
        similarity = float(np.triu(same, 1).sum()) / pairs
    else:
        similarity = 0.0
    return Diversity(
        requested=requested,
        distinct_artists=round(len(set(artists)) / n, 4),
        distinct_genres=round(len(set(known)) / len(known), 4) if known else None,
        intra_list_diversity=round(1 - similarity, 4),
    )
