"""Candidate sources: each reads a query (the seeds as resolved against the item table, and the
playlist's title) and scores every item, 0 where it has nothing to say. The two-stage
recommender takes each source's best as candidates and gives the ranker every source's score of
every candidate as features.

- `Popularity`: plays in the training playlists (log).
- `ItemKNN`: item co-occurrence with the seeds, asymmetric cosine (Aiolli 2013):
  co(s, c) / (n_s^alpha * n_c^(1 - alpha)), summed over the seeds.
- `PlaylistKNN`: playlists sharing seeds, weighted by (shared / length^shrink)^power, vote for
  their tracks (the neighbourhood models of the RecSys Challenge 2018).
- `ALSFoldIn`: implicit ALS item factors; the seeds' user vector is solved at request time
  exactly as implicit's recalculate_user does (Hu, Koren & Volinsky 2008).
- `SameArtist`: tracks by the seeds' artists (known or not), by share of seeds and popularity.
- `TitleWords`: the playlist title's words (and the whole title) -> the tracks of training
  playlists whose titles share them, weighted by idf: the title-only cold start.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from inference.recommender.items import ItemTable, ResolvedSeed
from musicrec.text import clean_name

Scores = NDArray[np.float32]
_WORD = re.compile(r"[^\W_]+")


@dataclass
class Query:
    seeds: list[ResolvedSeed]
    title: str = ""

    def __post_init__(self) -> None:
        seen: dict[int, None] = {}
        for s in self.seeds:
            if s.item is not None:
                seen.setdefault(s.item)
        self.items = np.fromiter(seen, np.int64, len(seen))
        self.artists = Counter(s.artist for s in self.seeds if s.artist is not None)


class Scored:
    """A source's answer to one query: a score per item (0 = nothing to say), held densely."""

    def __init__(self, scores: Scores) -> None:
        self.scores = scores

    def at(self, items: NDArray[np.int64]) -> Scores:
        return self.scores[items]

    def top(self, n: int) -> NDArray[np.int64]:
        """Up to n items with the best positive scores, in no particular order."""
        nonzero = np.flatnonzero(self.scores > 0)
        if len(nonzero) <= n:
            return nonzero
        return nonzero[np.argpartition(-self.scores[nonzero], n)[:n]]


class Source(ABC):
    name: str

    @abstractmethod
    def scores(self, query: Query) -> Scores:
        """A score per item (higher is better; 0 = nothing to say)."""

    def scored(self, query: Query) -> Scored:
        return Scored(self.scores(query))

    def seed_similarity(self, query: Query, items: NDArray[np.int64]) -> Scores | None:
        """[known seeds, items]: how alike each seed and each item are, for sources that have
        an item-item similarity (None for the others)."""
        return None


class Popularity(Source):
    name = "popularity"

    def __init__(self, items: ItemTable) -> None:
        self._scores = np.log1p(items.popularity).astype(np.float32)
        self._scored = _Ranked(self._scores)

    def scores(self, query: Query) -> Scores:
        return self._scores

    def scored(self, query: Query) -> Scored:
        return self._scored


class _Ranked(Scored):
    """Scores that never change (popularity): their order is sorted once."""

    def __init__(self, scores: Scores) -> None:
        super().__init__(scores)
        order = np.argsort(-scores, kind="stable")
        self._order = order[scores[order] > 0]

    def top(self, n: int) -> NDArray[np.int64]:
        return self._order[:n]


class ItemKNN(Source):
    name = "item_knn"

    def __init__(self, plays: sp.csr_matrix, alpha: float = 0.5) -> None:
        self.by_item = plays.T.tocsr()  # items x playlists
        self.plays = plays
        counts = np.asarray(plays.sum(axis=0)).ravel()
        self.norm = np.maximum(counts, 1.0).astype(np.float32)
        self.alpha = alpha

    def scores(self, query: Query) -> Scores:
        if not len(query.items):
            return np.zeros(self.plays.shape[1], np.float32)
        # co(s, c) summed over the seeds = each playlist's weighted seed count, voted to its tracks
        weights = self.by_item[query.items].T @ (self.norm[query.items] ** -self.alpha)
        near = np.flatnonzero(weights)
        co = self.plays[near].T @ weights[near]
        return (co * self.norm ** (self.alpha - 1)).astype(np.float32)

    def seed_similarity(self, query: Query, items: NDArray[np.int64]) -> Scores | None:
        seeds = query.items
        co = (self.by_item[seeds] @ self.by_item[items].T).toarray()
        scale = np.outer(self.norm[seeds] ** -self.alpha, self.norm[items] ** (self.alpha - 1))
        return (co * scale).astype(np.float32)


class PlaylistKNN(Source):
    name = "playlist_knn"

    def __init__(self, plays: sp.csr_matrix, shrink: float = 0.5, power: float = 2.0) -> None:
        self.plays = plays
        self.by_item = plays.T.tocsr()
        self.lengths = np.maximum(np.asarray(plays.sum(axis=1)).ravel(), 1.0)
        self.shrink, self.power = shrink, power

    def scores(self, query: Query) -> Scores:
        if not len(query.items):
            return np.zeros(self.plays.shape[1], np.float32)
        shared = np.asarray(self.by_item[query.items].sum(axis=0)).ravel()
        near = np.flatnonzero(shared)
        weights = (shared[near] / self.lengths[near] ** self.shrink) ** self.power
        return (self.plays[near].T @ weights).astype(np.float32)


