"""How far an exported ONNX graph is from the torch model it came from, on real users: the
share of torch's top 10 it keeps and the NDCG@10 it gives up (targets: overlap >= 0.9, loss
<= 1 %). Used by `python -m ml_pipeline.export.onnx --data` and the inference benchmark."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.scoring import OnnxScorer, top_items
from ml_pipeline.evaluation.metrics import evaluate_full_ranking
from ml_pipeline.evaluation.scorers import scorers
from ml_pipeline.models.sasrec import SASRec

PARITY_K = 10
TARGET_OVERLAP, TARGET_NDCG_LOSS = 0.9, 0.01

Items = NDArray[np.int64]


def top_k_overlap(a: Items, b: Items) -> float:
    """Mean over rows of |a_row ∩ b_row| / k."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.mean([len(set(x) & set(y)) / a.shape[1] for x, y in zip(a, b, strict=True)]))


@dataclass
class RankingRun:
    """Full-ranking metrics of one score function and its top k per history (padding left
    out, seen items kept: the model's own ranking)."""

    metrics: dict[str, float]
    top: Items


def ranking_run(
    score_fn: Callable[[list[list[int]]], Any],
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    n_items: int,
    k: int = PARITY_K,
) -> RankingRun:
    tops: list[Items] = []

    def recording(batch: list[list[int]]) -> Any:
        scores = score_fn(batch)
        tops.append(top_items(scores, k))
        return scores

    metrics = evaluate_full_ranking(recording, histories, targets, n_items, exclude_seen=True)
    return RankingRun(metrics, np.concatenate(tops) if tops else np.empty((0, k), np.int64))


def torch_run(
    model: SASRec, histories: Sequence[Sequence[int]], targets: Sequence[int], n_items: int
) -> RankingRun:
    """The reference: the torch model's own ranking (eval mode)."""
    model.eval()
    return ranking_run(scorers(model)[0], histories, targets, n_items)


def parity(
    model: SASRec,
    scorer: OnnxScorer,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    n_items: int,
    *,
    reference: RankingRun | None = None,
) -> dict[str, Any]:
    """How far the ONNX scorer is from the torch model on the same users: mean top-10 overlap
    and NDCG@10 (full ranking, seen items excluded) of both, with the relative NDCG@10 loss
    ((torch - onnx) / torch; negative when ONNX does better). `reference`: the torch run
    (`torch_run`) when several graphs are compared on the same users."""
    ref = reference or torch_run(model, histories, targets, n_items)
    run = ranking_run(scorer, histories, targets, n_items)
    key = f"ndcg@{PARITY_K}"
    torch_ndcg, onnx_ndcg = ref.metrics[key], run.metrics[key]
    loss = (torch_ndcg - onnx_ndcg) / torch_ndcg if torch_ndcg else 0.0
    overlap = top_k_overlap(ref.top, run.top)
    return {
        "torch": ref.metrics,
        "onnx": run.metrics,
        f"top{PARITY_K}_overlap": overlap,
        f"ndcg@{PARITY_K}_relative_loss": loss,
        "targets_met": overlap >= TARGET_OVERLAP and loss <= TARGET_NDCG_LOSS,
    }
