"""Batch-1 SASRec inference latency, full ranking of a 50,000-track catalog down to the top 10:
torch eager vs the exported ONNX graph in onnxruntime, fp32 and int8 (ml_pipeline.export.onnx).
One thread each. Prints JSON.

    python -m benchmarks.inference [--iterations 2000] [--warmup 200]

The model has the paper's shape (d = 50, 2 blocks, 1 head, last 50 items) and random weights:
latency does not depend on the values. Each method answers the same request, one listener's
history in and the 10 best items (padding excluded) out: torch eager runs the model's
`full_sort_scores` and `topk` under inference_mode; the graphs compute the top 10 in-graph and
only it is fetched. For reference only, torch eager also runs the exported formulation
(`ScoringGraph`, the same math traced to fewer ops), which shows how much of the gap is the
formulation rather than onnxruntime. Calls are interleaved round-robin (rotating the order) so
that drift on a small shared machine hits every method alike. Each method's top 10 is compared
with the model's on the same histories.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from numpy.typing import NDArray

from benchmarks.common import emit, nearest_rank_ms
from ml_pipeline.data.sequences import pad_left
from ml_pipeline.export.onnx import (
    OnnxScorer,
    ScoringGraph,
    export_onnx,
    op_counts,
    quantize_int8,
)
from ml_pipeline.export.parity import top_k_overlap
from ml_pipeline.models.sasrec import SASRec, SASRecConfig

N_ITEMS, MAX_LEN, K = 50_000, 50, 10
TARGET_SPEEDUP = 3.0  # int8 vs torch eager, p50
OVERLAP_HISTORIES = 500
QUANTIZATION_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear", "MatMul")

Seqs = NDArray[np.int64]
Method = Callable[[Seqs], NDArray[np.int64]]


def _histories(n: int, seed: int = 0) -> list[list[int]]:
    """Listeners with 1..200 items (longer ones are cut to the last 50)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(1, N_ITEMS + 1, int(rng.integers(1, 201))).tolist() for _ in range(n)]


def _eager(model: SASRec) -> Method:
    @torch.inference_mode()
    def call(seqs: Seqs) -> NDArray[np.int64]:
        scores = model.full_sort_scores(torch.from_numpy(seqs))
        return (torch.topk(scores[:, 1:], K, dim=1).indices + 1).numpy()

    return call


def _eager_graph(model: SASRec) -> Method:
    """The exported formulation (ScoringGraph, in-graph top k) run by torch eager: how much of
    the ONNX speed-up is the leaner graph rather than onnxruntime."""
    graph = ScoringGraph(model, K).eval()

    @torch.inference_mode()
    def call(seqs: Seqs) -> NDArray[np.int64]:
        _, _, items = graph(torch.from_numpy(seqs))
        return items.numpy()

    return call


def _onnx(scorer: OnnxScorer) -> Method:
    def call(seqs: Seqs) -> NDArray[np.int64]:
        return scorer.top_k(seqs, K)[1]

    return call


