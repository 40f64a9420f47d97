"""Scoring with an exported SASRec graph in onnxruntime: the session, the histories it reads
(left-padded item ids) and the best items of a score row. numpy and onnxruntime only.

The graph (written by ml_pipeline.export.onnx) maps `seqs` [B, L] int64 (left-padded with 0,
L = max_seq_len) to `scores` [B, n_items + 1] float32, column 0 (padding) at -inf, plus
`top_scores` and `top_items` [B, k] when exported with a top k.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

INPUT = "seqs"
SCORES, TOP_SCORES, TOP_ITEMS = "scores", "top_scores", "top_items"

Array = NDArray[np.float32]
Items = NDArray[np.int64]


def session(path: Path, intra_op_num_threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session on the CPU, all graph optimizations, sequential: at batch 1 one
    thread is fastest on a small machine, and a server runs one session per request thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pad_left(histories: list[list[int]], length: int) -> NDArray[np.int64]:
    """The last `length` items of each history, left-padded with 0."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, items in enumerate(histories):
        tail = items[-length:]
        if tail:
            out[row, -len(tail) :] = tail
    return out


def top_items(scores: NDArray[np.floating], k: int) -> Items:
    """[B, n_items + 1] -> [B, k] best items (1..n_items, padding never), best first.

    Ties: equal scores rank by item id, lowest first (ONNX TopK's rule; the k best are sorted
    by id, then stably by score). Which of several items tied at the k-th place gets in is left
    to np.argpartition, as torch.topk leaves it to its kernel: otherwise the two agree."""
    s = np.asarray(scores)[:, 1:]
    if not 1 <= k <= s.shape[1]:
        raise ValueError(f"k must be in 1..{s.shape[1]}, got {k}")
    best = np.sort(np.argpartition(-s, k - 1, axis=1)[:, :k], axis=1)
    order = np.argsort(-np.take_along_axis(s, best, axis=1), axis=1, kind="stable")
    return (np.take_along_axis(best, order, axis=1) + 1).astype(np.int64)


class OnnxScorer:
    """An exported scoring graph in an onnxruntime session. Called with histories it is a score
    function for `evaluate_full_ranking`."""

    def __init__(self, path: Path, intra_op_num_threads: int = 1) -> None:
        self.path = path
        self.session = session(path, intra_op_num_threads)
        (seqs,) = self.session.get_inputs()
        outputs = {o.name: o for o in self.session.get_outputs()}
        self.max_len = int(seqs.shape[1])
        self.n_items = int(outputs[SCORES].shape[1]) - 1
        top = outputs.get(TOP_ITEMS)
        self.graph_k: int | None = int(top.shape[1]) if top is not None else None

    def full_sort_scores(self, seqs: NDArray[np.int64]) -> Array:
        """[B, L] -> [B, n_items + 1]; column 0 is -inf."""
        (scores,) = self.session.run([SCORES], {INPUT: self._checked(seqs)})
        return np.asarray(scores)

    def top_k(self, seqs: NDArray[np.int64], k: int) -> tuple[Array, Items]:
        """The best k items of each row, best first: (scores [B, k], items [B, k])."""
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k must be in 1..{self.n_items}, got {k}")
        if self.graph_k is not None and k <= self.graph_k:
            values, items = self.session.run([TOP_SCORES, TOP_ITEMS], {INPUT: self._checked(seqs)})
            return np.asarray(values)[:, :k], np.asarray(items)[:, :k]
        scores = self.full_sort_scores(seqs)
        items = top_items(scores, k)
        return np.take_along_axis(scores, items, axis=1), items

    def __call__(self, histories: list[list[int]]) -> Array:
        return self.full_sort_scores(pad_left(histories, self.max_len))

    def _checked(self, seqs: NDArray[np.int64]) -> NDArray[np.int64]:
        seqs = np.ascontiguousarray(seqs, dtype=np.int64)
        if seqs.ndim != 2 or seqs.shape[1] != self.max_len:
            raise ValueError(f"seqs must be [B, {self.max_len}], got {list(seqs.shape)}")
        return seqs
