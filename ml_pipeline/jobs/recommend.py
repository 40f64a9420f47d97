"""Next tracks for a listening history from a trained checkpoint, on its own: the checkpoint
holds the weights, the config and the item vocabulary; the int8 ONNX graph beside it (written
by training) scores when present, else the torch model does.

    python -m ml_pipeline.jobs.recommend var/models/sasrec.pt spotify:track:... -k 10
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import typer

from ml_pipeline.data.sequences import pad_left
from ml_pipeline.export.onnx import OnnxScorer, load_checkpoint, top_items
from musicrec.errors import UserError

Backend = Literal["auto", "onnx", "torch"]


class SequentialRecommender:
    """A trained SASRec with its vocabulary: history of item keys in, best next keys out."""

    def __init__(self, checkpoint: Path, backend: Backend = "auto") -> None:
        self.model, self.vocabulary, _ = load_checkpoint(checkpoint)
        self.index = {key: i for i, key in enumerate(self.vocabulary) if i}
        int8 = checkpoint.with_suffix(".int8.onnx")
        if backend == "onnx" and not int8.is_file():
            raise UserError(f"{int8}: no ONNX graph beside the checkpoint")
        self.scorer = OnnxScorer(int8) if backend != "torch" and int8.is_file() else None
        self.backend = "onnx-int8" if self.scorer else "torch"

    def known(self, keys: list[str]) -> list[int]:
        """The history's items the model knows, in order (unknown tracks are left out)."""
        return [self.index[k] for k in keys if k in self.index]

    def recommend(
        self, history: list[str], k: int = 10, exclude_heard: bool = True
    ) -> list[tuple[str, float]]:
        """The k best next items with their scores, best first."""
        items = self.known(history)
        if not items:
            raise UserError("none of the tracks is in the model's vocabulary")
        if not 1 <= k <= self.model.config.n_items:
            raise UserError(f"k must be in 1..{self.model.config.n_items}")
        seqs = pad_left([items], self.model.config.max_seq_len)
        if self.scorer is not None:
            scores = self.scorer.full_sort_scores(seqs)[0]
        else:
            with torch.no_grad():
                scores = self.model.full_sort_scores(torch.from_numpy(seqs))[0].numpy()
        scores[0] = -np.inf
        if exclude_heard:
            scores[items] = -np.inf
        best = top_items(scores[None, :], k)[0]
        return [(self.vocabulary[i], float(scores[i])) for i in best if np.isfinite(scores[i])]


app = typer.Typer(add_completion=False)


@app.command()
def main(
    checkpoint: Annotated[Path, typer.Argument(help="SASRec checkpoint (.pt)")],
    history: Annotated[list[str], typer.Argument(help="item keys (track URIs), oldest first")],
    k: Annotated[int, typer.Option("-k", help="how many")] = 10,
    backend: Annotated[str, typer.Option(help="auto, onnx or torch")] = "auto",
    include_heard: bool = False,
) -> None:
    """Print the k best next items for a history, one `key<TAB>score` per line."""
    from musicrec.console import cli_errors, err_console

    with cli_errors():
        if backend not in ("auto", "onnx", "torch"):
            raise UserError(f"--backend must be auto, onnx or torch, got {backend!r}")
        recommender = SequentialRecommender(checkpoint, backend)  # type: ignore[arg-type]
        unknown = len(history) - len(recommender.known(history))
        best = recommender.recommend(history, k, exclude_heard=not include_heard)
    if unknown:
        err_console.print(f"{unknown} of {len(history)} tracks unknown to the model: left out")
    for key, score in best:
        print(f"{key}\t{score:.4f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    app()
