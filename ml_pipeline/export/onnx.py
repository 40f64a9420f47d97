"""SASRec's full-ranking scorer as an ONNX graph and its int8 (dynamic) quantization; the
onnxruntime scorer that stands in for the torch model is the serving runtime's
(inference.scoring). Serving reads more files than these graphs: ml_pipeline.export.serving
writes them all.

    python -m ml_pipeline.export.onnx var/models/sasrec_games.pt \\
        --data ../shared/data/sasrec_games/Video.txt

writes sasrec_games.onnx and sasrec_games.int8.onnx next to the checkpoint and, with --data,
results/onnx_parity_Video.json: NDCG@10 of torch, fp32 and int8 on the leave-one-out test users
and the share of torch's top 10 that each graph keeps.

The graph maps `seqs` [B, L] int64 (left-padded with 0, L = max_seq_len) to `scores`
[B, n_items + 1] float32, column 0 (padding) at -inf, plus `top_scores` and `top_items` [B, k]
when exported with a top k. The batch axis is dynamic.

Quantization is dynamic (int8 weights stored, activations quantized to uint8 at each call) and
covers what is worth it: the scoring MatMul of the last hidden state [B, d] with the item table
[d, n_items + 1], nearly all of the weights and of the work per call, and the input Gather's
copy of the item table (uint8). The d x d layers of the encoder stay float (`encoder=True`
quantizes them too): they are tiny, and each would add a quantize step and error for nothing.
The scoring weights get a scale per item and a 7-bit range: on CPUs without VNNI (AVX2 only)
onnxruntime multiplies uint8 x int8 with an instruction that adds pairs of products in saturating
int16, which full-range int8 weights overflow (per-item scales make that common; some scores
came out off by a quarter of their range). 7-bit weights cannot overflow it.
"""

from __future__ import annotations

import logging
import pickle
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, cast

import onnx
import torch
import typer
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import Tensor, nn
from torch.nn import functional as F

from inference.scoring import INPUT, SCORES, TOP_ITEMS, TOP_SCORES

# OnnxScorer and top_items are the serving runtime's; imported from here by offline tools.
from inference.scoring import OnnxScorer as OnnxScorer
from inference.scoring import top_items as top_items
from ml_pipeline.data.sequences import MinItemCountOption
from ml_pipeline.evaluation.results import RESULTS_DIR
from ml_pipeline.models.sasrec import SASRec
from musicrec.config import get_settings
from musicrec.errors import UserError

OPSET = 17
# Initializer names in the exported graph (module buffer / parameter paths).
SCORING_WEIGHT = "item_weights_t"
INPUT_EMBEDDING = "model.item_emb.weight"
QUANTIZATION = (
    "dynamic; scoring MatMul int8 weights per item, 7-bit range; input Gather table uint8; "
    "encoder float"
)

# What loading a file that is not a checkpoint (or of another shape) raises.
UNREADABLE = (KeyError, TypeError, AttributeError, RuntimeError, EOFError, pickle.UnpicklingError)


