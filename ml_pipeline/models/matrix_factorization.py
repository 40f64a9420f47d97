"""LightGCN (He et al., SIGIR 2020): collaborative item embeddings from the user–item graph,
trained with BPR. A baseline in the evaluation harness, and the collaborative signal the text
projector of the hybrid model is aligned to (`ml_pipeline.models.hybrid`).

The graph is the bipartite user–item graph of the training sequences (a user counts an item
once), normalized as D^-1/2 A D^-1/2. Layer-0 embeddings are the only parameters; an item's
final embedding is the mean of its layer 0..K propagations. A history (a training user or a
new one) is scored by folding in: its vector is the mean of its items' final embeddings, so
any listener can be scored without retraining.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from ml_pipeline.evaluation.metrics import ragged_to_coo
from ml_pipeline.models.baselines import Baseline, Histories


def normalized_adjacency(
    users: NDArray[np.int64], items: NDArray[np.int64], n_users: int, n_items: int
) -> torch.Tensor:
    """Sparse [n_users + n_items, same] D^-1/2 A D^-1/2; item i (1-based) is node n_users+i-1."""
    n = n_users + n_items
    rows = np.concatenate([users, n_users + items - 1])
    cols = np.concatenate([n_users + items - 1, users])
    adjacency = sp.coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n)).tocsr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = np.zeros_like(degree)
    scale[degree > 0] = degree[degree > 0] ** -0.5
    normalized = sp.diags(scale) @ adjacency @ sp.diags(scale)
    csr = normalized.tocsr()
    csr.sort_indices()
    with warnings.catch_warnings():  # "CSR support is in beta": sparse @ dense is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data.astype(np.float32)),
            (n, n),
            check_invariants=False,  # scipy built it: sorted and in range
        )


class LightGCN(Baseline):
    def __init__(
        self,
        dim: int = 64,
        layers: int = 3,
        epochs: int = 30,
        batch_size: int = 4096,
        lr: float = 0.005,
        l2: float = 1e-4,
        seed: int = 42,
    ) -> None:
        self.dim, self.layers, self.epochs = dim, layers, epochs
        self.batch_size, self.lr, self.l2, self.seed = batch_size, lr, l2, seed
        self.item_embeddings = torch.empty(0)  # [n_items + 1, dim] final; row 0 padding (zeros)
        self.losses: list[float] = []

    def _propagate(self, layer0: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        total, current = layer0, layer0
        for _ in range(self.layers):
            current = graph @ current
            total = total + current
        return total / (self.layers + 1)

    def fit(self, sequences: Histories, n_items: int) -> Self:
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        users, items = ragged_to_coo(sequences, n_items)
        pairs = np.unique(users * (n_items + 1) + items)  # one edge per (user, item)
        users, items = pairs // (n_items + 1), pairs % (n_items + 1)
        n_users = len(sequences)
        graph = normalized_adjacency(users, items, n_users, n_items)
        layer0 = torch.nn.Parameter(
            torch.randn(n_users + n_items, self.dim, generator=generator) * 0.1
        )
        optimizer = torch.optim.Adam([layer0], lr=self.lr)
        self.losses = []
        for _ in range(self.epochs):
            order = rng.permutation(len(users))
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                u = torch.from_numpy(users[batch])
                pos = torch.from_numpy(n_users + items[batch] - 1)
                neg = torch.from_numpy(n_users + rng.integers(0, n_items, len(batch)))
                final = self._propagate(layer0, graph)
                margin = (final[u] * (final[pos] - final[neg])).sum(-1)
                loss = -torch.nn.functional.logsigmoid(margin).mean()
                # Regularize the layer-0 rows the batch used, as the paper does.
                loss = loss + self.l2 * (
                    layer0[u].pow(2).sum() + layer0[pos].pow(2).sum() + layer0[neg].pow(2).sum()
                ) / len(batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            self.losses.append(total / len(order))
        with torch.no_grad():
            final = self._propagate(layer0, graph)[n_users:]
        self.item_embeddings = torch.cat([torch.zeros(1, self.dim), final])
        self.n_items = n_items
        return self

    def history_vectors(self, histories: Histories) -> torch.Tensor:
        """Fold-in: the mean final embedding of each history's items ([B, dim])."""
        self._check_fitted()
        rows, items = ragged_to_coo(histories, self.n_items)
        counts = np.bincount(rows, minlength=len(histories)).clip(min=1).astype(np.float32)
        sums = torch.zeros(len(histories), self.dim).index_add_(
            0, torch.from_numpy(rows), self.item_embeddings[torch.from_numpy(items)]
        )
        return sums / torch.from_numpy(counts).unsqueeze(1)

    def full_sort_predict(self, histories: Histories) -> torch.Tensor:
        scores = self.history_vectors(histories) @ self.item_embeddings.T
        scores[:, 0] = -torch.inf
        return scores


def ridge_projection(
    text: NDArray[np.float32], targets: NDArray[np.float32], l2: float = 1.0
) -> NDArray[np.float32]:
    """The linear map W [text_dim, dim] minimizing |text W - targets|² + l2 |W|² (closed form):
    text embeddings into the collaborative space, fitted on tracks that have both."""
    gram = text.T @ text + l2 * np.eye(text.shape[1], dtype=text.dtype)
    return np.linalg.solve(gram, text.T @ targets).astype(np.float32)


class TextAlignedLightGCN(LightGCN):
    """LightGCN whose items without training data get their embedding from their text, through
    a projection fitted to the trained items' LightGCN embeddings: collaborative filtering that
    can rank a track nobody has played yet (a cold-start baseline for the hybrid)."""

    def __init__(self, text: NDArray[np.float32], ridge: float = 1.0, **settings: Any) -> None:
        super().__init__(**settings)
        self.text = np.asarray(text, dtype=np.float32)
        self.ridge = ridge

    def fit(self, sequences: Histories, n_items: int) -> Self:
        super().fit(sequences, n_items)
        _, items = ragged_to_coo(sequences, n_items)
        trained = np.zeros(n_items + 1, dtype=bool)
        trained[items] = True
        embeddings = self.item_embeddings.numpy()
        projection = ridge_projection(self.text[trained], embeddings[trained], self.ridge)
        cold = ~trained
        cold[0] = False
        embeddings[cold] = self.text[cold] @ projection
        self.item_embeddings = torch.from_numpy(embeddings)
        return self
