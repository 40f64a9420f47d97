"""Ranking metrics: hand-computed references, the vectorized evaluators against them, exclusion
of heard items, ties, and the SASRec sampled protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ml_pipeline.evaluation.metrics import (
    PredictFn,
    evaluate_full_ranking,
    evaluate_sampled,
    hit_rate_at_k,
    metrics_from_ranks,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    sample_negatives,
    target_ranks,
)

PURE = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
}
RANKED = [5, 3, 9, 1, 7]
RELEVANT = {3, 7, 8}
LOG3 = math.log2(3)
IDCG_3 = 1 + 1 / LOG3 + 1 / 2  # three relevant items at positions 0, 1, 2


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # Top 3 = [5, 3, 9]: one hit (3, at 0-based position 1).
        (3, {"recall": 1 / 3, "precision": 1 / 3, "mrr": 1 / 2, "hit_rate": 1.0,
             "ndcg": (1 / LOG3) / IDCG_3}),  # DCG = 1/log2(1 + 2); IDCG over min(3, 3) = 3 hits
        # Top 5: hits 3 (position 1) and 7 (position 4).
        (5, {"recall": 2 / 3, "precision": 2 / 5, "mrr": 1 / 2, "hit_rate": 1.0,
             "ndcg": (1 / LOG3 + 1 / math.log2(6)) / IDCG_3}),
        # k beyond the list: the same two hits; precision still divides by k.
        (10, {"recall": 2 / 3, "precision": 2 / 10, "mrr": 1 / 2, "hit_rate": 1.0,
              "ndcg": (1 / LOG3 + 1 / math.log2(6)) / IDCG_3}),
        # Top 1 = [5]: no hit.
        (1, {"recall": 0.0, "precision": 0.0, "mrr": 0.0, "hit_rate": 0.0, "ndcg": 0.0}),
    ],
)  # fmt: skip
def test_pure_metrics_by_hand(k: int, expected: dict[str, float]) -> None:
    assert {name: f(RANKED, RELEVANT, k) for name, f in PURE.items()} == pytest.approx(expected)


def test_pure_metric_edge_cases() -> None:
    # Target first: every metric is at its best (precision 1/k with a single relevant item).
    assert {n: f([4, 2, 6], {4}, 2) for n, f in PURE.items()} == pytest.approx(
        {"recall": 1.0, "precision": 0.5, "mrr": 1.0, "ndcg": 1.0, "hit_rate": 1.0}
    )
    # Target just beyond k, nothing relevant, an empty list: all zero.
    for ranked, relevant in (([4, 2, 6], {6}), ([4, 2, 6], set()), ([], {1})):
        assert all(f(ranked, relevant, 2) == 0.0 for f in PURE.values())
    # One relevant item, k = 5: the ideal DCG is one hit at the top, 1/log2(2) = 1.
    assert ndcg_at_k([1, 2, 3], [3], 5) == pytest.approx(1 / 2)  # 1/log2(2 + 2)
    with pytest.raises(ValueError):
        recall_at_k([1], {1}, 0)


def _pure_means(
    scores: torch.Tensor, targets: np.ndarray, seen: list[list[int]] | None, ks: tuple[int, ...]
) -> dict[str, float]:
    """Each user's ranked list built the slow way (sort, drop padding and heard items except
    the target), then the reference metrics, averaged."""
    totals: dict[str, float] = {}
    for row, target in enumerate(targets.tolist()):
        dropped = set(seen[row]) - {target} if seen else set()
        order = torch.argsort(scores[row], descending=True).tolist()
        ranked = [i for i in order if i != 0 and i not in dropped]
        for k in ks:
            for name, f in PURE.items():
                key = f"{name}@{k}"
                totals[key] = totals.get(key, 0.0) + f(ranked, {target}, k) / len(targets)
    return totals


@pytest.mark.parametrize(("exclude_seen", "batch_size"), [(True, 64), (False, 64), (True, 1000)])
def test_full_ranking_equals_pure_metrics_on_random_data(
    exclude_seen: bool, batch_size: int
) -> None:
    rng = np.random.default_rng(7)
    users, n_items, ks = 300, 40, (1, 5, 10, 20)
    histories = [rng.integers(1, n_items + 1, rng.integers(0, 15)).tolist() for _ in range(users)]
    targets = rng.integers(1, n_items + 1, size=users)  # often already in the history
    scores = torch.rand(users, n_items + 1, generator=torch.Generator().manual_seed(7))
    chunks = iter(scores.split(batch_size))  # the model: next rows (the shape is checked)

    got = evaluate_full_ranking(
        lambda batch: next(chunks), histories, targets, n_items, ks, exclude_seen, batch_size
    )
    assert got.pop("users") == users
    expected = _pure_means(scores, targets, histories if exclude_seen else None, ks)
    assert got == pytest.approx(expected, rel=1e-12)
    assert next(chunks, None) is None  # every batch was scored exactly once


# Items 1..5 score 5, 4, 3, 2, 1 (column 0 is padding, scored highest to prove it never counts).
SCORES = torch.tensor([[9.0, 5, 4, 3, 2, 1]])


def test_heard_items_are_not_ranked_but_the_target_is() -> None:
    # Target 3: items 1 and 2 score higher -> rank 2. Heard item 1 drops out -> rank 1; the
    # target was heard too, and stays.
    assert target_ranks(SCORES, [3]).tolist() == [2]
    assert target_ranks(SCORES, [3], seen=[[1, 3]]).tolist() == [1]
    for exclude, recall in ((False, 0.0), (True, 1.0)):
        got = evaluate_full_ranking(lambda b: SCORES, [[1, 3]], [3], 5, (2,), exclude)
        assert got["recall@2"] == recall


def test_ties_are_pessimistic_unless_asked() -> None:
    tied = torch.tensor([[9.0, 1, 1, 1, 0.5, 1]])  # target 2 ties with items 1, 3 and 5
    assert target_ranks(tied, [2]).tolist() == [3]
    assert target_ranks(tied, [2], ties="optimistic").tolist() == [0]
    # A constant model puts the target last: rank 3 among items 2..5 (item 1 was heard).
    flat = evaluate_full_ranking(lambda b: torch.zeros(len(b), 6), [[1]] * 4, [2] * 4, 5, (3,))
    assert flat["hit_rate@3"] == 0.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate_full_ranking(lambda b: torch.zeros(len(b), 5), [[1]], [2], 5)
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[0.0, float("nan"), 1.0]]), [1])
    with pytest.raises(ValueError, match="targets"):
        target_ranks(SCORES, [0])


def test_metrics_from_ranks_by_hand() -> None:
    got = metrics_from_ranks(np.array([0, 3, 12]), ks=(10,))
    assert got == pytest.approx(
        {
            "recall@10": 2 / 3,  # ranks 0 and 3 are within 10
            "hit_rate@10": 2 / 3,
            "precision@10": 2 / 30,  # (1/10 + 1/10 + 0) / 3
            "mrr@10": (1 + 1 / 4) / 3,
            "ndcg@10": (1 / math.log2(2) + 1 / math.log2(5)) / 3,
        }
    )


# --- SASRec sampled protocol ---------------------------------------------------------------------


def _random_users(users: int, n_items: int, seed: int) -> tuple[list[list[int]], np.ndarray]:
    rng = np.random.default_rng(seed)
    sequences = [
        rng.choice(n_items, size=rng.integers(3, 30), replace=False) + 1 for _ in range(users)
    ]
    return [s[:-1].tolist() for s in sequences], np.array([s[-1] for s in sequences])


def test_negatives_avoid_the_users_items_and_repeat_nothing() -> None:
    # 110 items, 9 heard + the target: exactly 100 left, so every one of them must be drawn.
    user_items = [set(range(1, 10)), set(range(50, 59))]
    targets = np.array([10, 100])
    negatives = sample_negatives(user_items, targets, 110, 100, np.random.default_rng(0))
    for row, items in enumerate(user_items):
        assert set(negatives[row].tolist()) == set(range(1, 111)) - items - {targets[row]}
    with pytest.raises(ValueError, match="fewer than 101"):
        sample_negatives(user_items, targets, 110, 101, np.random.default_rng(0))


def test_sampled_candidates_are_the_target_then_fresh_negatives() -> None:
    histories, targets = _random_users(200, 500, seed=1)
    user_items = [set(h) | {t} for h, t in zip(histories, targets.tolist(), strict=True)]
    seen: list[torch.Tensor] = []

    def record(batch: list[list[int]], candidates: torch.Tensor) -> torch.Tensor:
        seen.append(candidates)
        return torch.zeros(candidates.shape)

    for _ in range(2):
        evaluate_sampled(record, histories, targets, user_items, 500, seed=3, batch_size=64)
    first, second = torch.cat(seen[: len(seen) // 2]), torch.cat(seen[len(seen) // 2 :])
    assert first.shape == (200, 101) and torch.equal(first, second)  # same seed, same draw
    assert first[:, 0].tolist() == targets.tolist()
    for row, items in enumerate(user_items):
        negatives = set(first[row, 1:].tolist())
        assert len(negatives) == 100 and not negatives & (items | {0})
    other = sample_negatives(user_items, targets, 500, 100, np.random.default_rng(4))
    assert not np.array_equal(other, first[:, 1:].numpy())


def test_sampled_perfect_random_and_constant_scorers() -> None:
    histories, targets = _random_users(6000, 1000, seed=2)
    user_items = [set(h) | {t} for h, t in zip(histories, targets.tolist(), strict=True)]
    truth = {tuple(h): t for h, t in zip(histories, targets.tolist(), strict=True)}

    def run(score: PredictFn) -> dict[str, float]:
        return evaluate_sampled(score, histories, targets, user_items, 1000, seed=0)

    def oracle(batch: list[list[int]], candidates: torch.Tensor) -> torch.Tensor:
        # Knows each history's true next item, wherever it sits among the candidates.
        return (candidates == torch.tensor([[truth[tuple(h)]] for h in batch])) * 1.0

    perfect = run(oracle)
    assert perfect == {"hr@10": 1.0, "ndcg@10": 1.0, "users": 6000}
    noise = torch.Generator().manual_seed(0)
    random = run(lambda b, c: torch.rand(c.shape, generator=noise))
    # The target's rank is uniform on 0..100: HR@10 = 10/101, NDCG@10 = sum 1/log2(r+2) / 101.
    # With 6000 users the standard error of HR@10 is about 0.004.
    assert random["hr@10"] == pytest.approx(10 / 101, abs=0.015)
    expected_ndcg = sum(1 / math.log2(r + 2) for r in range(10)) / 101
    assert random["ndcg@10"] == pytest.approx(expected_ndcg, abs=0.01)
    assert run(lambda b, c: torch.zeros(c.shape))["hr@10"] == 0.0  # ties: the target is last


def test_sampled_equals_pure_metrics() -> None:
    histories, targets = _random_users(300, 200, seed=5)
    user_items = [set(h) | {t} for h, t in zip(histories, targets.tolist(), strict=True)]
    noise = torch.Generator().manual_seed(5)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def score(batch: list[list[int]], candidates: torch.Tensor) -> torch.Tensor:
        seen.append((candidates, torch.rand(candidates.shape, generator=noise)))
        return seen[-1][1]

    got = evaluate_sampled(
        score, histories, targets, user_items, 200, seed=1, ks=(5, 10), batch_size=128
    )
    candidates, scores = (torch.cat(parts) for parts in zip(*seen, strict=True))
    expected = dict.fromkeys(("hr@5", "ndcg@5", "hr@10", "ndcg@10"), 0.0)
    for row, target in enumerate(targets.tolist()):
        ranked = candidates[row, torch.argsort(scores[row], descending=True)].tolist()
        for k in (5, 10):
            expected[f"hr@{k}"] += hit_rate_at_k(ranked, {target}, k) / len(targets)
            expected[f"ndcg@{k}"] += ndcg_at_k(ranked, {target}, k) / len(targets)
    assert got == pytest.approx({**expected, "users": 300}, rel=1e-12)
