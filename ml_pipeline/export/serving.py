"""Every file a trained model serves from (inference.files), written beside its checkpoint, so
that serving runs on numpy, onnxruntime and tokenizers without unpickling torch:

    python -m ml_pipeline.export.serving var/models/hybrid.pt

does it for a model exported before these files existed (training, the retraining job and the
demo call `export_serving` after training).

For a hybrid, the text path of /predict becomes two graphs, each checked against the torch
model it is traced from: the seed-text graph (the sentence encoder, mean pooling and L2
normalization, then the projection into item space with the IDs lent by text neighbours:
`HybridSASRec.text_item_vectors`) and the seed-scoring graph (seed vectors -> the last hidden
state -> scores of every item: what `ColdStartRecommender.scores_for` computes). Both stay
float: int8 weights moved the encoder's embeddings to a cosine of about 0.99 of the float ones,
enough to reorder close candidates, and /predict with an unknown seed is the rare request.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, cast

import numpy as np
import onnx
import torch
import typer
from torch import Tensor, nn

from inference.cold_start import (
    ATTENTION_MASK,
    PRESENT,
    SCORES,
    SEED_VECTORS,
    TOKEN_IDS,
    VECTORS,
)
from inference.files import ServingFiles
from inference.scoring import session
from ml_pipeline.export.onnx import (
    OPSET,
    SCORING_WEIGHT,
    UNREADABLE,
    ScoringGraph,
    export_onnx,
    load_checkpoint,
    quantize_int8,
)
from ml_pipeline.models.hybrid import HybridSASRec, TextItems
from ml_pipeline.models.sasrec import SASRec
from ml_pipeline.models.text_encoder import TextEncoder, sentence_embeddings
from musicrec.errors import UserError

# Texts the seed-text graph is checked on: short and long, accents, one past the token limit.
CHECK_TEXTS = [
    "Toxic — Britney Spears",
    "Raining Blood — Metallica",
    "Déjà Vu — Beyoncé",
    "x",
    " ".join(["a very long title"] * 60) + " — Someone",
]


def export_serving(
    model: SASRec,
    checkpoint: Path,
    vocabulary: list[str],
    top_k: int = 200,
    encoder: TextEncoder | None = None,
) -> list[Path]:
    """Write the serving files of `model` (saved at `checkpoint`) beside it; returns them. The
    scoring graph also returns the best `top_k` items, enough to drop heard tracks and re-rank
    for diversity. A hybrid serves as the plain SASRec its item vectors bake into
    (<name>.serving.pt, with its graphs), plus its text path; `encoder`: the one it was trained
    with (default: TEXT_ENCODER_PATH's)."""
    files = ServingFiles(checkpoint)
    written: list[Path] = []
    served = model
    if isinstance(model, HybridSASRec):
        served = model.to_sasrec()
        served.save(files.baked, vocabulary, {"baked_from": "hybrid_sasrec"})
        written.append(files.baked)
    else:
        files.baked.unlink(missing_ok=True)  # a stale one would make this model a hybrid
    fp32 = export_onnx(
        served, files.serving.with_suffix(".onnx"), min(top_k, served.config.n_items)
    )
    written += [fp32, quantize_int8(fp32, files.graph), write_items(served, vocabulary, files)]
    if isinstance(model, HybridSASRec):
        written += export_text_path(model, served, files, encoder)
    return written


def write_items(model: SASRec, vocabulary: list[str], files: ServingFiles) -> Path:
    """The vocabulary and the item vectors the model scores with, as plain arrays."""
    with torch.no_grad():
        vectors = model.all_item_vectors().numpy().astype(np.float32)
    path = files.items
    np.savez(path, vocabulary=np.array(vocabulary, dtype=str), vectors=vectors)
    return path


def export_text_path(
    model: HybridSASRec, served: SASRec, files: ServingFiles, encoder: TextEncoder | None = None
) -> list[Path]:
    """The tokenizer, the seed-text graph and the seed-scoring graph of a hybrid."""
    if encoder is None:
        from musicrec.config import get_settings

        encoder = TextEncoder(get_settings().text_encoder_path)
    if encoder.dim != model.config.text_dim:
        raise UserError("the text encoder does not match the model's (dimensions differ)")
    model.eval()
    tokenizer = write_tokenizer(encoder, files.tokenizer)
    tokens = encoder.tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    dynamic = {0: "batch", 1: "tokens"}
    _export(
        SeedTextGraph(encoder, model).eval(),
        (tokens["input_ids"], tokens["attention_mask"]),
        files.seed_text,
        [TOKEN_IDS, ATTENTION_MASK],
        [SEED_VECTORS],
        {TOKEN_IDS: dynamic, ATTENTION_MASK: dynamic, SEED_VECTORS: {0: "batch"}},
    )
    with torch.no_grad():
        expected = model.text_item_vectors(torch.from_numpy(encoder.encode(CHECK_TEXTS)))
    _check_seed_text(files, expected.numpy())
    scores = SeedScoringGraph(served).eval()
    scores.check()
    length, d = served.config.max_seq_len, served.config.embedding_dim
    example_vectors = (torch.zeros(2, length, d), torch.ones(2, length, dtype=torch.bool))
    _export(
        scores,
        example_vectors,
        files.seed_scores,
        [VECTORS, PRESENT],
        [SCORES],
        {name: {0: "batch"} for name in (VECTORS, PRESENT, SCORES)},
    )
    return [tokenizer, files.seed_text, files.seed_scores]


def write_tokenizer(encoder: TextEncoder, path: Path) -> Path:
    """The encoder's tokenizer as a `tokenizers` file that pads and truncates as the encoder
    does (to the longest text in a batch; at max_length tokens)."""
    from tokenizers import Tokenizer

    hf = encoder.tokenizer
    tokenizer = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    tokenizer.enable_padding(pad_id=hf.pad_token_id, pad_token=hf.pad_token)
    tokenizer.enable_truncation(encoder.max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    reference = hf(CHECK_TEXTS, padding=True, truncation=True, max_length=encoder.max_length)
    if [t.ids for t in Tokenizer.from_file(str(path)).encode_batch(CHECK_TEXTS)] != reference[
        "input_ids"
    ]:
        raise RuntimeError(f"{path}: the tokenizer file does not tokenize as the encoder does")
    return path


class SeedTextGraph(nn.Module):
    """Tokens [B, T] -> the item vectors [B, d] of tracks known by their text alone."""

    def __init__(self, encoder: TextEncoder, model: HybridSASRec) -> None:
        super().__init__()
        self.encoder = encoder.model
        self.items = TextItems(model)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return cast(Tensor, self.items(sentence_embeddings(hidden, attention_mask)))


class SeedScoringGraph(ScoringGraph):
    """Seed vectors [B, max_seq_len, d] and which positions hold one [B, max_seq_len] -> scores
    [B, n_items + 1] (column 0 at -inf): `SASRec.encode_vectors` then the item table, on the
    export-friendly encoder of the scoring graph."""

    def forward(self, vectors: Tensor, present: Tensor) -> Tensor:  # type: ignore[override]
        weight: Tensor = getattr(self, SCORING_WEIGHT)
        padding: Tensor = self.padding_mask  # type: ignore[assignment]  # a registered buffer
        return self.last_hidden_of(vectors, present) @ weight + padding

    @torch.no_grad()
    def check(self, batch: int = 8, seed: int = 0) -> None:
        """Raise if the graph's scores differ from the model's on random seed vectors."""
        config = self.model.config
        generator = torch.Generator().manual_seed(seed)
        length = config.max_seq_len
        vectors = torch.randn(batch, length, config.embedding_dim, generator=generator)
        present = torch.arange(length) >= torch.randint(0, length, (batch, 1), generator=generator)
        hidden = self.model.encode_vectors(vectors, present)[:, -1]
        expected = hidden @ self.model.all_item_vectors().T
        got = self(vectors, present)
        if not torch.allclose(got[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-4):
            error = (got[:, 1:] - expected[:, 1:]).abs().max().item()
            raise RuntimeError(f"SeedScoringGraph does not match encode_vectors (max {error:.2g})")


def _export(
    module: nn.Module,
    example: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), _quiet_export():
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the torch.export-based exporter needs onnxscript
        )
    onnx.checker.check_model(str(path))


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Without the exporter's deprecation notes and the tracer's warnings about shapes read as
    Python values: the graphs are checked against the model after export instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", Warning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        yield


def _check_seed_text(files: ServingFiles, expected: np.ndarray) -> None:
    """Raise unless the exported tokenizer and seed-text graph give the torch model's vectors
    (texts of other lengths and counts than the example traced)."""
    from tokenizers import Tokenizer

    tokens = Tokenizer.from_file(str(files.tokenizer)).encode_batch(CHECK_TEXTS)
    feed = {
        TOKEN_IDS: np.array([t.ids for t in tokens], dtype=np.int64),
        ATTENTION_MASK: np.array([t.attention_mask for t in tokens], dtype=np.int64),
    }
    (got,) = session(files.seed_text).run([SEED_VECTORS], feed)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        error = float(np.abs(got - expected).max())
        raise RuntimeError(f"{files.seed_text}: does not match the torch text path ({error:.2g})")


# --- command line ------------------------------------------------------------------------------


def load_trained(path: Path) -> tuple[SASRec, list[str]]:
    """A trained hybrid or SASRec checkpoint, bad input as a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        model, vocabulary, _ = HybridSASRec.load(path)
        return model, vocabulary
    except (ValueError, *UNREADABLE):  # not a hybrid: load_checkpoint says what it is
        plain, vocabulary, _ = load_checkpoint(path)
        return plain, vocabulary


app = typer.Typer(add_completion=False)


@app.command()
def main(
    checkpoint: Annotated[Path, typer.Argument(help="a trained model's checkpoint (.pt)")],
    top_k: Annotated[int, typer.Option(help="items per row of the in-graph top k")] = 200,
) -> None:
    """Write the files a model serves from beside its checkpoint (the serving runtime reads
    only these): its scoring graphs, items and, for a hybrid, the text path of /predict."""
    from musicrec.console import cli_errors, console

    with cli_errors():
        if checkpoint.name.endswith(".serving.pt"):
            raise UserError(
                f"{checkpoint}: give the trained model, not the serving one baked from it"
            )
        model, vocabulary = load_trained(checkpoint)
        try:
            written = export_serving(model, checkpoint, vocabulary, top_k)
        except OSError as exc:
            raise UserError(f"{exc.filename or checkpoint.parent}: {exc.strerror or exc}") from exc
    for path in written:
        console.print(f"wrote {path}")


if __name__ == "__main__":
    app()
