"""LightGCN: the normalized graph by hand, BPR training that learns, fold-in scoring."""

from __future__ import annotations

import math

import numpy as np
import torch

from ml_pipeline.models.matrix_factorization import (
    LightGCN,
    TextAlignedLightGCN,
    normalized_adjacency,
    ridge_projection,
)
from tests.ml_pipeline.test_baselines import _clustered_sequences


def test_normalized_adjacency_by_hand() -> None:
    # User 0 played items 1 and 2, user 1 played item 2. Nodes: u0, u1, i1, i2.
    graph = normalized_adjacency(np.array([0, 0, 1]), np.array([1, 2, 2]), n_users=2, n_items=2)
    dense = graph.to_dense().numpy()
    # Degrees: u0 2, u1 1, i1 1, i2 2; entry = 1 / sqrt(deg_a deg_b).
    expected = np.zeros((4, 4), dtype=np.float32)
    for a, b in ((0, 2), (0, 3), (1, 3)):
        degree = {0: 2, 1: 1, 2: 1, 3: 2}
        expected[a, b] = expected[b, a] = 1 / math.sqrt(degree[a] * degree[b])
    np.testing.assert_allclose(dense, expected, rtol=1e-6)


def test_bpr_training_learns_the_clusters() -> None:
    sequences = _clustered_sequences(600, seed=3)
    model = LightGCN(dim=16, epochs=20, batch_size=1024, lr=0.01).fit(sequences, n_items=300)
    assert model.losses[-1] < 0.5 * model.losses[0]
    history = [151, 152, 153, 154, 155]  # half of cluster 15 (items 151..160)
    scores = model.full_sort_predict([history])[0]
    top = torch.topk(scores, 10).indices.tolist()
    assert sum(151 <= i <= 160 for i in top) >= 8  # the cluster's items come first
    # A history's vector is the mean of its items' embeddings: order does not matter.
    assert torch.allclose(model.history_vectors([history[::-1]]), model.history_vectors([history]))
    np.testing.assert_allclose(
        model.history_vectors([history])[0].numpy(),
        model.item_embeddings[history].mean(0).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_ridge_projection_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(200, 8)).astype(np.float32)
    truth = rng.normal(size=(8, 3)).astype(np.float32)
    np.testing.assert_allclose(ridge_projection(text, text @ truth, l2=1e-6), truth, atol=1e-3)


def test_text_aligned_lightgcn_ranks_tracks_nobody_played() -> None:
    """Cluster c's items have texts near direction c; items 156..160 of cluster 15 never occur
    in training. Their embeddings come from text, so a cluster-15 history ranks them high."""
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(30, 64))
    noise = 0.1 * rng.normal(size=(300, 64))
    text = np.vstack([np.zeros(64), directions.repeat(10, axis=0) + noise]).astype(np.float32)
    held_out = list(range(156, 161))
    train = [[i for i in s if i not in held_out] for s in _clustered_sequences(600, seed=3)]
    settings = {"dim": 16, "epochs": 20, "batch_size": 1024, "lr": 0.01}
    history = [151, 152, 153, 154, 155]

    def ranks(model: LightGCN) -> list[int]:
        scores = model.fit(train, 300).full_sort_predict([history])[0]
        scores[history] = -torch.inf
        order = torch.argsort(scores, descending=True).tolist()
        return [order.index(i) for i in held_out]

    assert max(ranks(TextAlignedLightGCN(text, **settings))) < 10  # of 295 unheard items
    assert sorted(ranks(LightGCN(**settings)))[2] > 20  # untrained rows: noise
