"""A two-stage recommender on disk: one directory, written whole by the trainer and read by
serving, so the candidate sources and the ranker trained on them always travel together.

    recommender.json   the configuration (source parameters, quotas) and the training record
    items.json, .npy   the item table: URIs, names, artists; popularity
    plays.npz          playlists x items (CSR): the neighbourhood sources
    title.npz          the title words' vocabulary and idf; title_tracks.npz their track shares
    als.npy            the ALS item factors
    ranker.txt         the LightGBM ranker (absent: reciprocal rank fusion)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from inference.recommender.items import ItemTable
from inference.recommender.ranker import Ranker
from inference.recommender.recommender import TwoStageRecommender
from inference.recommender.sources import (
    ALSFoldIn,
    ItemKNN,
    PlaylistKNN,
    Popularity,
    SameArtist,
    Source,
    TitleWords,
)
from musicrec.errors import UserError

CONFIG = "recommender.json"


@dataclass
class SourceParams:
    als_factors: int = 128
    als_regularization: float = 0.05
    als_alpha: float = 10.0
    als_iterations: int = 20
    # ALS retrieves among the tracks in at least this many playlists (any candidate still gets its
    # ALS score): 3 kept validation NDCG@10 within 0.001 of 2 and cut 2 ms of a 10 ms request.
    als_min_playlists: int = 3
    knn_alpha: float = 0.5
    playlist_shrink: float = 0.5
    playlist_power: float = 2.0
    quotas: dict[str, int] = field(
        default_factory=lambda: {
            "als": 150,
            "item_knn": 150,
            "playlist_knn": 150,
            "title": 100,
            "same_artist": 50,
            "popularity": 20,
        }
    )


@dataclass
class Fitted:
    """What the sources are built from: all arrays, no behaviour."""

    params: SourceParams
    items: ItemTable
    plays: sp.csr_matrix
    titles: TitleWords
    als_factors: np.ndarray

    def sources(self) -> list[Source]:
        p = self.params
        return [
            ALSFoldIn(
                self.als_factors,
                p.als_regularization,
                p.als_alpha,
                self.items.popularity >= p.als_min_playlists,
            ),
            ItemKNN(self.plays, p.knn_alpha),
            PlaylistKNN(self.plays, p.playlist_shrink, p.playlist_power),
            self.titles,
            SameArtist(self.items),
            Popularity(self.items),
        ]

    def recommender(self, ranker: Ranker | None = None) -> TwoStageRecommender:
        return TwoStageRecommender(self.items, self.sources(), self.params.quotas, ranker)


def save(path: Path, fitted: Fitted, ranker: Ranker | None, record: dict[str, Any]) -> None:
    """Write the directory beside its destination and swap it in: readers see the old model or
    the new one, never half of one."""
    staging = path.with_name(path.name + ".writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    fitted.items.save(staging / "items")
    sp.save_npz(staging / "plays.npz", fitted.plays)
    t = fitted.titles
    sp.save_npz(staging / "title_tracks.npz", t.tracks)
    np.savez(staging / "title.npz", vocabulary=np.array(t.vocabulary), idf=t.idf)
    np.save(staging / "als.npy", fitted.als_factors)
    if ranker is not None:
        ranker.save(staging / "ranker.txt")
    config = {"params": asdict(fitted.params), **record}
    (staging / CONFIG).write_text(json.dumps(config, indent=2, default=str))
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(staging, path)
    shutil.rmtree(old, ignore_errors=True)


def load(path: Path) -> tuple[TwoStageRecommender, dict[str, Any]]:
    if not (path / CONFIG).is_file():
        raise UserError(
            f"{path} is not a recommender (no {CONFIG}): train one with `musicrec "
            "train-recommender`"
        )
    config = json.loads((path / CONFIG).read_text())
    params = SourceParams(**config["params"])
    items = ItemTable.load(path / "items")
    with np.load(path / "title.npz") as arrays:
        titles = TitleWords(
            arrays["vocabulary"].tolist(),
            sp.load_npz(path / "title_tracks.npz").tocsr(),
            arrays["idf"],
        )
    fitted = Fitted(
        params,
        items,
        sp.load_npz(path / "plays.npz").tocsr(),
        titles,
        np.load(path / "als.npy"),
    )
    ranker_file = path / "ranker.txt"
    ranker = Ranker.load(ranker_file) if ranker_file.is_file() else None
    return fitted.recommender(ranker), config
