"""The product's SASRec as a playlist-continuation peer: trained on the training files' playlists
(each a sequence of tracks), early-stopped on the validation files, and asked for the tracks
that follow the seeds. The ALS and kNN peers score every track of the training playlists; so
does this one (its vocabulary is every track of them).

Validation during training: each validation playlist's first VALID_SEEDS tracks against its
next track (full ranking, NDCG@10), the cheapest proxy of the continuation score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference.recommender.items import Seed
from inference.scoring import pad_left
from ml_pipeline.data.playlists import Playlist
from ml_pipeline.data.sequences import PAD, SequenceData
from ml_pipeline.data.splits import Split
from ml_pipeline.evaluation.continuation import Recommend
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from ml_pipeline.training.train_transformer import train_sasrec

log = logging.getLogger(__name__)

VALID_SEEDS = 5


@dataclass(frozen=True)
class SASRecPeerParams:
    """The product's large-catalog settings (sampled softmax, sparse item gradients)."""

    embedding_dim: int = 64
    dropout: float = 0.3
    max_seq_len: int = 50
    epochs: int = 60
    eval_every: int = 5
    patience: int = 2  # evaluations without improvement before stopping


def sequence_data(train: Sequence[Playlist]) -> SequenceData:
    counts: dict[str, int] = {}
    for p in train:
        for uri in p.tracks:
            counts[uri] = counts.get(uri, 0) + 1
    vocabulary = [PAD, *sorted(counts, key=lambda k: (-counts[k], k))]
    index = {u: i for i, u in enumerate(vocabulary)}
    return SequenceData(
        [[index[u] for u in p.tracks] for p in train], vocabulary, [p.name for p in train]
    )


def continuation_split(data: SequenceData, valid: Sequence[Playlist]) -> Split:
    """Train on every training playlist whole; validate on the validation playlists' first
    tracks against the next one the model knows."""
    index = {u: i for i, u in enumerate(data.vocabulary)}
    histories, targets = [], []
    for p in valid:
        known = [index[u] for u in p.tracks if u in index]
        if len(known) > VALID_SEEDS:
            histories.append(known[:VALID_SEEDS])
            targets.append(known[VALID_SEEDS])
    users = list(range(len(histories)))
    return Split("continuation", data.sequences, users, histories, targets, [], [], [])


def train_peer(
    train: Sequence[Playlist], valid: Sequence[Playlist], params: SASRecPeerParams
) -> tuple[Recommend, dict[str, Any]]:
    """The trained peer as a Recommend, and its training record."""
    started = time.perf_counter()
    data = sequence_data(train)
    config = SASRecConfig(
        n_items=data.n_items,
        max_seq_len=params.max_seq_len,
        embedding_dim=params.embedding_dim,
        dropout=params.dropout,
        loss="sampled_softmax",
        sparse_items=True,
    )
    result = train_sasrec(
        data,
        config,
        epochs=params.epochs,
        split=continuation_split(data, valid),
        eval_every=params.eval_every,
        patience=params.patience,
        log=lambda row: log.info("sasrec %s", row),
    )
    record = {
        "params": params.__dict__,
        "items": data.n_items,
        "epochs": result.epochs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return recommend_with(result.model, data), record


def recommend_with(model: SASRec, data: SequenceData) -> Recommend:
    index = {u: i for i, u in enumerate(data.vocabulary)}
    counts = np.zeros(len(data.vocabulary))
    for sequence in data.sequences:
        np.add.at(counts, sequence, 1)
    counts[0] = -1
    popular = np.argsort(-counts, kind="stable")  # no known seed: the most played tracks

    @torch.no_grad()
    def recommend(seeds: Sequence[Seed], title: str, k: int) -> list[str]:
        known = [index[s.track_uri] for s in seeds if s.track_uri in index]
        if not known:
            order = popular
        else:
            seqs = torch.from_numpy(pad_left([known], model.config.max_seq_len))
            scores = model.full_sort_scores(seqs)[0].numpy()
            scores[0] = -np.inf
            scores[known] = -np.inf
            order = np.argpartition(-scores, k)[:k] if k < len(scores) else np.arange(len(scores))
            order = order[np.argsort(-scores[order], kind="stable")]
        return [data.vocabulary[i] for i in order[:k].tolist()]

    return recommend
