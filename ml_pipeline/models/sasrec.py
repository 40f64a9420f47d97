"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

Causal self-attention blocks over the last `max_seq_len` items, learned positions, item
embeddings shared between input and output, trained with binary cross-entropy on one sampled
negative per position. Layout follows the authors' code (pre-LayerNorm on the query, residual
point-wise feed-forward, a last LayerNorm). Items are 1..n_items; 0 pads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import torch
from torch import Tensor, nn

LOSSES = ("bce", "sampled_softmax")


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int
    max_seq_len: int = 50
    embedding_dim: int = 50
    num_heads: int = 1
    num_layers: int = 2
    dropout: float = 0.5
    lr: float = 0.001
    beta2: float = 0.98  # Adam's second-moment decay, as in the paper
    l2: float = 0.0  # weight decay on the item embeddings only
    # "bce": the paper's loss, one sampled negative per position. "sampled_softmax": cross-entropy
    # of the next item against `num_negatives` uniform negatives shared by the batch — far
    # stronger on large sparse catalogs (Klenitskiy & Vasilev, RecSys 2023).
    loss: str = "bce"
    num_negatives: int = 256
    # Sparse item-embedding gradients with a lazy Adam for that table (only the rows a batch
    # touches are updated). A dense Adam step over a 100k+ item table dominates a batch on CPU.
    sparse_items: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.embedding_dim % self.num_heads:
            raise ValueError("embedding_dim must be a multiple of num_heads")
        if self.sparse_items and self.l2:
            raise ValueError("l2 needs dense item gradients: not with sparse_items")


