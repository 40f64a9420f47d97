"""MostPopular and ItemKNN: hand-made examples, the pruned similarity against a dense reference,
and ItemKNN beating popularity where co-occurrence carries the signal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ml_pipeline.evaluation.metrics import evaluate_full_ranking
from ml_pipeline.models.baselines import ALS, Baseline, ItemKNN, MostPopular
from ml_pipeline.models.matrix_factorization import LightGCN

INF = float("inf")


def test_most_popular_ranks_by_training_count() -> None:
    # Counts: item 1 x1, item 2 x3, item 3 x4, items 4 and 5 never.
    model = MostPopular().fit([[1, 2, 3], [2, 3], [3], [3, 2]], n_items=5)
    scores = model.full_sort_predict([[1], []])
    assert scores.tolist() == [[-INF, 1, 3, 4, 0, 0]] * 2  # the same for everyone
    assert model.predict([[1], []], torch.tensor([[3, 1], [5, 2]])).tolist() == [[4, 1], [0, 3]]


# Users of item 1: five (the first plays it twice: counted once); of 2: two; of 3: one; of 6: two.
TINY = [[1, 2, 1], [1, 2], [1, 3], [4, 5], [1, 6], [6, 1]]
SIM_12 = 2 / math.sqrt(5 * 2)  # two users share 1 and 2: 2 / sqrt(|U_1| |U_2|) = 0.632
SIM_13 = 1 / math.sqrt(5 * 1)  # 0.447
SIM_16 = 2 / math.sqrt(5 * 2)  # ties with SIM_12


def _neighbours(model: ItemKNN, item: int) -> tuple[list[int], list[float]]:
    pairs = model.similar_items(item)
    return [j for j, _ in pairs], [sim for _, sim in pairs]


def test_item_knn_neighbours_by_hand() -> None:
    model = ItemKNN().fit(TINY, n_items=6)
    ids, sims = _neighbours(model, 1)
    assert ids == [2, 6, 3] and sims == pytest.approx([SIM_12, SIM_16, SIM_13])
    assert _neighbours(model, 2) == ([1], pytest.approx([SIM_12]))
    assert _neighbours(model, 4) == ([5], pytest.approx([1.0]))  # 1 / sqrt(1 * 1)
    # Pruned to one neighbour: 2 and 6 tie for item 1, the lower id wins.
    assert _neighbours(ItemKNN(neighbours=1).fit(TINY, n_items=6), 1)[0] == [2]


def test_item_knn_scores_sum_the_history_neighbours() -> None:
    # History [2, 3]: item 1 gets sim(2, 1) + sim(3, 1); 2, 3 and 6 share no user with 2 or 3.
    plain = ItemKNN().fit(TINY, n_items=6).full_sort_predict([[2, 3], []])
    expected = [[-INF, SIM_12 + SIM_13, 0, 0, 0, 0, 0], [-INF] + [0] * 6]
    np.testing.assert_allclose(plain.numpy(), expected, rtol=1e-6)
    # Decay 0.5: the older play (2) weighs 0.5, the last (3) weighs 1.
    decayed = ItemKNN(recency_decay=0.5).fit(TINY, n_items=6).full_sort_predict([[2, 3]])
    assert decayed[0, 1].item() == pytest.approx(0.5 * SIM_12 + SIM_13)


def _dense_top_k(sequences: list[list[int]], n_items: int, k: int) -> np.ndarray:
    """The definition, slowly: dense cosine, no self-similarity, top k by (-sim, id) per row."""
    played = np.zeros((len(sequences), n_items + 1))
    for user, items in enumerate(sequences):
        played[user, items] = 1
    support = played.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.nan_to_num(played.T @ played / np.sqrt(np.outer(support, support)))
    np.fill_diagonal(cosine, 0)
    pruned = np.zeros_like(cosine)
    for item in range(n_items + 1):
        best = sorted(np.flatnonzero(cosine[item]), key=lambda j: (-cosine[item, j], j))[:k]
        pruned[item, best] = cosine[item, best]
    return pruned


@pytest.mark.parametrize("block_nnz", [1, 500, 10**9])  # one item per block .. one block
def test_item_knn_similarity_matches_the_dense_definition(block_nnz: int) -> None:
    rng = np.random.default_rng(3)
    sequences = [rng.integers(1, 41, rng.integers(1, 12)).tolist() for _ in range(200)]
    model = ItemKNN(neighbours=5, block_nnz=block_nnz).fit(sequences, n_items=40)
    expected = _dense_top_k(sequences, 40, 5)
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-6)


def _clustered_sequences(users: int, seed: int) -> list[list[int]]:
    """30 clusters of 10 items; a user listens mostly (80%) inside one cluster, otherwise to
    globally popular items (Zipf), so popularity is a real but weaker signal."""
    rng = np.random.default_rng(seed)
    popular = 1 / np.arange(1, 301) ** 1.2
    popular /= popular.sum()
    sequences = []
    for cluster in rng.integers(0, 30, size=users):
        inside = rng.random(12) < 0.8
        own = cluster * 10 + rng.integers(1, 11, size=12)
        sequences.append(np.where(inside, own, rng.choice(300, size=12, p=popular) + 1).tolist())
    return sequences


def test_item_knn_beats_popularity_on_co_occurrence_data() -> None:
    sequences = _clustered_sequences(1500, seed=11)
    train = [s[:-2] for s in sequences]
    histories, targets = [s[:-1] for s in sequences], [s[-1] for s in sequences]
    ndcg = {}
    models = (MostPopular(), ItemKNN(neighbours=50), ALS(factors=32, iterations=10), LightGCN())
    for model in models:
        model.fit(train, n_items=300)
        result = evaluate_full_ranking(model.full_sort_predict, histories, targets, 300)
        ndcg[type(model).__name__] = result["ndcg@10"]
    assert ndcg["ItemKNN"] > 0.2
    assert ndcg["ItemKNN"] > 2 * ndcg["MostPopular"]
    assert ndcg["ALS"] > 2 * ndcg["MostPopular"]
    assert ndcg["LightGCN"] > 2 * ndcg["MostPopular"]


def test_als_scores_any_history_from_its_items() -> None:
    """The user factors come from the history passed in, not from the training rows: a
    held-out history scores its cluster's items above the other cluster's."""
    sequences = _clustered_sequences(600, seed=3)
    model = ALS(factors=16, iterations=10).fit(sequences, n_items=300)
    history = [151, 152, 153, 154, 155]  # half of cluster 15 (items 151..160)
    scores = model.full_sort_predict([history, history])
    assert torch.equal(scores[0], scores[1])
    assert scores[0, 156:161].min() > scores[0, 200:].max()


@pytest.mark.parametrize(
    "model", [MostPopular(), ItemKNN(), ALS(factors=4, iterations=2), LightGCN(epochs=1)]
)
def test_interface_and_misuse(model: Baseline) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        model.full_sort_predict([[1]])
    with pytest.raises(ValueError, match="1..3"):
        model.fit([[1, 4]], n_items=3)
    assert model.fit([[1, 2], [2, 3]], n_items=3) is model
    full = model.full_sort_predict([[1], [3, 2]])
    assert full.shape == (2, 4) and torch.isinf(full[:, 0]).all()
    candidates = torch.tensor([[3, 2], [1, 1]])
    assert torch.equal(model.predict([[1], [3, 2]], candidates), full.gather(1, candidates))
