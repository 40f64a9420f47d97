"""Non-sequential baselines with the same interface as the SASRec model, for the evaluators in
`ml_pipeline.evaluation.metrics`: `fit(sequences, n_items)`, `full_sort_predict(histories)` -> [B,
n_items + 1] (column 0, padding, is -inf) and `predict(histories, candidates [B, C])` -> [B, C].

- `MostPopular`: every user gets the items' play counts in the training sequences.
- `ItemKNN`: item-item cosine similarity of co-occurrence in user sequences, pruned to each item's
  top `neighbours`; a user's score is the sum of the similarity rows of their history items.
- `ALS`: implicit-feedback matrix factorization (Hu, Koren & Volinsky 2008) from the `implicit`
  package; a history's user factors are solved from its items at scoring time, so any history
  (a held-out playlist too) can be scored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from ml_pipeline.evaluation.metrics import Ints, ragged_to_coo

Histories = Sequence[Collection[int]]


class Baseline(ABC):
    """A model fitted on item sequences that scores every item for a history."""

    n_items: int = 0

    @abstractmethod
    def fit(self, sequences: Histories, n_items: int) -> Self:
        """Learn from training sequences of items 1..n_items."""

    @abstractmethod
    def full_sort_predict(self, histories: Histories) -> torch.Tensor:
        """Scores [len(histories), n_items + 1] for every item; column 0 is -inf."""

    def predict(self, histories: Histories, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of candidate items [B, C]. Gathers from the full scores: a batch of
        full rows is cheap for these models, and it keeps one definition of a score."""
        index = torch.as_tensor(candidates, dtype=torch.long)
        return self.full_sort_predict(histories).gather(1, index)

    def _check_fitted(self) -> None:
        if not self.n_items:
            raise RuntimeError(f"{type(self).__name__} is not fitted")