class PointWiseFeedForward(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim), nn.Dropout(dropout), nn.ReLU(), nn.Linear(dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.dropout(self.net(x))


class SASRec(nn.Module):
    kind = "sasrec"  # what a checkpoint says it holds
    config_class: type[SASRecConfig] = SASRecConfig

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embedding_dim
        self.item_emb = nn.Embedding(
            config.n_items + 1, d, padding_idx=0, sparse=config.sparse_items
        )
        self.pos_emb = nn.Embedding(config.max_seq_len, d)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.attn_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-8) for _ in range(config.num_layers))
        self.attns = nn.ModuleList(
            nn.MultiheadAttention(d, config.num_heads, dropout=config.dropout, batch_first=True)
            for _ in range(config.num_layers)
        )
        self.ffn_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-8) for _ in range(config.num_layers))
        self.ffns = nn.ModuleList(
            PointWiseFeedForward(d, config.dropout) for _ in range(config.num_layers)
        )
        self.last_norm = nn.LayerNorm(d, eps=1e-8)
        causal = torch.triu(torch.ones(config.max_seq_len, config.max_seq_len, dtype=torch.bool), 1)
        self.register_buffer("causal_mask", causal, persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.xavier_normal_(module.weight)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def encode(self, seqs: Tensor) -> Tensor:
        """[B, L] item ids (left-padded with 0) -> [B, L, d] hidden state per position."""
        return self.encode_vectors(self.item_vectors(seqs), seqs != 0)

    def encode_vectors(self, items: Tensor, present: Tensor) -> Tensor:
        """The same from item vectors [B, L, d] and a [B, L] mask of the non-padding positions:
        a sequence can hold items outside the item table (a seed track known only by text)."""
        length = items.size(1)
        x = items * self.config.embedding_dim**0.5
        x = x + self.pos_emb.weight[:length].unsqueeze(0)
        x = self.emb_dropout(x)
        keep = present.unsqueeze(-1)
        x = x * keep
        causal: Tensor = self.causal_mask  # type: ignore[assignment]  # a registered buffer
        mask = causal[:length, :length]
        for norm, attn, ffn_norm, ffn in zip(
            self.attn_norms, self.attns, self.ffn_norms, self.ffns, strict=True
        ):
            q = norm(x)
            attended, _ = attn(q, x, x, attn_mask=mask, need_weights=False)
            x = ffn(ffn_norm(q + attended)) * keep
        return self.last_norm(x)

    def calculate_loss(self, seqs: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """The configured loss on the next item at every non-padding position. `neg` [B, L] are
        per-position negatives for BCE; sampled softmax draws its own shared ones."""
        valid = pos != 0
        h = self.encode(seqs)[valid]  # [N, d]
        pos_logits = (h * self.item_vectors(pos[valid])).sum(-1)
        if self.config.loss == "bce":
            neg_logits = (h * self.item_vectors(neg[valid])).sum(-1)
            loss = nn.functional.binary_cross_entropy_with_logits(
                pos_logits, torch.ones_like(pos_logits)
            ) + nn.functional.binary_cross_entropy_with_logits(
                neg_logits, torch.zeros_like(neg_logits)
            )
        else:
            shared = self.negative_items(self.config.num_negatives)
            neg_logits = h @ self.item_vectors(shared).T  # [N, num_negatives]
            # A negative that is the position's own next item is not a negative.
            neg_logits = neg_logits.masked_fill(pos[valid].unsqueeze(1) == shared, -torch.inf)
            logits = torch.cat([pos_logits.unsqueeze(1), neg_logits], dim=1)
            loss = nn.functional.cross_entropy(
                logits, torch.zeros_like(pos_logits, dtype=torch.long)
            )
        if self.config.l2:
            loss = loss + self.config.l2 * self.item_emb.weight.pow(2).sum()
        return loss

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam with the paper's betas; with sparse_items the item table gets SparseAdam."""
        betas = (0.9, self.config.beta2)
        if not self.config.sparse_items:
            return [torch.optim.Adam(self.parameters(), lr=self.config.lr, betas=betas)]
        items = [self.item_emb.weight]
        rest = [p for p in self.parameters() if p is not self.item_emb.weight]
        return [
            torch.optim.SparseAdam(items, lr=self.config.lr, betas=betas),
            torch.optim.Adam(rest, lr=self.config.lr, betas=betas),
        ]

    # --- item representation: hooks a model with other item vectors overrides (hybrid.py) ----

    def item_vectors(self, items: Tensor) -> Tensor:
        """[...] item ids -> [..., d] the vectors the model reads and scores them by."""
        return self.item_emb(items)

    def all_item_vectors(self) -> Tensor:
        """[n_items + 1, d] every item's vector (row 0 is padding)."""
        return self.item_emb.weight

    def negative_items(self, count: int) -> Tensor:
        """Shared negatives for sampled softmax: uniform over the catalog."""
        return torch.randint(1, self.config.n_items + 1, (count,))

    def start_epoch(self, epoch: int) -> None:
        """Called before each training epoch (1-based); schedules hook in here."""

    @contextmanager
    def as_served(self) -> Iterator[None]:
        """Within: the items as serving has them (the hybrid lends untrained ones IDs)."""
        yield

    def last_hidden(self, seqs: Tensor) -> Tensor:
        return self.encode(seqs)[:, -1, :]

    def full_sort_scores(self, seqs: Tensor) -> Tensor:
        """[B, L] -> [B, n_items + 1] scores of every item (column 0 is padding)."""
        return self.last_hidden(seqs) @ self.all_item_vectors().T

    def candidate_scores(self, seqs: Tensor, candidates: Tensor) -> Tensor:
        """[B, L], [B, C] -> [B, C]"""
        return (self.last_hidden(seqs).unsqueeze(1) * self.item_vectors(candidates)).sum(-1)

    # --- checkpoints -------------------------------------------------------------------------

    def save(self, path: Path, vocabulary: list[str], extra: dict[str, Any] | None = None) -> None:
        """Weights, config and the item vocabulary (index i -> vocabulary[i]; 0 is padding)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "model": self.kind,
                "config": asdict(self.config),
                "state_dict": self.state_dict(),
                "vocabulary": vocabulary,
                **(extra or {}),
            },
            path,
        )

    @classmethod
    def load(cls, path: Path) -> tuple[Self, list[str], dict[str, Any]]:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if checkpoint.get("model") != cls.kind:
            raise ValueError(f"{path} is not a {cls.__name__} checkpoint")
        model = cls(cls.config_class(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
        model.eval()
        return model, checkpoint["vocabulary"], checkpoint
