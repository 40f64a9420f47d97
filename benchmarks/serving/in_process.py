"""The serving benchmark without HTTP: the ML service called in this process on the same
listeners and seeds, p50/p99 per call, then a cProfile of PROFILED_CALLS calls that shows where
the time goes (the top functions, and the STAGES of a request summed)."""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from apps.ml.schemas import PredictQuery, SeedTrack, UserQuery
from apps.ml.service import MLService
from benchmarks.common import log
from benchmarks.loadgen import WARMUP, latency_ms
from benchmarks.serving.workload import PREDICT_K, SEEDS, USER_K, Workload
from musicrec.config import REPO_ROOT, Settings
from musicrec.db.engine import make_engine

PROFILED_CALLS, PROFILE_ROWS = 500, 15
# Profile stages: (file suffix, function) -> label.
STAGES = {
    ("feature_store/online.py", "user_features"): "feature_read_user",
    ("feature_store/online.py", "user_track_features"): "feature_read_candidates",
    ("inference/model.py", "candidates"): "model_onnx_top200",
    ("apps/ml/catalog.py", "match"): "seed_matching",
    ("apps/ml/service.py", "_ranked"): "rerank_and_build_response",
}


def _label(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    for root in (str(REPO_ROOT) + "/", "site-packages/", "lib/python3"):
        if root in file:
            file = file.split(root, 1)[1]
            break
    return f"{file}:{line}({func})"


def _profile(call: Callable[[Any], Any], queries: list[Any]) -> dict[str, Any]:
    profiler = cProfile.Profile()
    profiler.enable()
    for query in queries:
        call(query)
    profiler.disable()
    rows: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    rows = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    n = len(queries)

    def entry(key: tuple[str, int, str], seconds: float) -> dict[str, Any]:
        return {
            "function": _label(key),
            "calls": rows[key][1],
            "ms_per_request": round(seconds / n * 1e3, 3),
        }

    by_cum = sorted(rows, key=lambda k: rows[k][3], reverse=True)[:PROFILE_ROWS]
    by_self = sorted(rows, key=lambda k: rows[k][2], reverse=True)[:10]
    stages: dict[str, float] = {}
    for (file, _, func), (_, _, _, cum, _) in rows.items():
        for (suffix, name), label in STAGES.items():
            if func == name and file.endswith(suffix):
                stages[label] = round(stages.get(label, 0.0) + cum / n * 1e3, 3)
    return {
        "calls_profiled": n,
        "stages_ms_per_request": stages,
        "top_cumulative": [entry(k, rows[k][3]) for k in by_cum],
        "top_self": [entry(k, rows[k][2]) for k in by_self],
    }


def in_process(settings: Settings, workload: Workload, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    engine = make_engine(settings=settings)
    service = MLService(settings, engine)
    try:
        users = rng.choice(workload.listeners, size=n).tolist()
        seeds = rng.integers(0, len(workload.seeds), (n, SEEDS)).tolist()
        queries: dict[str, list[Any]] = {
            "user": [UserQuery(user_id=u, k=USER_K) for u in users],
            "predict": [
                PredictQuery(
                    tracks=[
                        SeedTrack(track_name=workload.seeds[i][0], artist_name=workload.seeds[i][1])
                        for i in s
                    ],
                    k=PREDICT_K,
                )
                for s in seeds
            ],
        }
        calls: dict[str, Callable[[Any], Any]] = {
            "user": service.recommend_user,
            "predict": service.predict,
        }
        out: dict[str, Any] = {}
        for name, call in calls.items():
            for query in queries[name][:WARMUP]:
                call(query)
            latencies, from_model = [], 0
            for query in queries[name]:
                started = time.perf_counter_ns()
                result = call(query)
                latencies.append(time.perf_counter_ns() - started)
                from_model += result.source == "model"
            out[name] = {
                "calls": n,
                **latency_ms(latencies),
                "model_answers": from_model,
                "profile": _profile(call, queries[name][:PROFILED_CALLS]),
            }
            log(f"  in-process {name}: p50 {out[name]['p50_ms']} ms, p99 {out[name]['p99_ms']} ms")
        return out
    finally:
        service.close()
        engine.dispose()
