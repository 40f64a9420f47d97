"""Training the two-stage recommender on playlists.

1. The training playlists' files are split again: the ranker's files (RANKER_SHARE of them) and
   the sources' files. The sources are fitted on theirs alone, so the ranker learns from
   candidates of playlists the sources never saw, as serving will meet them.
2. Each ranker playlist is cut into a title and its first n tracks (n in CUT_SEEDS) against the
   rest, like the evaluation's cases, once with its title and once without (an app may send
   seeds alone); its candidates, labelled by whether they are in the rest, train a LightGBM
   ranking model (rank_xendcg; one query group per cut).
3. The sources are fitted again on every training playlist, and saved with the ranker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from inference.recommender.artifact import Fitted, SourceParams
from inference.recommender.items import ItemTable
from inference.recommender.ranker import Ranker
from inference.recommender.recommender import TwoStageRecommender
from inference.recommender.sources import TitleWords
from ml_pipeline.data.playlists import Playlist, TrackInfo, split_of
from ml_pipeline.evaluation.continuation import Case, make_cases

log = logging.getLogger(__name__)

RANKER_SHARE = 0.25
CUT_SEEDS = (0, 1, 5, 10, 25)
# Rows per query group the ranker trains on: every positive, and negatives drawn at random up to
# this (features are computed over all the candidates first, so they are what serving sees).
GROUP_ROWS = 150
RANKER_PARAMS: dict[str, Any] = {
    # Listwise (Bruch 2019): on the validation files it matched or beat lambdarank (NDCG@10
    # 0.257 / 0.284 with 1 / 5 seeds against 0.255 / 0.280) and trains several times faster.
    "objective": "rank_xendcg",
    "metric": "ndcg",
    "eval_at": [10, 100],
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "verbose": -1,
    "seed": 0,
}
RANKER_ROUNDS = 300


def item_table(playlists: Sequence[Playlist], tracks: dict[str, TrackInfo]) -> ItemTable:
    """Every track of the playlists, with its plays (once per playlist) as popularity."""
    counts: dict[str, int] = {}
    for p in playlists:
        for uri in set(p.tracks):
            counts[uri] = counts.get(uri, 0) + 1
    uris = sorted(counts)
    return ItemTable(
        uris,
        [tracks[u].name for u in uris],
        [tracks[u].artist for u in uris],
        np.array([counts[u] for u in uris], np.float32),
    )


def plays_matrix(playlists: Sequence[Playlist], items: ItemTable) -> sp.csr_matrix:
    """playlists x items, 1 where the playlist holds the track (tracks the table lacks dropped)."""
    rows, cols = [], []
    for p, playlist in enumerate(playlists):
        known = {items.index[u] for u in playlist.tracks if u in items.index}
        rows += [p] * len(known)
        cols += sorted(known)
    data = np.ones(len(rows), np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(playlists), len(items)))


def fit_als(plays: sp.csr_matrix, params: SourceParams) -> NDArray[np.float32]:
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads only contend
        model = AlternatingLeastSquares(
            factors=params.als_factors,
            regularization=params.als_regularization,
            alpha=params.als_alpha,
            iterations=params.als_iterations,
            random_state=0,
        )
        model.fit(plays, show_progress=False)
    return np.asarray(model.item_factors, np.float32)


def fit_sources(
    playlists: Sequence[Playlist], tracks: dict[str, TrackInfo], params: SourceParams
) -> Fitted:
    items = item_table(playlists, tracks)
    plays = plays_matrix(playlists, items)
    titles = TitleWords.fit([p.name for p in playlists], plays)
    return Fitted(params, items, plays, titles, fit_als(plays, params))


def refit(
    fitted: Fitted, playlists: Sequence[Playlist], tracks: dict[str, TrackInfo], **changes: Any
) -> Fitted:
    """The same data with other source parameters (only ALS is fitted again, when its change)."""
    params = replace(fitted.params, **changes)
    als_keys = ("als_factors", "als_regularization", "als_alpha", "als_iterations")
    if any(k in changes for k in als_keys):
        return replace(fitted, params=params, als_factors=fit_als(fitted.plays, params))
    return replace(fitted, params=params)


def ranker_rows(
    recommender: TwoStageRecommender, cases: Sequence[Case]
) -> tuple[NDArray[np.float32], NDArray[np.float32], list[int]]:
    """(features, labels, group sizes) of the cases' candidates; cases whose candidates hold no
    target are left out (they teach a ranking nothing)."""
    features, labels, groups = [], [], []
    rng = np.random.default_rng(0)
    for case in cases:
        found = recommender.candidates(recommender.query(list(case.seeds), case.title))
        label = np.array(
            [recommender.items.uris[i] in case.targets for i in found.items.tolist()], np.float32
        )
        if not label.any():
            continue
        x = found.features(recommender.items, recommender.artist_popularity)
        keep = _sampled(label, rng)
        features.append(x[keep])
        labels.append(label[keep])
        groups.append(len(keep))
    return np.concatenate(features), np.concatenate(labels), groups


def _sampled(label: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.int64]:
    positives, negatives = np.flatnonzero(label), np.flatnonzero(label == 0)
    room = max(GROUP_ROWS - len(positives), 0)
    if len(negatives) > room:
        negatives = np.sort(rng.choice(negatives, room, replace=False))
    return np.sort(np.concatenate([positives, negatives]))


def cut_cases(playlists: Sequence[Playlist], tracks: dict[str, TrackInfo]) -> list[Case]:
    """Every cut, titled and (with seeds) untitled. Training on both raised validation NDCG@10
    with 1 / 5 seeds from 0.253 / 0.279 to 0.259 / 0.284 with titles and from 0.240 / 0.277
    to 0.244 / 0.280 without (only titled: a query without one was never seen)."""
    cases = [c for n in CUT_SEEDS for c in make_cases(playlists, tracks, n)]
    return cases + [replace(c, title="") for c in cases if c.seeds and c.title]


def train_ranker(
    recommender: TwoStageRecommender,
    train: list[Case],
    valid: list[Case] | None = None,
    rounds: int = RANKER_ROUNDS,
) -> tuple[Ranker, dict[str, Any]]:
    import lightgbm as lgb

    started = time.perf_counter()
    x, y, groups = ranker_rows(recommender, train)
    names = recommender.feature_names
    data = lgb.Dataset(x, y, group=groups, feature_name=names, free_raw_data=False)
    sets, set_names = [data], ["train"]
    if valid:
        vx, vy, vgroups = ranker_rows(recommender, valid)
        sets.append(lgb.Dataset(vx, vy, group=vgroups, reference=data))
        set_names.append("valid")
    history: dict[str, Any] = {}
    booster = lgb.train(
        {**RANKER_PARAMS, "num_threads": 2},
        data,
        num_boost_round=rounds,
        valid_sets=sets,
        valid_names=set_names,
        callbacks=[lgb.record_evaluation(history)],
    )
    record = {
        "rows": len(y),
        "groups": len(groups),
        "positives": int(y.sum()),
        "rounds": rounds,
        "seconds": round(time.perf_counter() - started, 1),
        "params": RANKER_PARAMS,
    }
    if valid:
        record["valid_ndcg@10_by_round"] = [round(v, 4) for v in history["valid"]["ndcg@10"][::25]]
    return Ranker(booster), record


def ranker_split(playlists: Sequence[Playlist]) -> tuple[list[Playlist], list[Playlist]]:
    """(the sources' playlists, the ranker's), by file."""
    ranker_files = {
        p.file for p in playlists if split_of("ranker:" + p.file, RANKER_SHARE, 0.0) == "valid"
    }
    return (
        [p for p in playlists if p.file not in ranker_files],
        [p for p in playlists if p.file in ranker_files],
    )


def train_two_stage(
    playlists: Sequence[Playlist],
    tracks: dict[str, TrackInfo],
    params: SourceParams,
    with_ranker: bool = True,
) -> tuple[Fitted, Ranker | None, dict[str, Any]]:
    """Sources fitted on every playlist, and the ranker trained as the module says."""
    record: dict[str, Any] = {"playlists": len(playlists)}
    ranker = None
    if with_ranker:
        source_part, ranker_part = ranker_split(playlists)
        first = fit_sources(source_part, tracks, params)
        ranker, record["ranker"] = train_ranker(first.recommender(), cut_cases(ranker_part, tracks))
        record["ranker"]["importance"] = ranker.importance()
    started = time.perf_counter()
    fitted = fit_sources(playlists, tracks, params)
    record["sources_seconds"] = round(time.perf_counter() - started, 1)
    return fitted, ranker, record
