"""The serving benchmark over HTTP: the routes it loads (the public API's
`GET /v1/users/{id}/recommendations` and `POST /predict`, GET /healthz as the baseline, and in
services mode the ML service's internal routes), each at concurrency 1 and in an open-loop rate
sweep with the shared load generator (benchmarks.loadgen), against the issue's targets."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import numpy as np

from apps.api.tenancy import client_user_id
from benchmarks.common import log
from benchmarks.loadgen import Route, closed_loop, encode, sweep
from benchmarks.servers import CpuMeter, Server
from benchmarks.serving.workload import LISTENER_APP, PREDICT_K, SEEDS, USER_K, Workload

RATES = (250, 500, 750, 1000, 1500, 2000)
BASELINE_RATES = (*RATES, 3000, 4000)
TARGET_P99_MS, TARGET_RPS = 15.0, 1_000


def _client_id(stored: str) -> str:
    """A listener's id as the benchmark key's app sends it (the internal routes take it stored)."""
    client = client_user_id(LISTENER_APP, stored)
    assert client is not None, stored
    return client


def build_routes(
    api_key: str, workload: Workload, rng: np.random.Generator
) -> tuple[list[Route], list[Route]]:
    """The public API's routes, and the ML service's internal ones (same listeners, seeds)."""
    users = rng.choice(workload.listeners, size=2_000).tolist()
    seeds = [
        [{"track_name": workload.seeds[i][0], "artist_name": workload.seeds[i][1]} for i in picks]
        for picks in rng.integers(0, len(workload.seeds), (2_000, SEEDS)).tolist()
    ]
    key = {"X-API-Key": api_key}
    public = [
        Route(
            "user",
            [
                encode(
                    "GET",
                    f"/v1/users/{quote(_client_id(u), safe='')}/recommendations?k={USER_K}",
                    key,
                )
                for u in users
            ],
            b'"source":"model"',
        ),
        Route(
            "predict",
            [encode("POST", f"/predict?k={PREDICT_K}", {}, {"tracks": t}) for t in seeds],
            b"x-recommendation-source: model",
        ),
        Route("healthz", [encode("GET", "/healthz", {})], b'"status":"ok"'),
    ]
    internal = [
        Route(
            "user",
            [
                encode("POST", "/internal/recommendations", {}, {"user_id": u, "k": USER_K})
                for u in users
            ],
            b'"source":"model"',
        ),
        Route(
            "predict",
            [encode("POST", "/internal/predict", {}, {"tracks": t, "k": PREDICT_K}) for t in seeds],
            b'"source":"model"',
        ),
    ]
    return public, internal


def over_http(
    servers: list[Server],
    routes: tuple[list[Route], list[Route]],
    meter: CpuMeter,
    requests: int,
    seconds: float,
) -> dict[str, Any]:
    """Every public route through the API (the last server); in services mode, also the ML
    service's internal routes at concurrency 1 (the first server), without the API."""
    import uvloop

    api, public, internal = servers[-1], *routes
    out: dict[str, Any] = {}

    def closed(server: Server, route: Route) -> dict[str, Any]:
        with meter.phase() as cpu:
            c1 = runner.run(closed_loop(server.port, route, requests, np.random.default_rng(0)))
        c1["cpu"] = cpu
        log(f"  {server.name} {route.name} c=1: p50 {c1['p50_ms']} ms, p99 {c1['p99_ms']} ms")
        return c1

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        if len(servers) > 1:
            out["ml_service_direct"] = {route.name: closed(servers[0], route) for route in internal}
        for route in public:
            rates = BASELINE_RATES if route.name == "healthz" else RATES
            out[route.name] = {
                "concurrency_1": closed(api, route),
                **sweep(runner.run, api.port, route, rates, seconds, meter, TARGET_P99_MS),
            }
    return out
