"""The files a model serves from, named after its checkpoint X.pt and written beside it at export
(ml_pipeline.export.serving). Serving reads only these, never the torch checkpoint:

    X.int8.onnx         the scoring graph (int8): history -> scores and top items
    X.items.npz         the vocabulary and the item vectors (for "because you played X")

A hybrid model serves as the plain SASRec baked from it (X.serving.pt, whose graph and items
are X.serving.int8.onnx and X.serving.items.npz), and reads /predict seeds the catalog does not
know from their text with

    X.tokenizer.json    the text encoder's tokenizer (padding and truncation set)
    X.seed_text.onnx    tokens -> the seeds' item vectors (encoder, pooling, projection)
    X.seed_scores.onnx  seed vectors [B, L, d] -> scores of every item
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from musicrec.errors import UserError

EXPORT_COMMAND = "python -m ml_pipeline.export.serving"


@dataclass(frozen=True)
class ServingFiles:
    checkpoint: Path  # the trained model (X.pt)

    @property
    def baked(self) -> Path:
        """The plain SASRec a hybrid serves as (absent for a SASRec)."""
        return self.checkpoint.with_suffix(".serving.pt")

    @property
    def hybrid(self) -> bool:
        return self.baked.is_file()

    @property
    def serving(self) -> Path:
        """The checkpoint whose graph scores histories."""
        return self.baked if self.hybrid else self.checkpoint

    @property
    def graph(self) -> Path:
        return self.serving.with_suffix(".int8.onnx")

    @property
    def items(self) -> Path:
        return self.serving.with_suffix(".items.npz")

    @property
    def tokenizer(self) -> Path:
        return self.checkpoint.with_suffix(".tokenizer.json")

    @property
    def seed_text(self) -> Path:
        return self.checkpoint.with_suffix(".seed_text.onnx")

    @property
    def seed_scores(self) -> Path:
        return self.checkpoint.with_suffix(".seed_scores.onnx")

    def runtime(self) -> list[Path]:
        """Every file serving reads (for a hybrid, with the text path)."""
        text = [self.tokenizer, self.seed_text, self.seed_scores] if self.hybrid else []
        return [self.graph, self.items, *text]

    def missing(self) -> list[Path]:
        return [path for path in self.runtime() if not path.is_file()]

    def rewrite_hint(self) -> str:
        return f"write them from the checkpoint with `{EXPORT_COMMAND} {self.checkpoint}`"

    def check_items(self, path: Path, rows: int, n_items: int) -> None:
        """Raise unless a file scoring `rows` item columns belongs to a vocabulary of n_items:
        a file left from before the model changed (tracks added) and exported since."""
        if rows != n_items + 1:
            raise UserError(
                f"{path}: scores {rows - 1} items, the model's vocabulary has {n_items} (files "
                f"of different exports); {self.rewrite_hint()}"
            )
