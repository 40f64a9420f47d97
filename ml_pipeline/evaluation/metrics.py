"""Offline ranking metrics: per-user reference definitions and batched leave-one-out evaluators.

The pure functions (`recall_at_k`, ...) define each metric on one user's ranked list and set of
relevant items, Microsoft Recommenders style; they are the reference. With one target per user
(leave-one-out) every metric is a function of the target's rank alone, so the evaluators only
compute ranks, batch by batch: a 30k users x 25k items score matrix never exists at once.
`evaluate_sampled` is the SASRec paper protocol (the target among itself + 100 sampled negatives).

Ties are pessimistic by default: a target's rank counts every other candidate scoring >= it, so a
model that scores everything alike gets the worst rank, never a perfect one. `ties="optimistic"`
counts only strictly higher scores. Items are 1..n_items; column 0 of a score matrix is padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from itertools import chain
from typing import Literal, TypeAlias

import numpy as np
import torch
from numpy.typing import NDArray

from ml_pipeline.data.sequences import SequenceData
from ml_pipeline.data.splits import Split

Ints: TypeAlias = NDArray[np.int64]
Scores: TypeAlias = torch.Tensor | NDArray[np.floating]
ScoreFn: TypeAlias = Callable[[list[list[int]]], Scores]
PredictFn: TypeAlias = Callable[[list[list[int]], torch.Tensor], Scores]
Ties: TypeAlias = Literal["pessimistic", "optimistic"]


# --- Reference metrics on one ranked list -------------------------------------------------------


def _top_k_hits(ranked: Sequence[int], relevant: Collection[int], k: int) -> list[bool]:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    wanted = set(relevant)
    return [item in wanted for item in ranked[:k]]


def precision_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """|top_k ∩ relevant| / k. The denominator stays k when the list is shorter than k."""
    return sum(_top_k_hits(ranked, relevant, k)) / k


def recall_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """|top_k ∩ relevant| / |relevant|; 0 when nothing is relevant."""
    return sum(_top_k_hits(ranked, relevant, k)) / len(relevant) if relevant else 0.0


def hit_rate_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 if any relevant item is in the top k, else 0."""
    return float(any(_top_k_hits(ranked, relevant, k)))


def mrr_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 / rank (1-based) of the first relevant item in the top k; 0 if there is none."""
    hits = _top_k_hits(ranked, relevant, k)
    return next((1.0 / (i + 1) for i, hit in enumerate(hits) if hit), 0.0)


def ndcg_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """DCG@k / IDCG@k with binary relevance: DCG@k = sum over relevant items at 0-based position
    i < k of 1 / log2(i + 2); IDCG@k is the DCG of min(k, |relevant|) hits at the top. 0 when
    nothing is relevant."""
    hits = _top_k_hits(ranked, relevant, k)
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


# --- Vectorized: one target per user ------------------------------------------------------------


def metrics_from_ranks(
    ranks: Sequence[int] | Ints, ks: Sequence[int] = (10, 20)
) -> dict[str, float]:
    """Mean metrics over users with one relevant item each, from its 0-based rank r. With
    hit = r < k: recall@k = hit_rate@k = hit, precision@k = hit / k, mrr@k = hit / (r + 1),
    ndcg@k = hit / log2(r + 2) (one relevant item: the ideal DCG is 1)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no users to evaluate")
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hit = r < k
        out[f"recall@{k}"] = out[f"hit_rate@{k}"] = float(hit.mean())
        out[f"precision@{k}"] = float(hit.mean() / k)
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (r + 1), 0.0).mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(r + 2), 0.0).mean())
    return out


