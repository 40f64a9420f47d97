"""The two-stage recommender: candidates from every source (each source's best, a few hundred in
all), ranked by a LightGBM learning-to-rank model over the candidates' features, or, without a
ranker, by reciprocal rank fusion of the sources (the ablation's "ranker off").

A seed's own song (any release of it) is never recommended back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from inference.recommender.features import candidate_features, feature_names, ranks
from inference.recommender.items import ItemTable, Seed
from inference.recommender.ranker import Ranker
from inference.recommender.sources import Query, Scored, Source

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)


@dataclass
class Candidates:
    query: Query
    items: NDArray[np.int64]
    scored: list[Scored]  # per source

    similar: list[Source]  # the sources with an item-item similarity

    def features(
        self, table: ItemTable, artist_popularity: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        at = [s.at(self.items) for s in self.scored]
        known = len(self.query.items) > 0
        sims = [s.seed_similarity(self.query, self.items) if known else None for s in self.similar]
        return candidate_features(table, self.query, self.items, at, sims, artist_popularity)

    def source_scores(self) -> list[NDArray[np.float32]]:
        """Each source's score of each candidate."""
        return [s.at(self.items) for s in self.scored]


class TwoStageRecommender:
    def __init__(
        self,
        items: ItemTable,
        sources: list[Source],
        quotas: dict[str, int],
        ranker: Ranker | None = None,
    ) -> None:
        self.items, self.sources, self.quotas, self.ranker = items, sources, quotas, ranker
        self.source_names = [s.name for s in sources]
        self.similar = [s for s in sources if type(s).seed_similarity is not Source.seed_similarity]
        if ranker is not None and ranker.features != self.feature_names:
            raise ValueError("the ranker was trained on other features than these sources give")
        artist_popularity = np.zeros(len(items.artist_items), np.float32)
        np.add.at(artist_popularity, items.artist_ids, items.popularity)
        self.artist_popularity = artist_popularity
        self._by_popularity = np.argsort(-items.popularity, kind="stable")

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.source_names, [s.name for s in self.similar])

    def query(self, seeds: list[Seed], title: str = "") -> Query:
        return Query([self.items.resolve(s) for s in seeds], title)

    def candidates(self, query: Query) -> Candidates:
        """The union of each source's best (by its quota), without the seeds' songs."""
        scored = [s.scored(query) for s in self.sources]
        picked = [
            mine.top(self.quotas.get(source.name, 0))
            for source, mine in zip(self.sources, scored, strict=True)
        ]
        union = np.unique(np.concatenate(picked)) if picked else np.empty(0, np.int64)
        union = union[~self.items.is_seed_song(union, query.seeds)]
        return Candidates(query, union, scored, self.similar)

    def rank(self, candidates: Candidates) -> NDArray[np.float64]:
        """A score per candidate: the ranker's, or reciprocal rank fusion without one."""
        if self.ranker is not None:
            return self.ranker.score(candidates.features(self.items, self.artist_popularity))
        fused = np.zeros(len(candidates.items))
        for at in candidates.source_scores():
            fused += np.where(at > 0, 1.0 / (RRF_K + ranks(at)), 0.0)
        return fused

    def recommend(self, query: Query, k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The k best items and their scores, best first."""
        found = self.candidates(query)
        scores = self.rank(found)
        order = np.lexsort((found.items, -scores))[:k]  # ties: the lower item id first
        items, scores = found.items[order], scores[order]
        if len(items) < k:  # too few candidates (a query with little to go on): popular ones
            extra = self._popular_except(query, items, k - len(items))
            floor = (scores.min() if len(scores) else 0.0) - 1.0
            items = np.concatenate([items, extra])
            scores = np.concatenate([scores, floor - np.arange(len(extra)) / max(len(extra), 1)])
        return items, scores

    def _popular_except(self, query: Query, chosen: NDArray[np.int64], n: int) -> NDArray[np.int64]:
        skip = self.items.seed_songs(query.seeds)
        skip[chosen] = True
        keep = self._by_popularity[~skip[self._by_popularity]]
        return keep[:n]
