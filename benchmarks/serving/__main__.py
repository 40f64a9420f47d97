"""`python -m benchmarks.serving`: the options, the runs of each mode, and the JSON result
(printed, and kept as results/benchmarks/serving.json). See the package docstring."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Any

import torch

import benchmarks.serving
from benchmarks.common import emit, log
from benchmarks.loadgen import CONNECTIONS, SUSTAINED_P99_MS, SUSTAINED_SHARE, WARMUP
from benchmarks.servers import SetupFailed
from benchmarks.serving.modes import run_mode, summary
from benchmarks.serving.routes import TARGET_P99_MS, TARGET_RPS
from benchmarks.serving.workload import (
    AS_OF,
    DATA,
    MODEL,
    PREDICT_K,
    SEEDS,
    SERVING_CODE,
    USER_K,
    bench_settings,
    embedded_cache,
    fingerprint,
    services_settings,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving",
        description=(benchmarks.serving.__doc__ or "").splitlines()[0],
    )
    parser.add_argument("--requests", type=int, default=2_000, help="per concurrency-1 run")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="per offered rate")
    parser.add_argument("--modes", default="embedded,services")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached setup")
    args = parser.parse_args()
    began, load_before = time.perf_counter(), os.getloadavg()
    client_cpu, code = time.process_time(), fingerprint(SERVING_CODE)
    torch.set_num_threads(1)
    modes: dict[str, Any] = {}
    try:
        cache_dir, workload = embedded_cache(args.fresh)
        model = cache_dir / "model" / "sasrec.pt"
        run_dir = cache_dir / "run"  # server logs and services-mode state, kept until the next run
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        for mode in args.modes.split(","):
            if mode == "embedded":
                settings = bench_settings(cache_dir / "var", model, feast_project="benchserving")
                modes[mode] = run_mode(mode, settings, workload, run_dir, args)
            elif mode == "services":
                log("services: loading Postgres and Redis")
                with services_settings(model, run_dir / "services-var") as settings:
                    modes[mode] = run_mode(mode, settings, workload, run_dir, args)
            else:
                raise SetupFailed(f"unknown mode {mode!r} (embedded, services)")
    except SetupFailed as exc:
        sys.exit(f"benchmarks.serving: {exc}")
    if fingerprint(SERVING_CODE) != code:
        log("warning: the serving code changed during the run: the modes measured different code")
    import onnxruntime
    import uvicorn

    emit(
        {
            "benchmark": "serving",
            "setup": {
                "catalog": {
                    "tracks": DATA.n_tracks,
                    "artists": DATA.n_artists,
                    "listeners": len(workload.listeners),
                    "genres": 10,
                    "as_of": AS_OF.isoformat(),
                },
                "model": {
                    "kind": "SASRec, random weights, int8 ONNX, in-graph top 200",
                    "embedding_dim": MODEL.embedding_dim,
                    "num_layers": MODEL.num_layers,
                    "max_seq_len": MODEL.max_seq_len,
                    "int8_mb": round(model.with_suffix(".int8.onnx").stat().st_size / 1e6, 2),
                },
                "requests": {
                    "user": f"GET /v1/users/<random listener>/recommendations?k={USER_K} "
                    "(diversity 0.3 by default: MMR runs)",
                    "predict": f"POST /predict?k={PREDICT_K}, {SEEDS} random catalog tracks "
                    "by title and artist (diversity 0)",
                    "baseline": "GET /healthz",
                },
                "servers": "musicrec serve / serve-ml, 1 uvicorn worker each (uvloop, httptools),"
                " rate limit raised, model polling off",
                "client": f"asyncio (uvloop) HTTP/1.1 keep-alive, {CONNECTIONS} connections in "
                "the sweep; a request queued behind busy connections counts from its due time "
                "(no coordinated omission)",
                "sustained": f"achieved >= {SUSTAINED_SHARE:.0%} of offered, no error or "
                f"fallback answer, all answered, p99 <= {SUSTAINED_P99_MS:.0f} ms",
                "concurrency_1_requests": args.requests,
                "warmup": WARMUP,
                "step_seconds": args.step_seconds,
                "profile_note": "cProfile inflates Python-heavy code relative to C calls",
                "versions": {
                    "python": sys.version.split()[0],
                    "uvicorn": uvicorn.__version__,
                    "onnxruntime": onnxruntime.__version__,
                },
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            "targets": {"p99_ms": TARGET_P99_MS, "rps": TARGET_RPS},
            **summary(modes),
            "modes": modes,
            "serving_code_changed_during_run": fingerprint(SERVING_CODE) != code,
            "client_cpu_s_total": round(time.process_time() - client_cpu, 1),
            "elapsed_seconds": round(time.perf_counter() - began, 1),
        }
    )


if __name__ == "__main__":
    main()