def ragged_to_coo(rows: Sequence[Collection[int]], n_items: int | None = None) -> tuple[Ints, Ints]:
    """(row index, item) pairs of a list of item lists, in order; checks items are 1..n_items."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    items = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    if n_items is not None and items.size and (items.min() < 1 or items.max() > n_items):
        raise ValueError(f"items must be in 1..{n_items}")
    return np.repeat(np.arange(len(rows), dtype=np.int64), lengths), items


def _above(scores: torch.Tensor, reference: torch.Tensor, ties: Ties) -> torch.Tensor:
    """Bool [B, C]: which candidates rank above each row's reference score. A NaN score
    elsewhere never does; a NaN reference is an error (its rank would mean nothing)."""
    if torch.isnan(reference).any():
        raise ValueError("a target has a NaN score")
    if ties == "pessimistic":
        return scores >= reference[:, None]
    if ties == "optimistic":
        return scores > reference[:, None]
    raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")


def _count_per_row(mask: torch.Tensor) -> Ints:
    # numpy's count_nonzero is ~10x faster than torch's bool sum, which widens to int64 first.
    return np.count_nonzero(mask.numpy(), axis=1).astype(np.int64)


def target_ranks(
    scores: Scores,
    targets: Sequence[int] | Ints,
    seen: Sequence[Collection[int]] | None = None,
    ties: Ties = "pessimistic",
) -> Ints:
    """0-based rank of each row's target among items 1..n_items of a [B, n_items + 1] score
    matrix. Items in `seen[row]` are left out of the ranking (as if scored -inf), except the
    target itself: a re-listened target still counts."""
    s = torch.as_tensor(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be [B, n_items + 1], got {tuple(s.shape)}")
    t = torch.from_numpy(_checked_targets(targets, s.shape[0], s.shape[1] - 1))
    rows = torch.arange(len(t))
    above = _above(s, s[rows, t], ties)
    above[:, 0] = False  # padding
    if seen is not None:
        seen_rows, seen_items = ragged_to_coo(seen, s.shape[1] - 1)
        above[torch.from_numpy(seen_rows), torch.from_numpy(seen_items)] = False
    above[rows, t] = False  # the target does not outrank itself
    return _count_per_row(above)


def _checked_targets(targets: Sequence[int] | Ints, users: int, n_items: int) -> Ints:
    t = np.asarray(targets, dtype=np.int64)
    if t.shape != (users,):
        raise ValueError(f"{len(t)} targets for {users} users")
    if users and (t.min() < 1 or t.max() > n_items):
        raise ValueError(f"targets must be in 1..{n_items}")
    return t


def _batches(users: int, batch_size: int) -> Iterable[slice]:
    return (slice(a, min(a + batch_size, users)) for a in range(0, users, max(batch_size, 1)))


def _as_scores(raw: Scores, shape: tuple[int, int]) -> torch.Tensor:
    scores = torch.as_tensor(raw)
    if tuple(scores.shape) != shape:
        raise ValueError(f"model returned scores of shape {tuple(scores.shape)}, expected {shape}")
    return scores


@torch.no_grad()
def evaluate_full_ranking(
    score_fn: ScoreFn,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int] | Ints,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    exclude_seen: bool = True,
    batch_size: int = 512,
    ties: Ties = "pessimistic",
) -> dict[str, float]:
    """Rank each target among all items; `score_fn` (a model's `full_sort_predict`, in eval
    mode) scores `batch_size` histories at a time as [B, n_items + 1]. With `exclude_seen`,
    items already in the history are not ranked (the target always is). Returns recall,
    precision, mrr, ndcg and hit_rate @k for every k, and "users"."""
    t = _checked_targets(targets, len(histories), n_items)
    ranks = np.empty(len(t), dtype=np.int64)
    for part in _batches(len(t), batch_size):
        batch = [list(h) for h in histories[part]]
        scores = _as_scores(score_fn(batch), (len(batch), n_items + 1))
        ranks[part] = target_ranks(scores, t[part], batch if exclude_seen else None, ties)
    return {**metrics_from_ranks(ranks, ks), "users": len(ranks)}


def sample_negatives(
    user_items: Sequence[Collection[int]],
    targets: Sequence[int] | Ints,
    n_items: int,
    n_negatives: int,
    rng: np.random.Generator,
) -> Ints:
    """[U, n_negatives] items per user, distinct, uniform over 1..n_items minus the user's
    items and target. Rejection sampling: draw all, redraw only the rejected cells. (The SASRec
    authors' code may repeat a negative; with thousands of items that changes nothing.)"""
    t = _checked_targets(targets, len(user_items), n_items)
    rows, items = ragged_to_coo(user_items, n_items)
    users = np.arange(len(t), dtype=np.int64)
    # Sorted (user * (n + 1) + item) keys make "has this user interacted with i?" a searchsorted.
    keys = np.sort(np.concatenate([rows * (n_items + 1) + items, users * (n_items + 1) + t]))
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # np.unique, minus its slow hash pass
    free = n_items - np.bincount(keys // (n_items + 1), minlength=len(t))
    if (free < n_negatives).any():
        raise ValueError(f"a user has fewer than {n_negatives} items left to sample from")
    out = rng.integers(1, n_items + 1, size=(len(t), n_negatives))
    todo = users
    while todo.size:
        block = out[todo]
        wanted = todo[:, None] * (n_items + 1) + block
        known = keys[np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)] == wanted
        bad = known | _repeats(block)
        block[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
        out[todo] = block
        todo = todo[bad.any(axis=1)]
    return out


def _repeats(block: Ints) -> NDArray[np.bool_]:
    """True where an item already occurred earlier in its row."""
    order = np.argsort(block, axis=1, kind="stable")  # stable: the first occurrence is kept
    ordered = np.take_along_axis(block, order, axis=1)
    repeated = np.zeros(block.shape, dtype=bool)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    out = np.empty_like(repeated)
    np.put_along_axis(out, order, repeated, axis=1)
    return out


@torch.no_grad()
def evaluate_sampled(
    predict_fn: PredictFn,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int] | Ints,
    user_items: Sequence[Collection[int]],
    n_items: int,
    n_negatives: int = 100,
    seed: int | np.random.Generator = 0,
    ks: Sequence[int] = (10,),
    batch_size: int = 1024,
    ties: Ties = "pessimistic",
) -> dict[str, float]:
    """SASRec paper protocol: rank each target among itself and `n_negatives` distinct items
    the user never interacted with (`user_items`, all of the user's items), drawn by a seeded
    numpy Generator. `predict_fn(histories, candidates [B, 1 + n_negatives])` scores them; the
    target is candidate column 0. Returns hr@k and ndcg@k for every k, and "users".

    The authors' code ranks with argsort, which leaves ties to the sort (often in the target's
    favour); here they are pessimistic by default, as in `evaluate_full_ranking`."""
    t = _checked_targets(targets, len(histories), n_items)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    negatives = sample_negatives(user_items, t, n_items, n_negatives, rng)
    candidates = torch.from_numpy(np.concatenate([t[:, None], negatives], axis=1))
    ranks = np.empty(len(t), dtype=np.int64)
    for part in _batches(len(t), batch_size):
        batch = [list(h) for h in histories[part]]
        scores = _as_scores(predict_fn(batch, candidates[part]), (len(batch), 1 + n_negatives))
        ranks[part] = _count_per_row(_above(scores[:, 1:], scores[:, 0], ties))
    metrics = metrics_from_ranks(ranks, ks)
    out = {f"{name}@{k}": metrics[f"{key}@{k}"] for k in ks for name, key in _PAPER_NAMES}
    return {**out, "users": len(ranks)}


_PAPER_NAMES = (("hr", "hit_rate"), ("ndcg", "ndcg"))  # as the paper reports them


Protocol: TypeAlias = Literal["full_ranking", "sampled_100", "candidates_20"]
# full_ranking: all items; sampled_100: the SASRec paper's 100 negatives (HR, NDCG@10);
# candidates_20: LLaRA's protocol, the target among 20 candidates (HitRatio@1).
PROTOCOLS: tuple[Protocol, ...] = ("full_ranking", "sampled_100", "candidates_20")


def evaluate_split(
    full_fn: ScoreFn,
    predict_fn: PredictFn,
    data: SequenceData,
    split: Split,
    part: Literal["valid", "test"],
    protocol: Protocol,
    seed: int = 42,
) -> dict[str, float]:
    """One model's metrics on a split's validation or test pairs by one protocol: full ranking
    with heard items excluded, or the paper's 100 negatives (drawn outside all of the user's
    items). Models in eval mode."""
    users, histories, targets = split.part(part)
    if protocol == "full_ranking":
        return evaluate_full_ranking(full_fn, histories, targets, data.n_items, exclude_seen=True)
    user_items = [set(data.sequences[u]) for u in users]
    if protocol == "sampled_100":
        return evaluate_sampled(predict_fn, histories, targets, user_items, data.n_items, seed=seed)
    if protocol == "candidates_20":
        return evaluate_sampled(
            predict_fn, histories, targets, user_items, data.n_items, 19, seed, ks=(1, 5)
        )
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def evaluate_cold_listeners(
    full_fn: ScoreFn,
    data: SequenceData,
    split: Split,
    seeds: Sequence[int] = (1, 3, 5),
) -> dict[str, dict[str, float]]:
    """New listeners: each test user's target ranked (full ranking) from only the last n items
    before it, for every n in `seeds` — a listener who has given the app n seed tracks."""
    _, histories, targets = split.part("test")
    return {
        f"seeds_{n}": evaluate_full_ranking(
            full_fn, [list(h)[-n:] for h in histories], targets, data.n_items, exclude_seen=True
        )
        for n in seeds
    }