class MostPopular(Baseline):
    """Score = the item's number of occurrences in the training sequences."""

    def __init__(self) -> None:
        self.counts = torch.empty(0)

    def fit(self, sequences: Histories, n_items: int) -> Self:
        _, items = ragged_to_coo(sequences, n_items)
        counts = np.bincount(items, minlength=n_items + 1).astype(np.float32)
        counts[0] = -np.inf
        self.counts, self.n_items = torch.from_numpy(counts), n_items
        return self

    def full_sort_predict(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        return self.counts.expand(len(histories), -1).clone()


class ItemKNN(Baseline):
    """Item-based collaborative filtering (Deshpande & Karypis 2004, cosine variant).

    sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|), with U_i the training users who played i (a
    user counts once however often they played it). Each item keeps its top `neighbours` by
    similarity (ties: lower item id first), stored as a sparse [n + 1, n + 1] matrix, so memory
    is O(n_items * neighbours), never n_items².

    score(u, j) = sum over positions p of u's history of w_p * sim(h_p, j), where
    w_p = recency_decay ** (number of items played after p): 1.0 (default) is a plain sum, < 1
    favours the most recent plays, which suits next-item prediction. A repeated item adds up.

    The co-occurrence matrix is built in blocks of item rows, each bounded to about `block_nnz`
    pairs before pruning, so the memory stays flat however dense the data is.
    """

    def __init__(
        self, neighbours: int = 100, recency_decay: float = 1.0, block_nnz: int = 5_000_000
    ) -> None:
        if neighbours < 1 or not 0 < recency_decay <= 1 or block_nnz < 1:
            raise ValueError("need neighbours >= 1, 0 < recency_decay <= 1 and block_nnz >= 1")
        self.neighbours, self.recency_decay, self.block_nnz = neighbours, recency_decay, block_nnz
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, sequences: Histories, n_items: int) -> Self:
        users, items = ragged_to_coo(sequences, n_items)
        ones = np.ones(len(items), dtype=np.float32)
        played = sp.csr_matrix((ones, (users, items)), shape=(len(sequences), n_items + 1))
        played.sum_duplicates()
        played.data[:] = 1.0  # a user counts once per item, however often they played it
        by_item = played.T.tocsr()
        support = np.diff(by_item.indptr).astype(np.float64)  # |U_i|
        parts = [
            self._top_neighbours(by_item[start:stop] @ played, start, support)
            for start, stop in self._blocks(by_item, np.diff(played.indptr))
        ]
        rows, cols, sims = (np.concatenate(p) for p in zip(*parts, strict=True))
        shape = (n_items + 1, n_items + 1)
        self.similarity = sp.csr_matrix((sims.astype(np.float32), (rows, cols)), shape=shape)
        self.n_items = n_items
        return self

    def _blocks(self, by_item: sp.csr_matrix, user_sizes: Ints) -> list[tuple[int, int]]:
        """Contiguous item ranges whose co-occurrence rows hold at most ~block_nnz pairs."""
        # Row i of the co-occurrence matrix has at most sum over U_i of |user's items| entries.
        bound = np.cumsum(by_item @ user_sizes)
        block_of = (bound - 1).clip(min=0) // self.block_nnz
        edges = np.flatnonzero(np.diff(block_of)) + 1
        starts = np.concatenate([[0], edges])
        stops = np.concatenate([edges, [len(bound)]])
        return list(zip(starts.tolist(), stops.tolist(), strict=True))

    def _top_neighbours(
        self, cooccurrence: sp.csr_matrix, offset: int, support: NDArray[np.float64]
    ) -> tuple[Ints, Ints, NDArray[np.float64]]:
        """(item, neighbour, cosine) of each item's top neighbours, for a block of rows."""
        block = cooccurrence.tocoo()  # from CSR: entries grouped by row, rows in order
        rows, cols = block.row.astype(np.int64) + offset, block.col.astype(np.int64)
        other = rows != cols  # an item is not its own neighbour
        rows, cols = rows[other], cols[other]
        sims = block.data[other] / np.sqrt(support[rows] * support[cols])
        # One int64 key per pair orders by similarity, then lower neighbour id: the similarity
        # in the high bits (to ~1e-12, closer values tie), the complemented id in the low bits.
        id_bits = int(support.size - 1).bit_length()
        quantized = np.floor(sims * 2.0 ** (62 - id_bits)).astype(np.int64)
        keys = (quantized << id_bits) | ((1 << id_bits) - 1 - cols)
        counts = np.bincount(rows - offset, minlength=cooccurrence.shape[0])
        kept = _top_k_per_row(np.cumsum(counts) - counts, counts, keys, self.neighbours)
        return rows[kept], cols[kept], sims[kept]

    def similar_items(self, item: int) -> list[tuple[int, float]]:
        """The item's kept neighbours with their similarity, most similar first."""
        self._check_fitted()
        row = self.similarity.getrow(item)
        order = np.lexsort((row.indices, -row.data))
        return [(int(row.indices[i]), float(row.data[i])) for i in order]

    def full_sort_predict(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        users, items = ragged_to_coo(histories, self.n_items)
        # Plays after position p in its history: the row's end minus p minus one.
        ends = np.cumsum(np.bincount(users, minlength=len(histories)))
        later = ends[users] - 1 - np.arange(len(items))
        weights = np.power(self.recency_decay, later, dtype=np.float32)
        profile = sp.csr_matrix((weights, (users, items)), shape=(len(histories), self.n_items + 1))
        scores = (profile @ self.similarity).toarray()
        scores[:, 0] = -np.inf
        return torch.from_numpy(scores)


class ALS(Baseline):
    """Weighted ALS on the binary user x item matrix, confidence 1 + alpha * plays."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 42,
    ) -> None:
        self.settings = {
            "factors": factors,
            "regularization": regularization,
            "alpha": alpha,
            "iterations": iterations,
            "random_state": seed,
        }

    def fit(self, sequences: Histories, n_items: int) -> Self:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.n_items = n_items
        # implicit parallelizes itself; a multi-threaded BLAS underneath only contends with it.
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(**self.settings, num_threads=2)
            self.model.fit(self._matrix(sequences), show_progress=False)
        return self

    def _matrix(self, histories: Histories) -> sp.csr_matrix:
        users, items = ragged_to_coo(histories, self.n_items)
        ones = np.ones(len(items), dtype=np.float32)
        matrix = sp.csr_matrix((ones, (users, items)), shape=(len(histories), self.n_items + 1))
        matrix.sum_duplicates()
        return matrix

    def full_sort_predict(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        factors = self.model.recalculate_user(np.arange(len(histories)), self._matrix(histories))
        scores = np.asarray(factors) @ np.asarray(self.model.item_factors).T
        scores[:, 0] = -np.inf
        return torch.from_numpy(scores.astype(np.float32))


def _top_k_per_row(starts: Ints, counts: Ints, keys: Ints, k: int) -> Ints:
    """Indices into `keys` of each row's k largest keys, rows being contiguous runs (start,
    count). Rows longer than k are padded to the next power of two and grouped by that width,
    so one torch.topk per width does them all: a handful of calls, padding at most doubles."""
    kept = [np.flatnonzero(np.repeat(counts <= k, counts))]
    long_rows = np.flatnonzero(counts > k)
    widths = 1 << np.ceil(np.log2(counts[long_rows])).astype(np.int64)
    for width in np.unique(widths).tolist():
        rows = long_rows[widths == width]
        index = starts[rows, None] + np.arange(width)
        valid = np.arange(width) < counts[rows, None]
        index = np.where(valid, index, 0)
        padded = torch.from_numpy(np.where(valid, keys[index], -1))  # keys are >= 0
        top = torch.topk(padded, k, dim=1).indices.numpy()
        kept.append(np.take_along_axis(index, top, axis=1).ravel())
    return np.concatenate(kept)


class TextKNN(Baseline):
    """Content-based: an item's score is the cosine between its text embedding and the mean
    text embedding of the history. Learns nothing from interactions, so it ranks tracks never
    heard in training like any other (the cold-start reference)."""

    def __init__(self, text: NDArray[np.float32]) -> None:
        """`text` [n_items + 1, dim] L2-normalized embeddings, row 0 padding."""
        self.text = torch.from_numpy(np.asarray(text, dtype=np.float32))

    def fit(self, sequences: Histories, n_items: int) -> Self:
        if len(self.text) != n_items + 1:
            raise ValueError(f"text has {len(self.text) - 1} items, the data {n_items}")
        ragged_to_coo(sequences, n_items)  # checks the items
        self.n_items = n_items
        return self

    def full_sort_predict(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        rows, items = ragged_to_coo(histories, self.n_items)
        profile = torch.zeros(len(histories), self.text.shape[1]).index_add_(
            0, torch.from_numpy(rows), self.text[torch.from_numpy(items)]
        )
        scores = torch.nn.functional.normalize(profile, dim=1) @ self.text.T
        scores[:, 0] = -torch.inf
        return scores