class ALSFoldIn(Source):
    """Candidates come from the `retrievable` items (those in a few training playlists at
    least: a track in one playlist has a poorly learned vector, and scanning fewer vectors is
    most of this source's cost); any candidate's score is its own dot product."""

    name = "als"

    def __init__(
        self,
        factors: NDArray[np.float32],
        regularization: float,
        alpha: float,
        retrievable: NDArray[np.bool_] | None = None,
    ) -> None:
        self.factors = factors
        self.gram = factors.T @ factors
        self.regularization, self.alpha = regularization, alpha
        mask = np.ones(len(factors), bool) if retrievable is None else retrievable
        self.warm = np.flatnonzero(mask)
        self.warm_factors = np.ascontiguousarray(factors[self.warm])

    def user_vector(self, items: NDArray[np.int64]) -> NDArray[np.float32]:
        """implicit's least squares for a user whose confidence is alpha on `items`."""
        y = self.factors[items]
        a = self.gram + (self.alpha - 1) * (y.T @ y)
        a[np.diag_indices_from(a)] += self.regularization
        return np.linalg.solve(a, self.alpha * y.sum(axis=0)).astype(np.float32)

    def scores(self, query: Query) -> Scores:
        if not len(query.items):
            return np.zeros(len(self.factors), np.float32)
        return self.factors @ self.user_vector(query.items)

    def scored(self, query: Query) -> Scored:
        if not len(query.items):
            return Scored(np.zeros(len(self.factors), np.float32))
        return _FactorScores(self, self.user_vector(query.items))

    def seed_similarity(self, query: Query, items: NDArray[np.int64]) -> Scores | None:
        """Cosine of the item vectors."""
        seeds, cands = self.factors[query.items], self.factors[items]
        norms = np.outer(np.linalg.norm(seeds, axis=1), np.linalg.norm(cands, axis=1))
        return (seeds @ cands.T / np.maximum(norms, 1e-9)).astype(np.float32)


class _FactorScores(Scored):
    def __init__(self, source: ALSFoldIn, user: NDArray[np.float32]) -> None:
        self.source, self.user = source, user

    def at(self, items: NDArray[np.int64]) -> Scores:
        return self.source.factors[items] @ self.user

    def top(self, n: int) -> NDArray[np.int64]:
        warm = self.source.warm_factors @ self.user
        if len(warm) <= n:
            return self.source.warm
        return self.source.warm[np.argpartition(-warm, n)[:n]]


class SameArtist(Source):
    name = "same_artist"

    def __init__(self, items: ItemTable) -> None:
        self.items = items
        pop = np.log1p(items.popularity)
        self._tiebreak = (pop / (1.0 + pop.max(initial=0.0))).astype(np.float32)

    def scores(self, query: Query) -> Scores:
        out = np.zeros(len(self.items), np.float32)
        total = sum(query.artists.values())
        for artist, count in query.artists.items():
            tracks = self.items.artist_items[artist]
            out[tracks] = count / total + 0.01 * self._tiebreak[tracks]
        return out


def title_words(title: str) -> list[str]:
    """The title's words, case-folded, plus the whole title as one token ("=..."): a title
    that is exactly another playlist's says more than its words."""
    words = _WORD.findall(clean_name(title).casefold())
    return [*dict.fromkeys(words), "=" + " ".join(words)] if words else []


class TitleWords(Source):
    name = "title"

    def __init__(self, vocabulary: list[str], tracks: sp.csr_matrix, idf: NDArray[np.float32]):
        self.index = {w: i for i, w in enumerate(vocabulary)}
        self.vocabulary, self.tracks, self.idf = vocabulary, tracks, idf

    @classmethod
    def fit(cls, titles: list[str], plays: sp.csr_matrix) -> TitleWords:
        """tracks[w] = the share of the playlists whose title has w that hold each track."""
        vocabulary: dict[str, int] = {}
        rows, cols = [], []
        for p, title in enumerate(titles):
            for w in title_words(title):
                rows.append(vocabulary.setdefault(w, len(vocabulary)))
                cols.append(p)
        has = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(vocabulary), len(titles))
        )
        df = np.asarray(has.sum(axis=1)).ravel()
        tracks = sp.diags(1.0 / np.maximum(df, 1.0)) @ has @ plays
        idf = np.log(len(titles) / np.maximum(df, 1.0)).astype(np.float32)
        return cls(list(vocabulary), sp.csr_matrix(tracks, dtype=np.float32), idf)

    def scores(self, query: Query) -> Scores:
        ids = [self.index[w] for w in title_words(query.title) if w in self.index]
        if not ids:
            return np.zeros(self.tracks.shape[1], np.float32)
        weights = self.idf[ids] / max(float(self.idf[ids].sum()), math.ulp(1.0))
        return (self.tracks[ids].T @ weights).astype(np.float32)
