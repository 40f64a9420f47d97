"""One mode of the serving benchmark (embedded or services) from start to end: the in-process
run, a benchmark API key, the `musicrec serve` (and in services mode `serve-ml`) servers, the
HTTP runs; then the summary of all modes against the targets, with ratios to the /healthz
baseline and to the in-process figures."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from apps.api.security import ApiKeys
from benchmarks.common import log
from benchmarks.servers import CpuMeter, Server, SetupFailed, server_env
from benchmarks.serving.in_process import in_process
from benchmarks.serving.routes import TARGET_P99_MS, TARGET_RPS, build_routes, over_http
from benchmarks.serving.workload import LISTENER_APP, Workload
from musicrec.config import Settings
from musicrec.db.engine import make_engine


def run_mode(
    mode: str, settings: Settings, workload: Workload, run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    log(f"{mode}: in-process")
    result: dict[str, Any] = {"in_process": in_process(settings, workload, args.requests)}
    engine = make_engine(settings=settings)
    try:
        # The generated listeners are stored as demo:user:<n>: the app demo's.
        api_key = ApiKeys(engine, 0).create(f"bench-{uuid.uuid4().hex[:8]}", app=LISTENER_APP)
    finally:
        engine.dispose()
    servers: list[Server] = []
    try:
        ml_url = None
        if mode == "services":
            ml = Server("ml_service", "serve-ml", server_env(settings), run_dir)
            servers.append(ml)
            ml.wait_ready("/internal/ready")
            ml_url = ml.url
        api = Server(f"api_{mode}", "serve", server_env(settings, ml_url), run_dir)
        servers.append(api)
        ready = api.wait_ready("/readyz")
        if ready.get("status") != "ok":
            raise SetupFailed(f"{mode} API not ready: {ready}")
        result["readyz"] = ready
        log(f"{mode}: HTTP on port {api.port}")
        routes = build_routes(api_key, workload, np.random.default_rng(3))
        meter = CpuMeter(servers)
        result["http"] = over_http(servers, routes, meter, args.requests, args.step_seconds)
        result["server_cpu_s_total"] = {s.name: round(s.cpu_seconds(), 1) for s in servers}
    finally:
        for server in reversed(servers):
            server.stop()
    return result


def summary(modes: dict[str, Any]) -> dict[str, Any]:
    summary, ratios = {}, {}
    for mode, res in modes.items():
        http, local = res["http"], res["in_process"]
        base = http["healthz"]
        for route in ("user", "predict"):
            r = http[route]
            c1 = r["concurrency_1"]
            summary[f"{mode}/{route}"] = {
                "p50_ms": c1["p50_ms"],
                "p99_ms": c1["p99_ms"],
                "highest_sustained_rps": r["highest_sustained_rps"],
                "p99_ms_at_highest": r["p99_ms_at_highest"],
                "highest_rps_with_p99_within_target": r["highest_rps_with_p99_within_target"],
                "in_process_p50_ms": local[route]["p50_ms"],
                "target_p99_met_at_concurrency_1": c1["p99_ms"] <= TARGET_P99_MS,
                "target_rps_met": r["highest_sustained_rps"] >= TARGET_RPS,
                "both_targets_met_together": r["highest_rps_with_p99_within_target"] >= TARGET_RPS,
            }
            if "ml_service_direct" in http:  # where the p50 goes: service, its HTTP, the API
                direct = http["ml_service_direct"][route]["p50_ms"]
                summary[f"{mode}/{route}"]["p50_ms_breakdown"] = {
                    "ml_service_in_process": local[route]["p50_ms"],
                    "ml_service_http": round(direct - local[route]["p50_ms"], 3),
                    "api_and_its_call_to_ml": round(c1["p50_ms"] - direct, 3),
                }
            ratios[f"{mode}/{route}"] = {
                "p50_over_healthz_p50": round(c1["p50_ms"] / base["concurrency_1"]["p50_ms"], 2),
                "throughput_over_healthz": round(
                    r["highest_sustained_rps"] / max(base["highest_sustained_rps"], 1), 3
                ),
                "http_p50_over_in_process_p50": round(c1["p50_ms"] / local[route]["p50_ms"], 2),
            }
        summary[f"{mode}/healthz"] = {
            "p50_ms": base["concurrency_1"]["p50_ms"],
            "p99_ms": base["concurrency_1"]["p99_ms"],
            "highest_sustained_rps": base["highest_sustained_rps"],
        }
        others = list(_other_load(http))
        summary[f"{mode}/other_processes_cores"] = {
            "mean": round(mean(others), 2),
            "max": max(others),
            "note": "CPU other jobs on this machine used during the HTTP phases (of 2 cores)",
        }
    return {"summary": summary, "ratios": ratios}


def _other_load(tree: Any) -> Iterator[float]:
    """Every phase's other_processes_cores in a result tree."""
    if isinstance(tree, dict):
        if "other_processes_cores" in tree:
            yield tree["other_processes_cores"]
        for value in tree.values():
            yield from _other_load(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _other_load(value)