class ScoringGraph(nn.Module):
    """What the exported graph computes: `SASRec.full_sort_scores` with the padding column at
    -inf and, with `top_k`, the best k items in-graph.

    The encoder is `SASRec.encode` (eval mode: no dropout) written for export: the attention of
    nn.MultiheadAttention spelled out on its own weights, the sequence length fixed at
    max_seq_len. It traces to ~110 nodes where the module traces to ~440, most of them shape
    arithmetic, and at batch 1 every node is a fixed cost per call. `export_onnx` checks it
    against the model before exporting. The item table enters the scoring MatMul as its own
    pre-transposed constant [d, n_items + 1]: a Transpose of the table the input Gather shares
    would not be a constant MatMul weight, and the quantizer would leave it float."""

    def __init__(self, model: SASRec, top_k: int | None = None) -> None:
        super().__init__()
        config = model.config
        if top_k is not None and not 1 <= top_k <= config.n_items:
            raise ValueError(f"top_k must be in 1..{config.n_items}, got {top_k}")
        self.model = model
        self.top_k = top_k
        self.register_buffer(SCORING_WEIGHT, model.item_emb.weight.detach().T.contiguous().clone())
        padding = torch.zeros(config.n_items + 1)
        padding[0] = float("-inf")
        self.register_buffer("padding_mask", padding)
        causal: Tensor = model.causal_mask  # type: ignore[assignment]  # a registered buffer
        length = config.max_seq_len
        additive = torch.zeros(length, length).masked_fill(causal[:length, :length], float("-inf"))
        self.register_buffer("attention_mask", additive)

    def last_hidden(self, seqs: Tensor) -> Tensor:
        """`SASRec.last_hidden` for [B, max_seq_len] inputs."""
        return self.last_hidden_of(self.model.item_emb(seqs), seqs != 0)

    def last_hidden_of(self, vectors: Tensor, present: Tensor) -> Tensor:
        """The same from item vectors [B, max_seq_len, d] and a [B, max_seq_len] mask of the
        non-padding positions (`SASRec.encode_vectors`' inputs)."""
        m, config = self.model, self.model.config
        d, heads, length = config.embedding_dim, config.num_heads, config.max_seq_len
        head_dim = d // heads
        mask: Tensor = self.attention_mask  # type: ignore[assignment]  # a registered buffer

        def split(x: Tensor) -> Tensor:  # [B, L, d] -> [B, heads, L, head_dim]
            return x.reshape(-1, length, heads, head_dim).transpose(1, 2)

        x = vectors * d**0.5 + m.pos_emb.weight
        keep = present.unsqueeze(-1).to(x.dtype)
        x = x * keep
        for norm, module, ffn_norm, ffn in zip(
            m.attn_norms, m.attns, m.ffn_norms, m.ffns, strict=True
        ):
            attn = cast(nn.MultiheadAttention, module)
            w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
            b_q, b_k, b_v = cast(Tensor, attn.in_proj_bias).chunk(3)
            q = norm(x)
            logits = split(F.linear(q, w_q, b_q)) @ split(F.linear(x, w_k, b_k)).transpose(-1, -2)
            weights = torch.softmax(logits * head_dim**-0.5 + mask, dim=-1)
            attended = (weights @ split(F.linear(x, w_v, b_v))).transpose(1, 2)
            attended = attn.out_proj(attended.reshape(-1, length, d))
            x = ffn(ffn_norm(q + attended)) * keep
        return cast(Tensor, m.last_norm(x[:, -1]))

    def forward(self, seqs: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        weight: Tensor = getattr(self, SCORING_WEIGHT)
        padding: Tensor = self.padding_mask  # type: ignore[assignment]  # a registered buffer
        scores = self.last_hidden(seqs) @ weight + padding
        if self.top_k is None:
            return scores
        top_scores, top_items = torch.topk(scores, self.top_k, dim=1)
        return scores, top_scores, top_items

    @torch.no_grad()
    def check(self, batch: int = 8, seed: int = 0) -> None:
        """Raise if this graph's scores differ from the model's on random histories (some
        padded, some full): the guard against SASRec changing under this copy of its math."""
        config = self.model.config
        generator = torch.Generator().manual_seed(seed)
        seqs = torch.randint(
            1, config.n_items + 1, (batch, config.max_seq_len), generator=generator
        )
        lengths = torch.randint(1, config.max_seq_len + 1, (batch,), generator=generator)
        lengths[0] = config.max_seq_len
        seqs[torch.arange(config.max_seq_len) < (config.max_seq_len - lengths)[:, None]] = 0
        expected = self.model.full_sort_scores(seqs)[:, 1:]
        scores = self(seqs)
        got = (scores if isinstance(scores, Tensor) else scores[0])[:, 1:]
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            error = (got - expected).abs().max().item()
            raise RuntimeError(
                f"ScoringGraph no longer matches SASRec.full_sort_scores (max error {error:.2g})"
            )


def export_onnx(model: SASRec, path: Path, top_k: int | None = None) -> Path:
    """Export the scoring graph (eval mode: no dropout) to `path`, checked by onnx.checker."""
    was_training = model.training
    model.eval()
    graph = ScoringGraph(model, top_k).eval()
    outputs = [SCORES] if top_k is None else [SCORES, TOP_SCORES, TOP_ITEMS]
    example = torch.ones(2, model.config.max_seq_len, dtype=torch.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        graph.check()
        with torch.no_grad(), warnings.catch_warnings():
            # dynamo=False on purpose: the torch.export-based exporter needs onnxscript.
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript", Warning)
            warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                input_names=[INPUT],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in [INPUT, *outputs]},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def _no_preprocessing_hint(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(fp32_path: Path, int8_path: Path, *, encoder: bool = False) -> Path:
    """Dynamic int8 quantization of an exported scoring graph (see the module docstring): the
    scoring MatMul (int8 per item, 7-bit range) and the input Gather's item table; with
    `encoder`, every other MatMul with constant weights as well."""
    model = onnx.load(str(fp32_path), load_external_data=False)
    scoring = [
        n.name for n in model.graph.node if n.op_type == "MatMul" and SCORING_WEIGHT in n.input
    ]
    gather = [
        n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0] == INPUT_EMBEDDING
    ]
    if len(scoring) != 1:
        raise ValueError(f"{fp32_path}: expected one scoring MatMul on {SCORING_WEIGHT}")
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    nodes = None if encoder else scoring + gather
    root = logging.getLogger()
    root.addFilter(_no_preprocessing_hint)  # the hint is for static (calibrated) quantization
    try:
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul", "Gather"],
            nodes_to_quantize=nodes,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.removeFilter(_no_preprocessing_hint)
    quantized = onnx.load(str(int8_path))
    onnx.checker.check_model(quantized)
    if not any(
        n.op_type == "MatMulInteger" and f"{SCORING_WEIGHT}_quantized" in n.input
        for n in quantized.graph.node
    ):
        raise RuntimeError(f"{int8_path}: the scoring MatMul was not quantized")
    return int8_path


def op_counts(path: Path) -> dict[str, int]:
    """Node count per op type of an ONNX file, most frequent first."""
    return dict(Counter(n.op_type for n in onnx.load(str(path)).graph.node).most_common())


# --- command line ------------------------------------------------------------------------------


def load_checkpoint(path: Path) -> tuple[SASRec, list[str], dict[str, Any]]:
    """`SASRec.load` with bad input as a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        return SASRec.load(path)
    except ValueError as exc:  # a checkpoint, of another model
        raise UserError(f"{path}: not a SASRec checkpoint") from exc
    except UNREADABLE as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a SASRec checkpoint ({detail})") from exc


def _size_mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


app = typer.Typer(add_completion=False)


@app.command()
def main(
    checkpoint: Annotated[Path, typer.Argument(help="SASRec checkpoint (.pt)")],
    output_dir: Annotated[
        Path | None, typer.Option(help="where the .onnx files go; default: next to the checkpoint")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="the data the model was trained on (as for training): run the parity check"
        ),
    ] = None,
    min_item_count: MinItemCountOption = 1,
    top_k: Annotated[int, typer.Option(help="items per row of the in-graph top k")] = 10,
    results: Annotated[
        Path | None, typer.Option(help="default: results/onnx_parity_<dataset>.json")
    ] = None,
) -> None:
    """Export a SASRec checkpoint to ONNX (fp32 and int8); with --data, check both against torch."""
    from ml_pipeline.data.sequences import load_dataset
    from ml_pipeline.data.splits import leave_one_out
    from ml_pipeline.evaluation.results import result_document, write_result
    from ml_pipeline.export.parity import (
        PARITY_K,
        TARGET_NDCG_LOSS,
        TARGET_OVERLAP,
        parity,
        torch_run,
    )
    from musicrec.console import cli_errors, console

    started = time.perf_counter()
    with cli_errors():
        model, vocabulary, _ = load_checkpoint(checkpoint)
        sequences, dataset = load_dataset(data, min_item_count) if data else (None, "")
        if sequences is not None and sequences.vocabulary != vocabulary:
            raise UserError(f"{data}: its items are not the checkpoint's vocabulary")
        if not 1 <= top_k <= model.config.n_items:
            raise UserError(f"--top-k must be in 1..{model.config.n_items}")
    folder = output_dir or checkpoint.parent
    with cli_errors():
        try:
            fp32 = export_onnx(model, folder / f"{checkpoint.stem}.onnx", top_k)
            int8 = quantize_int8(fp32, folder / f"{checkpoint.stem}.int8.onnx")
        except OSError as exc:
            raise UserError(f"{exc.filename or folder}: {exc.strerror or exc}") from exc
    files = {
        "fp32": {"path": str(fp32), "mb": _size_mb(fp32)},
        "int8": {"path": str(int8), "mb": _size_mb(int8), "ops": op_counts(int8)},
    }
    console.print(f"fp32 {fp32} ({files['fp32']['mb']} MB); int8 {int8} ({files['int8']['mb']} MB)")
    if sequences is None or data is None:
        return
    split = leave_one_out(sequences.sequences)
    histories, targets = split.test_histories, split.test_targets
    reference = torch_run(model, histories, targets, sequences.n_items)
    checks = {
        name: parity(
            model, OnnxScorer(path, 2), histories, targets, sequences.n_items, reference=reference
        )
        for name, path in (("fp32", fp32), ("int8", int8))
    }
    key = f"ndcg@{PARITY_K}"
    document = result_document(
        dataset=dataset,
        split=split.name,
        model="sasrec",
        metrics={
            "torch": reference.metrics,
            **{name: check["onnx"] for name, check in checks.items()},
        },
        config={"top_k": top_k, "opset": OPSET, "quantization": QUANTIZATION},
        seconds=time.perf_counter() - started,
        protocol="full_ranking",
        overlap={
            name: {
                f"top{PARITY_K}": round(check[f"top{PARITY_K}_overlap"], 4),
                f"{key}_relative_loss": round(check[f"{key}_relative_loss"], 5),
                "targets_met": check["targets_met"],
            }
            for name, check in checks.items()
        },
        targets={f"top{PARITY_K}_overlap": TARGET_OVERLAP, f"{key}_loss": TARGET_NDCG_LOSS},
        files=files,
        users=len(histories),
        checkpoint=str(checkpoint),
    )
    out = write_result(document, results or RESULTS_DIR / f"onnx_parity_{dataset}.json")
    for name, check in checks.items():
        console.print(
            f"{name}: {key} {check['onnx'][key]:.4f} (torch {reference.metrics[key]:.4f}), "
            f"top{PARITY_K} overlap {check[f'top{PARITY_K}_overlap']:.3f}"
        )
    console.print(f"results {out}")


if __name__ == "__main__":
    torch.set_num_threads(get_settings().torch_threads)
    app()
