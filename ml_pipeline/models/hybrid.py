"""LLaRA-style hybrid item representation for SASRec, so tracks the model never saw in training
(and listeners made only of such tracks) can be ranked.

    item vector = projector(text embedding) + ID embedding (only for items seen in training)

The projector is an MLP from the sentence-embedding space into the item space. The ID table
starts at zero and is a residual on top of the text: the model first learns to rank from text
alone, then a curriculum (after LLaRA, Liao et al. 2024) mixes the ID part in — in epoch e a
share `curriculum_share(e)` of item occurrences in the batch use it, rising linearly from 0 to
`id_share_max`. Keeping that below 1 keeps training on text-only items to the end, which is
what a brand-new track is at serving time. A track added after training gets its vector from its
text alone (`add_items`); `to_sasrec` bakes every item's vector into a plain SASRec item table,
so serving, ONNX export and the recommender are the SASRec ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import cast

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ml_pipeline.models.sasrec import SASRec, SASRecConfig


@dataclass(frozen=True)
class HybridConfig(SASRecConfig):
    loss: str = "sampled_softmax"
    text_dim: int = 384
    projector_hidden: int = 0  # 0: a linear projector; N: an MLP with N hidden units
    curriculum_epochs: int = 10  # epochs over which the ID share rises from 0
    id_share_max: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        # BCE's per-position negatives come from the whole catalog, held-out tracks included;
        # the hybrid draws its own, from the tracks it trains on (`negative_items`).
        if self.loss != "sampled_softmax":
            raise ValueError("the hybrid model trains with loss sampled_softmax")
        if not 0 <= self.id_share_max <= 1:
            raise ValueError(f"id_share_max must be in [0, 1], got {self.id_share_max}")
        if self.curriculum_epochs < 0:
            raise ValueError("curriculum_epochs must be >= 0")

    def sasrec(self) -> SASRecConfig:
        """The plain SASRec config of the same shape (for the baked serving model)."""
        names = {f.name for f in fields(SASRecConfig)}
        return SASRecConfig(**{n: getattr(self, n) for n in names} | {"sparse_items": False})


def curriculum_share(epoch: int, config: HybridConfig) -> float:
    """Share of item occurrences that use their ID part in (1-based) `epoch`: 0 in the first,
    rising linearly to id_share_max after curriculum_epochs."""
    if config.curriculum_epochs == 0:
        return config.id_share_max
    return config.id_share_max * min(1.0, (epoch - 1) / config.curriculum_epochs)


class HybridSASRec(SASRec):
    kind = "hybrid_sasrec"
    config_class = HybridConfig
    config: HybridConfig

    def __init__(
        self, config: SASRecConfig, text: Tensor | None = None, trained: Tensor | None = None
    ) -> None:
        """`text` [n_items + 1, text_dim] embeddings (row 0 padding); `trained` [n_items + 1]
        bool: items with training data (only they get an ID part and serve as negatives)."""
        if not isinstance(config, HybridConfig):
            raise TypeError("HybridSASRec needs a HybridConfig")
        super().__init__(config)
        rows = config.n_items + 1
        text = torch.zeros(rows, config.text_dim) if text is None else text.float()
        trained = torch.ones(rows, dtype=torch.bool) if trained is None else trained.bool()
        if text.shape != (rows, config.text_dim) or trained.shape != (rows,):
            raise ValueError(f"text must be [{rows}, {config.text_dim}] and trained [{rows}]")
        trained = trained.clone()
        trained[0] = False
        nn.init.zeros_(self.item_emb.weight)
        self.projector = (
            nn.Sequential(
                nn.Linear(config.text_dim, config.projector_hidden),
                nn.GELU(),
                nn.Linear(config.projector_hidden, config.embedding_dim),
            )
            if config.projector_hidden
            else nn.Linear(config.text_dim, config.embedding_dim)
        )
        self.text: Tensor
        self.trained: Tensor
        self.imputed: Tensor
        self.register_buffer("text", text)
        self.register_buffer("trained", trained)
        # Items whose ID part was lent by text neighbours (impute_ids), not trained.
        self.register_buffer("imputed", torch.zeros_like(trained))
        self.id_share = 1.0

    def start_epoch(self, epoch: int) -> None:
        self.id_share = curriculum_share(epoch, self.config)

    def _uses_id(self, items: Tensor) -> Tensor:
        uses = self.trained[items] | self.imputed[items]
        if self.training and self.id_share < 1:
            uses = uses & (torch.rand(items.shape) < self.id_share)
        return uses

    def item_vectors(self, items: Tensor) -> Tensor:
        # Each distinct item once: a batch repeats popular tracks many times over.
        unique, inverse = torch.unique(items, return_inverse=True)
        text = self.projector(self.text[unique])[inverse]
        return text + self.item_emb(items) * self._uses_id(items).unsqueeze(-1)

    def all_item_vectors(self) -> Tensor:
        uses = self.trained | self.imputed
        return self.projector(self.text) + self.item_emb.weight * uses.unsqueeze(-1)

    def negative_items(self, count: int) -> Tensor:
        warm = torch.nonzero(self.trained).squeeze(1)
        return warm[torch.randint(len(warm), (count,))]

    # --- tracks added after training ---------------------------------------------------------

    @torch.no_grad()
    def add_items(self, text: NDArray[np.float32] | Tensor) -> None:
        """Append items known only by their text embeddings [k, text_dim]: they get vectors
        from the projector alone (no ID part) and rank beside the trained items."""
        extra = torch.as_tensor(text, dtype=torch.float32)
        if extra.ndim != 2 or extra.shape[1] != self.config.text_dim:
            raise ValueError(f"text embeddings must be [k, {self.config.text_dim}]")
        old = self.item_emb
        self.item_emb = nn.Embedding(
            old.num_embeddings + len(extra), old.embedding_dim, padding_idx=0, sparse=old.sparse
        )
        self.item_emb.weight.zero_()
        self.item_emb.weight[: old.num_embeddings] = old.weight
        self.text = torch.cat([self.text, extra])
        no = torch.zeros(len(extra), dtype=torch.bool)
        self.trained = torch.cat([self.trained, no])
        self.imputed = torch.cat([self.imputed, no])
        self.config = self.config_class(
            **{f.name: getattr(self.config, f.name) for f in fields(self.config)}
            | {"n_items": self.config.n_items + len(extra)}
        )

    @torch.no_grad()
    def lent_ids(self, text: Tensor, neighbours: int = 1, temperature: float = 0.01) -> Tensor:
        """ID parts [k, d] for items known only by text embeddings [k, text_dim]: the
        softmax(similarity / temperature)-weighted mean ID of the `neighbours` most text-similar
        trained items (by default the nearest: tracks by the same artist, the same song
        re-released under a new URI). A text-only vector lacks the collaborative part every
        trained item has and ranks low against them; this lends it its neighbours'."""
        lender = TextItems(self, neighbours, temperature)
        return _in_chunks(lender.lent, text, self.config.embedding_dim)

    @torch.no_grad()
    def impute_ids(self, neighbours: int = 1, temperature: float = 0.01) -> int:
        """Lend every item without training data an ID part (`lent_ids`); returns how many."""
        cold = torch.nonzero(~self.trained).squeeze(1)
        cold = cold[cold != 0]
        if not len(cold) or not self.trained.any():
            return 0
        self.item_emb.weight[cold] = self.lent_ids(self.text[cold], neighbours, temperature)
        self.imputed[cold] = True
        return len(cold)

    @contextmanager
    def as_served(self) -> Iterator[None]:
        """Lend IDs to the untrained tracks for the duration (a validation run in the middle
        of training), then take them back: training never sees them."""
        lent = ~self.trained & ~self.imputed
        lent[0] = False
        if not lent.any():
            yield
            return
        with torch.no_grad():
            self.impute_ids()
        try:
            yield
        finally:
            with torch.no_grad():
                self.item_emb.weight[lent] = 0.0
            self.imputed[lent] = False

    @torch.no_grad()
    def text_item_vectors(self, text: Tensor) -> Tensor:
        """Vectors [k, d] for tracks outside the item table, from text embeddings [k, text_dim]
        alone: what `add_items` + `impute_ids` would give them, without changing the model."""
        return _in_chunks(TextItems(self), text, self.config.embedding_dim)

    @torch.no_grad()
    def to_sasrec(self) -> SASRec:
        """A plain SASRec whose item table is every item's hybrid vector as served (untrained
        tracks lent IDs): same scores, and everything built for SASRec (ONNX export, the
        recommender) serves it."""
        baked = SASRec(self.config.sasrec())
        with self.as_served():
            state = {
                k: v
                for k, v in self.state_dict().items()
                if not k.startswith("projector.") and k not in ("text", "trained", "imputed")
            }
            state["item_emb.weight"] = self.all_item_vectors()
        baked.load_state_dict(state)
        return baked.eval()


