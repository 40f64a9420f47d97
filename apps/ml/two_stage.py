"""Serving the two-stage recommender (inference.recommender): /predict's seeds and playlist title,
and a listener's recent tracks, turned into ranked, varied tracks with reasons.

It loads from RECOMMENDER_PATH (default var/models/recommender, written by `musicrec
train-recommender`); the service reloads it when its version changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apps.ml.catalog import Catalog
from apps.ml.responses import response
from apps.ml.schemas import PredictQuery, Recommendations, RecommendedTrack
from inference.diversity import mmr
from inference.recommender import artifact
from inference.recommender.items import Seed
from inference.recommender.recommender import TwoStageRecommender
from inference.recommender.sources import Query

log = logging.getLogger(__name__)

POOL_PER_PICK, MIN_POOL = 4, 40  # candidates re-ranked for variety, per track asked for


@dataclass
class LoadedRecommender:
    recommender: TwoStageRecommender
    version: str
    path: Path
    loaded_at: datetime
    config: dict[str, Any]
    on_disk: str  # recommender_version(path) when it was loaded: what the reload poll compares

    @property
    def n_items(self) -> int:
        return len(self.recommender.items)

    def pool_size(self, k: int) -> int:
        return max(POOL_PER_PICK * k, MIN_POOL, k)


def recommender_version(path: Path) -> str | None:
    """The version on disk (cheap: what the reload poll compares), or None without one."""
    config = path / artifact.CONFIG
    if not config.is_file():
        return None
    return f"recommender-{int(config.stat().st_mtime_ns)}"


def load(path: Path) -> LoadedRecommender:
    version = recommender_version(path) or ""
    recommender, config = artifact.load(path)
    return LoadedRecommender(
        recommender, config.get("version") or version, path, datetime.now(UTC), config, version
    )


def predict_query(loaded: LoadedRecommender, query: PredictQuery) -> Query:
    seeds = [Seed(t.track_name, t.artist_name, t.track_uri) for t in query.tracks]
    return loaded.recommender.query(seeds, query.name or "")


def history_query(loaded: LoadedRecommender, catalog: Catalog, uris: list[str]) -> Query:
    """A listener's recent tracks (URIs) as seeds; the catalog names the ones the table lacks."""
    seeds = []
    for uri in uris:
        info = catalog.tracks.get(uri)
        seeds.append(Seed(info.name if info else "", info.artist if info else "", uri))
    return loaded.recommender.query(seeds)


def ranked_pool(
    loaded: LoadedRecommender, query: Query, k: int, diversity: float
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The best k, or a pool of more to choose a varied k from."""
    return loaded.recommender.recommend(query, loaded.pool_size(k) if diversity > 0 else k)


def answer(
    loaded: LoadedRecommender,
    catalog: Catalog,
    query: Query,
    items: NDArray[np.int64],
    scores: NDArray[np.float64],
    k: int,
    diversity: float,
) -> Recommendations:
    """The k tracks of the ranked pool, re-ranked for variety, each with its reason."""
    table = loaded.recommender.items
    uris = [table.uris[i] for i in items.tolist()]
    artists = [table.artists[i] for i in items.tolist()]
    genres = [(catalog.tracks[u].genre if u in catalog.tracks else None) for u in uris]
    picks = mmr(scores.tolist(), artists, genres, k, diversity)
    reason = _reason(loaded, query)
    tracks = [
        RecommendedTrack(
            track_uri=uris[p],
            track_name=table.names[int(items[p])],
            artist_name=artists[p],
            genre=genres[p],
            score=round(float(scores[p]), 6),
            reason=reason,
        )
        for p in picks
    ]
    result = response(tracks, diversity, "model", None, loaded.version)
    result.unmatched = [n for n, s in enumerate(query.seeds) if s.item is None]
    result.unmatched_seeds = len(result.unmatched)
    return result


def _reason(loaded: LoadedRecommender, query: Query) -> str:
    table = loaded.recommender.items
    known = [s.item for s in query.seeds if s.item is not None]
    if known:
        return f"because you like {table.names[known[-1]]}"
    if query.title.strip():
        return f'for playlists like "{query.title.strip()}"'
    if query.artists:
        return "more from the artists you like"
    return "popular with listeners"
