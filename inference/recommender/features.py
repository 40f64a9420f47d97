"""The ranker's features of each candidate, computed by this one function at training time and at
serving time (so what the ranker learned from is what it is given: the skew test checks it).

Per source: the candidate's score and its rank among the candidates by that score; for the
sources with an item-item similarity (co-occurrence, ALS vectors), its highest and mean
similarity to the seeds and its similarity to the last seed. Per candidate: popularity, how many
of the seeds share its artist, its artist's popularity. Per query: how many seeds, how many the
table knows, whether there is a title.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from inference.recommender.items import ItemTable
from inference.recommender.sources import Query

QUERY_FEATURES = ("n_seeds", "n_known_seeds", "has_title")
ITEM_FEATURES = ("popularity_log", "artist_seed_share", "artist_popularity_log")


SIMILARITY_FEATURES = ("max", "mean", "last")


def feature_names(sources: list[str], similarities: list[str]) -> list[str]:
    per_source = [f"{s}_{kind}" for s in sources for kind in ("score", "rank")]
    per_pair = [f"{s}_seed_sim_{kind}" for s in similarities for kind in SIMILARITY_FEATURES]
    return [*per_source, *per_pair, *ITEM_FEATURES, *QUERY_FEATURES]


def ranks(scores: NDArray[np.float32]) -> NDArray[np.float32]:
    """1 + how many candidates score higher (ties share the better rank)."""
    ordered = np.sort(scores)[::-1]
    return (np.searchsorted(-ordered, -scores, side="left") + 1).astype(np.float32)


def candidate_features(
    items: ItemTable,
    query: Query,
    candidates: NDArray[np.int64],
    source_scores: list[NDArray[np.float32]],
    seed_similarities: list[NDArray[np.float32] | None],
    artist_popularity: NDArray[np.float32],
) -> NDArray[np.float32]:
    """[len(candidates), len(feature_names(...))], in feature_names order, from each source's
    scores of the candidates and each similarity's [known seeds, candidates] matrix (None
    without a known seed)."""
    columns: list[NDArray[np.float32]] = []
    for mine in source_scores:
        columns += [mine, ranks(mine)]
    n = len(candidates)
    for sims in seed_similarities:
        if sims is None or not len(sims):
            columns += [np.zeros(n, np.float32)] * len(SIMILARITY_FEATURES)
        else:
            columns += [sims.max(axis=0), sims.mean(axis=0), sims[-1]]
    artists = items.artist_ids[candidates]
    total = max(sum(query.artists.values()), 1)
    share = (np.array([query.artists.get(int(a), 0) for a in artists]) / total).astype(np.float32)
    columns += [
        np.log1p(items.popularity[candidates]).astype(np.float32),
        share,
        np.log1p(artist_popularity[artists]).astype(np.float32),
        np.full(n, len(query.seeds), np.float32),
        np.full(n, len(query.items), np.float32),
        np.full(n, bool(query.title.strip()), np.float32),
    ]
    return np.column_stack(columns).astype(np.float32)