class TextItems(nn.Module):
    """`HybridSASRec.text_item_vectors` as a module of its own (the model's projector and a copy
    of its trained items' text and IDs), for one batch of text embeddings at once: what the
    seed-text graph exports (ml_pipeline.export.serving)."""

    def __init__(self, model: HybridSASRec, neighbours: int = 1, temperature: float = 0.01):
        super().__init__()
        warm = torch.nonzero(model.trained).squeeze(1)
        self.projector = model.projector
        self.unit: Tensor
        self.ids: Tensor
        self.register_buffer("unit", nn.functional.normalize(model.text[warm], dim=1))
        self.register_buffer("ids", model.item_emb.weight[warm].detach().clone())
        self.neighbours = min(neighbours, len(warm))
        self.temperature = temperature

    def lent(self, text: Tensor) -> Tensor:
        """[k, text_dim] -> [k, d] the ID parts lent by text neighbours (`lent_ids`)."""
        rows = nn.functional.normalize(text.float(), dim=1)
        top, index = torch.topk(rows @ self.unit.T, self.neighbours, dim=1)
        weights = torch.softmax(top / self.temperature, dim=1)
        # embedding, not ids[index]: one Gather when exported.
        return (weights.unsqueeze(-1) * nn.functional.embedding(index, self.ids)).sum(1)

    def forward(self, text: Tensor) -> Tensor:
        return cast(Tensor, self.projector(text.float())) + self.lent(text)


def _in_chunks(function: Callable[[Tensor], Tensor], rows: Tensor, dim: int) -> Tensor:
    """`function` over rows 4,096 at a time (its similarity matrix is rows x trained items)."""
    if not len(rows):
        return torch.zeros(0, dim)
    return torch.cat([function(rows[start : start + 4096]) for start in range(0, len(rows), 4096)])