def _latencies(
    methods: dict[str, Method], requests: Seqs, iterations: int, warmup: int
) -> dict[str, dict[str, float]]:
    for call in methods.values():
        for i in range(warmup):
            call(requests[i % len(requests)][None])
    names = list(methods)
    samples: dict[str, list[int]] = {name: [] for name in names}
    for i in range(iterations):
        seqs = requests[i % len(requests)][None]
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            call = methods[name]
            started = time.perf_counter_ns()
            call(seqs)
            samples[name].append(time.perf_counter_ns() - started)
    return {name: {**nearest_rank_ms(s), "iterations": len(s)} for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2_000, help="timed calls per method")
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    began = time.perf_counter()
    load_before = os.getloadavg()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = SASRecConfig(
        n_items=N_ITEMS, max_seq_len=MAX_LEN, embedding_dim=50, num_layers=2, num_heads=1
    )
    model = SASRec(config).eval()
    requests = pad_left(_histories(max(args.iterations, OVERLAP_HISTORIES)), MAX_LEN)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        fp32_path = export_onnx(model, tmp / "sasrec.onnx", top_k=K)
        int8_path = quantize_int8(fp32_path, tmp / "sasrec.int8.onnx")
        int8_ops = op_counts(int8_path)
        files = {
            "fp32_mb": round(fp32_path.stat().st_size / 1e6, 2),
            "int8_mb": round(int8_path.stat().st_size / 1e6, 2),
            "fp32_nodes": sum(op_counts(fp32_path).values()),
            "int8_nodes": sum(int8_ops.values()),
            "int8_ops": {op: int8_ops.get(op, 0) for op in QUANTIZATION_OPS},
        }
        fp32, int8 = OnnxScorer(fp32_path, 1), OnnxScorer(int8_path, 1)
        methods = {
            "torch_eager": _eager(model),
            "ort_fp32": _onnx(fp32),
            "ort_int8": _onnx(int8),
            "torch_eager_scoring_graph": _eager_graph(model),
        }

        checked = requests[:OVERLAP_HISTORIES]
        reference = methods["torch_eager"](checked)
        overlap = {
            name: round(top_k_overlap(reference, method(checked)), 4)
            for name, method in methods.items()
            if name != "torch_eager"
        }
        print(f"top-{K} overlap with torch on {len(checked)} histories: {overlap}", flush=True)

        latency = _latencies(methods, requests, args.iterations, args.warmup)

    eager, f32, i8 = (latency[n] for n in ("torch_eager", "ort_fp32", "ort_int8"))
    eager_graph = latency["torch_eager_scoring_graph"]

    def ratio(a: dict[str, float], b: dict[str, float], key: str) -> float:
        return round(a[key] / b[key], 2)

    speedup_p50, speedup_p99 = ratio(eager, i8, "p50_ms"), ratio(eager, i8, "p99_ms")
    emit(
        {
            "benchmark": "inference",
            "setup": {
                "model": "SASRec, random weights",
                "catalog": N_ITEMS,
                "config": {"embedding_dim": 50, "num_layers": 2, "num_heads": 1, "max_len": 50},
                "request": f"batch 1, history of 1..200 items (last {MAX_LEN}) -> top {K}",
                "threads": "1 (torch.set_num_threads, ORT intra_op_num_threads)",
                "eager": "torch.inference_mode, SASRec.full_sort_scores + topk",
                "eager_scoring_graph": "the exported formulation run by torch (reference only)",
                "onnx": "in-graph TopK, only the top k fetched; ORT_ENABLE_ALL",
                "warmup": args.warmup,
                "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            "files": files,
            "latency": latency,
            "ratios": {
                "eager_over_int8_p50": speedup_p50,
                "eager_over_int8_p99": speedup_p99,
                "eager_over_fp32_p50": ratio(eager, f32, "p50_ms"),
                "eager_over_fp32_p99": ratio(eager, f32, "p99_ms"),
                "fp32_over_int8_p50": ratio(f32, i8, "p50_ms"),
                "fp32_over_int8_p99": ratio(f32, i8, "p99_ms"),
                "eager_scoring_graph_over_int8_p50": ratio(eager_graph, i8, "p50_ms"),
            },
            f"top{K}_overlap_with_torch": overlap,
            "targets": {
                "int8_speedup_over_eager_p50": {
                    "target": TARGET_SPEEDUP,
                    "value": speedup_p50,
                    "met": speedup_p50 >= TARGET_SPEEDUP,
                },
                "int8_speedup_over_eager_p99": {
                    "target": TARGET_SPEEDUP,
                    "value": speedup_p99,
                    "met": speedup_p99 >= TARGET_SPEEDUP,
                },
            },
            "elapsed_seconds": round(time.perf_counter() - began, 1),
        }
    )


if __name__ == "__main__":
    main()
