"""Serving latency and throughput on loopback: p50/p99 and the highest sustained request rate of
`GET /v1/users/{id}/recommendations` (k=10) and `POST /predict` (5 seeds by name, k=20), in
embedded and services mode, on a 50,000-track catalog, against the issue's targets (p99 <= 15 ms,
>= 1,000 req/s on 2 cores). Prints JSON (also kept as results/benchmarks/serving.json).

    python -m benchmarks.serving [--requests 2000] [--step-seconds 5] [--modes embedded,services]

Setup, cached under the temp dir (keyed by the code that shapes it; --fresh rebuilds): the
synthetic generator's catalog (50,000 tracks, 5,000 artists, 10 genres: the re-ranker has work)
with 2,000 listeners' plays over two weeks, migrated, written and materialized into SQLite and
Feast's SQLite online store; an untrained SASRec of serving size (d = 64, 2 blocks, last 50
items) saved with the catalog as vocabulary and exported as the int8 graph with in-graph top 200
(latency does not depend on the weights). Services mode loads the same batch into a Postgres
schema and a Redis project of its own, both removed at the end.

Servers are `musicrec serve` (and `musicrec serve-ml`) subprocesses, one worker each, rate limit
raised out of the way. The load generator is a minimal asyncio HTTP/1.1 keep-alive client in this
process (pre-encoded requests): it competes with the servers for the cores, so its CPU time is
reported beside theirs. Per mode and route:
- concurrency 1: p50/p99 of --requests requests after a warm-up;
- an open-loop sweep: requests due at a fixed rate for --step-seconds per rate over up to
  CONNECTIONS keep-alive connections. A request due while every connection is busy counts from
  when it was due (a server that falls behind cannot hide its backlog: no coordinated
  omission); one sent on time counts from its send (not the client timer's lateness, reported
  apart). The sweep stops at the first rate not sustained, then refines below it (REFINEMENTS
  steps). Sustained: achieved >= 95% of offered, no error, no fallback answer (popularity when
  the ML service or the feature store is too slow), every request answered within
  DRAIN_SECONDS after the step, p99 <= 1 s.
GET /healthz through the same server is the baseline (the framework's own floor and ceiling);
the ML service called in-process (no HTTP) with cProfile shows where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import http.client
import json
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from statistics import mean
from typing import Any, cast
from urllib.parse import quote

import numpy as np
import redis
import torch

from apps.api.security import ApiKeys
from apps.api.tenancy import client_user_id
from apps.ml.schemas import PredictQuery, SeedTrack, UserQuery
from apps.ml.service import MLService
from benchmarks.common import emit, scratch_schema
from feature_store.store import materialize, open_store
from ml_pipeline.data.synthetic import SyntheticConfig, generate
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from ml_pipeline.training.train_transformer import export_both
from musicrec.config import REPO_ROOT, Settings
from musicrec.db.bulk import write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from musicrec.events import EventType
from musicrec.records import CatalogBatch

DATA = SyntheticConfig(
    n_users=2_000, n_artists=5_000, n_tracks=50_000, sessions_per_user=2.0, days=14, seed=7
)  # about 33 events (plays, skips, clicks, likes) per listener
AS_OF = datetime(2026, 11, 20, 12, tzinfo=UTC)
MODEL = SASRecConfig(
    n_items=DATA.n_tracks, embedding_dim=64, max_seq_len=50, num_layers=2, num_heads=1
)
USER_K, PREDICT_K, SEEDS = 10, 20, 5
RATES = (250, 500, 750, 1000, 1500, 2000)
BASELINE_RATES = (*RATES, 3000, 4000)
TARGET_P99_MS, TARGET_RPS = 15.0, 1_000
SUSTAINED_SHARE, SUSTAINED_P99_MS = 0.95, 1_000.0
CONNECTIONS, DRAIN_SECONDS, WARMUP, REFINEMENTS, STEP_REQUESTS = 64, 2.0, 200, 2, 250
PROFILED_CALLS, PROFILE_ROWS = 500, 15
CACHE_ROOT = Path(tempfile.gettempdir()) / "musicrec-bench-serving"
SHAPING_CODE = (
    *(
        "ml_pipeline/data/synthetic.py",
        "ml_pipeline/models/sasrec.py",
        "ml_pipeline/export/onnx.py",
    ),
    *("feature_store/definitions.py", "feature_store/compute.py", "db/migrations"),
)
# The code the servers run: edited during a run, the modes measure different code.
SERVING_CODE = ("apps", "musicrec", "feature_store", "ml_pipeline/export/onnx.py")
# Profile stages: (file suffix, function) -> label.
STAGES = {
    ("feature_store/online.py", "user_features"): "feature_read_user",
    ("feature_store/online.py", "user_track_features"): "feature_read_candidates",
    ("inference/model.py", "candidates"): "model_onnx_top200",
    ("apps/ml/catalog.py", "match"): "seed_matching",
    ("apps/ml/service.py", "_ranked"): "rerank_and_build_response",
}


class SetupFailed(Exception):
    pass


# --- setup ---------------------------------------------------------------------------------------


@dataclass
class Workload:
    listeners: list[str]  # with plays, so the model path is taken
    seeds: list[tuple[str, str]]  # (title, artist) of catalog tracks


LISTENER_APP = "demo"  # ml_pipeline/data/synthetic.py stores its listeners as demo:user:<n>


@cache
def _batch() -> CatalogBatch:
    batch = generate(DATA, AS_OF)
    batch.playlists = []  # serving reads events and features, never playlists
    return batch


def _workload(batch: CatalogBatch) -> Workload:
    played = {e.user_external_id for e in batch.events if e.event_type == EventType.PLAY}
    seeds = [(t.name, t.artist_name) for t in batch.tracks.values()]
    return Workload(sorted(played), seeds)


def _fingerprint(names: Sequence[str], salt: str = "") -> str:
    digest = hashlib.sha256(salt.encode())
    for name in names:
        path = REPO_ROOT / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _cache_key() -> str:
    return _fingerprint(SHAPING_CODE, repr((DATA, AS_OF, MODEL)))


def _settings(var_dir: Path, model: Path, **extra: Any) -> Settings:
    return Settings(
        var_dir=var_dir,
        sequential_model_path=model,
        model_poll_seconds=0,
        rate_limit_per_second=1e9,
        rate_limit_burst=10**9,
        **extra,
    )


def _load(settings: Settings, batch: CatalogBatch) -> None:
    engine = make_engine(settings=settings)
    try:
        with redirect_stdout(sys.stderr):  # Feast prints progress; stdout is for the result
            upgrade(engine)
            write_batch(engine, batch)
            materialize(settings, engine, AS_OF)
    finally:
        engine.dispose()


def _embedded_cache(fresh: bool) -> tuple[Path, Workload]:
    """The model and the embedded-mode state, built once (a marker file says it is complete)."""
    folder = CACHE_ROOT / _cache_key()
    done = folder / "complete.json"
    if fresh or not done.is_file():
        shutil.rmtree(CACHE_ROOT, ignore_errors=True)  # older keys too: 400 MB each
        _log(f"building the setup in {folder} (cached for the next runs)")
        batch = _batch()
        model = folder / "model" / "sasrec.pt"
        model.parent.mkdir(parents=True)
        torch.manual_seed(0)
        sasrec = SASRec(MODEL).eval()
        sasrec.save(model, ["<pad>", *batch.tracks])
        export_both(sasrec, model)
        _load(_settings(folder / "var", model, feast_project="benchserving"), batch)
        workload = _workload(batch)
        done.write_text(json.dumps({"listeners": workload.listeners, "seeds": workload.seeds}))
    saved = json.loads(done.read_text())
    return folder, Workload(saved["listeners"], [(name, artist) for name, artist in saved["seeds"]])


@contextmanager
def _services_settings(model: Path, var_dir: Path) -> Iterator[Settings]:
    """Postgres schema and Redis project of their own, loaded with the batch; removed after."""
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise SetupFailed(f"Redis is required at 127.0.0.1:6379 ({exc})") from exc
    with scratch_schema() as engine:
        settings = _settings(
            var_dir,
            model,
            database_url=engine.url.render_as_string(hide_password=False),
            feast_redis_host="127.0.0.1",
            feast_project=f"bench{uuid.uuid4().hex[:10]}",
        )
        try:
            _load(settings, _batch())
            yield settings
        finally:
            try:
                open_store(settings).teardown()
            except Exception as exc:  # never hide the error that got us here
                _log(f"warning: Feast teardown of {settings.feast_project} failed: {exc}")


# --- servers -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(settings: Settings, ml_url: str | None = None) -> dict[str, str]:
    """The environment a `musicrec` subprocess reads its settings from (nothing inherited)."""
    fields = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in fields}
    values = settings.model_dump(exclude_none=True)
    for name in ("var_dir", "database_url", "feast_redis_host", "feast_project"):
        if name in values:
            env[name.upper()] = str(values[name])
    env |= {
        "SEQUENTIAL_MODEL_PATH": str(settings.sequential_model_path),
        "MODEL_POLL_SECONDS": "0",
        "RATE_LIMIT_PER_SECOND": str(settings.rate_limit_per_second),
        "RATE_LIMIT_BURST": str(settings.rate_limit_burst),
        "FEAST_USAGE": "False",
    }
    if ml_url:
        env["ML_SERVICE_URL"] = ml_url
    return env


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


class Server:
    """`musicrec <command>` on a free port; its log in `log_dir`."""

    def __init__(self, name: str, command: str, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.port = name, _free_port()
        self.log_path = log_dir / f"{name}.log"
        args = [sys.executable, "-m", "apps.cli", command, "--host", "127.0.0.1"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*args, "--port", str(self.port)], env=env, cwd=REPO_ROOT, stdout=log, stderr=log
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupFailed(f"{self.name} exited ({self.proc.returncode}): {self._last()}")
            try:
                status, body = _get(self.port, path)
                if status == 200:
                    return dict(json.loads(body))
            except OSError:
                pass
            time.sleep(0.25)
        raise SetupFailed(f"{self.name} not ready after {timeout:.0f} s: {self._last()}")

    def _last(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return f"{lines[-1] if lines else 'no output'} (log: {self.log_path})"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the load generator ----------------------------------------------------------------------


@dataclass
class Route:
    name: str
    requests: list[bytes]  # pre-encoded, picked at random
    marker: bytes  # in every answer the model made (or, for the baseline, every good one)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: status and raw response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._finish(ConnectionError("response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) >= total:
            raw = bytes(self.buffer[:total])
            del self.buffer[:total]
            self._finish((int(raw[9:12]), raw))

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ConnectionError("connection closed"))

    def _finish(self, result: tuple[int, bytes] | Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(result, Exception):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _connect(port: int) -> Connection:
    _, conn = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return conn


def _ms(ns: Sequence[int] | np.ndarray) -> dict[str, float]:
    if not len(ns):
        return {}
    values = np.asarray(ns, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


def _machine_busy_seconds() -> float:
    """CPU seconds all processes used since boot (/proc/stat: all but idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of this process (the client), of the servers and of everything else on the
    machine (other jobs on these shared cores) over a phase."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = servers

    @contextmanager
    def phase(self) -> Iterator[dict[str, Any]]:
        """Yields a dict that holds the phase's CPU use once the block is left."""
        cpu: dict[str, Any] = {}
        wall, client = time.perf_counter(), time.process_time()
        servers, machine = [s.cpu_seconds() for s in self.servers], _machine_busy_seconds()
        yield cpu
        wall, client = time.perf_counter() - wall, time.process_time() - client
        used = {s.name: s.cpu_seconds() - b for s, b in zip(self.servers, servers, strict=True)}
        others = _machine_busy_seconds() - machine - client - sum(used.values())
        cpu["client_s"] = round(client, 2)
        cpu["servers_s"] = {name: round(v, 2) for name, v in used.items()}
        cpu["cores_busy"] = round((client + sum(used.values())) / wall, 2)
        cpu["other_processes_cores"] = round(max(others, 0.0) / wall, 2)


async def _closed_loop(port: int, route: Route, n: int, rng: np.random.Generator) -> dict[str, Any]:
    conn = await _connect(port)
    latencies, errors, marked = [], 0, 0
    try:
        for j, i in enumerate(rng.integers(0, len(route.requests), WARMUP + n).tolist()):
            started = time.perf_counter_ns()
            status, raw = await conn.request(route.requests[i])
            if j >= WARMUP:
                latencies.append(time.perf_counter_ns() - started)
                errors += status != 200
                marked += route.marker in raw
    finally:
        conn.close()
    fallbacks = n - errors - marked  # answered, but not by the model
    return {"requests": n, **_ms(latencies), "errors": errors, "fallback_answers": fallbacks}


async def _open_loop(
    port: int, route: Route, rate: float, seconds: float, rng: np.random.Generator
) -> dict[str, Any]:
    seconds = max(seconds, STEP_REQUESTS / rate)  # enough requests for a p99 at low rates
    total = int(rate * seconds)
    interval = 1e9 / rate
    order = rng.integers(0, len(route.requests), total).tolist()
    latency = np.zeros(total, dtype=np.int64)
    answered = np.zeros(total, dtype=bool)
    queued = np.zeros(total, dtype=bool)  # due while every connection was busy
    lag = np.zeros(total, dtype=np.int64)  # due -> sent, of the requests not queued
    statuses: dict[int, int] = {}
    marked, next_index = [0], [0]
    conns = [await _connect(port) for _ in range(CONNECTIONS)]
    start = time.perf_counter_ns() + 20_000_000

    async def worker(conn: Connection) -> None:
        while next_index[0] < total:
            i = next_index[0]
            next_index[0] += 1
            due = start + int(i * interval)
            queued[i] = time.perf_counter_ns() > due
            while (wait := due - time.perf_counter_ns()) > 0:  # uvloop's timers may wake early
                await asyncio.sleep(wait / 1e9)
            # A queued request counts from when it was due (the server's backlog is its
            # latency); one on time from when it was sent (not the timer's lateness).
            origin = due if queued[i] else time.perf_counter_ns()
            lag[i] = 0 if queued[i] else origin - due
            try:
                status, raw = await conn.request(route.requests[order[i]])
            except ConnectionError:
                statuses[-1] = statuses.get(-1, 0) + 1
                return
            latency[i] = time.perf_counter_ns() - origin
            answered[i] = True
            statuses[status] = statuses.get(status, 0) + 1
            marked[0] += route.marker in raw

    tasks = [asyncio.ensure_future(worker(c)) for c in conns]
    _, pending = await asyncio.wait(tasks, timeout=seconds + DRAIN_SECONDS + 0.02)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for conn in conns:
        conn.close()
    done = start + np.arange(total) * interval + lag + latency
    last = float(done[answered].max(initial=start))
    achieved = answered.sum() / max((last - start) / 1e9, seconds)
    errors = sum(n for status, n in statuses.items() if status != 200)
    fallbacks = statuses.get(200, 0) - marked[0]  # answered, but not by the model
    stats = _ms(latency[answered])
    sustained = bool(
        achieved >= SUSTAINED_SHARE * rate
        and errors == 0
        and fallbacks == 0
        and answered.all()
        and stats.get("p99_ms", 1e9) <= SUSTAINED_P99_MS
    )
    return {
        "offered_rps": rate,
        "achieved_rps": round(float(achieved), 1),
        "requests": total,
        "unfinished": int(total - answered.sum()),
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        **stats,
        "queued_share": round(float(queued[: next_index[0]].mean()), 4),
        "timer_lag_p99_ms": round(float(np.percentile(lag[: next_index[0]], 99)) / 1e6, 3),
        "fallback_answers": fallbacks,
        "sustained": sustained,
    }


Runner = Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]


def _sweep(
    run: Runner, port: int, route: Route, rates: Sequence[int], seconds: float, meter: CpuMeter
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    rng = np.random.default_rng(1)

    def step(rate: int) -> bool:
        with meter.phase() as cpu:
            out = run(_open_loop(port, route, rate, seconds, rng))
        out["cpu"] = cpu
        steps.append(out)
        _log(
            f"  {route.name} {rate:>5} req/s: achieved {out['achieved_rps']:.0f}, "
            f"p50 {out.get('p50_ms')} ms, p99 {out.get('p99_ms')} ms, errors {out['errors']}, "
            f"unfinished {out['unfinished']}, cores {out['cpu']['cores_busy']} "
            f"(+{out['cpu']['other_processes_cores']} other processes)"
        )
        return bool(out["sustained"])

    below, above, overloaded = 0, 0, 0.0
    for rate in rates:
        if not step(rate):
            above, overloaded = rate, steps[-1]["achieved_rps"]
            break
        below = rate
    for _ in range(REFINEMENTS if above else 0):
        # Between the last rate sustained and the first not, at most 90% of what the server
        # delivered when overloaded (its capacity, roughly), in steps of 10 req/s.
        rate = int(min((below + above) / 2, 0.9 * overloaded) // 10 * 10)
        if rate <= below:
            break
        if step(rate):
            below = rate
        else:
            above, overloaded = rate, steps[-1]["achieved_rps"]
    sustained = [s for s in steps if s["sustained"]]
    best = max(sustained, key=lambda s: s["offered_rps"], default=None)
    within = [s for s in sustained if s["p99_ms"] <= TARGET_P99_MS]
    return {
        "highest_sustained_rps": best["offered_rps"] if best else 0,
        "p99_ms_at_highest": best["p99_ms"] if best else None,
        "p99_target_held_at_highest": bool(best and best["p99_ms"] <= TARGET_P99_MS),
        "highest_rps_with_p99_within_target": max((s["offered_rps"] for s in within), default=0),
        "first_rate_not_sustained": above or None,
        "achieved_rps_when_overloaded": max(
            (s["achieved_rps"] for s in steps if not s["sustained"]), default=None
        ),
        "steps": sorted(steps, key=lambda s: s["offered_rps"]),
    }


def _encode(method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    data = b"" if body is None else json.dumps(body).encode()
    if data:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _client_id(stored: str) -> str:
    """A listener's id as the benchmark key's app sends it (the internal routes take it stored)."""
    client = client_user_id(LISTENER_APP, stored)
    assert client is not None, stored
    return client


def _routes(
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
                _encode(
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
            [_encode("POST", f"/predict?k={PREDICT_K}", {}, {"tracks": t}) for t in seeds],
            b"x-recommendation-source: model",
        ),
        Route("healthz", [_encode("GET", "/healthz", {})], b'"status":"ok"'),
    ]
    internal = [
        Route(
            "user",
            [
                _encode("POST", "/internal/recommendations", {}, {"user_id": u, "k": USER_K})
                for u in users
            ],
            b'"source":"model"',
        ),
        Route(
            "predict",
            [
                _encode("POST", "/internal/predict", {}, {"tracks": t, "k": PREDICT_K})
                for t in seeds
            ],
            b'"source":"model"',
        ),
    ]
    return public, internal


def _http(
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
            c1 = runner.run(_closed_loop(server.port, route, requests, np.random.default_rng(0)))
        c1["cpu"] = cpu
        _log(f"  {server.name} {route.name} c=1: p50 {c1['p50_ms']} ms, p99 {c1['p99_ms']} ms")
        return c1

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        if len(servers) > 1:
            out["ml_service_direct"] = {route.name: closed(servers[0], route) for route in internal}
        for route in public:
            rates = BASELINE_RATES if route.name == "healthz" else RATES
            out[route.name] = {
                "concurrency_1": closed(api, route),
                **_sweep(runner.run, api.port, route, rates, seconds, meter),
            }
    return out


# --- in process ------------------------------------------------------------------------------


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


def _in_process(settings: Settings, workload: Workload, n: int) -> dict[str, Any]:
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
                **_ms(latencies),
                "model_answers": from_model,
                "profile": _profile(call, queries[name][:PROFILED_CALLS]),
            }
            _log(f"  in-process {name}: p50 {out[name]['p50_ms']} ms, p99 {out[name]['p99_ms']} ms")
        return out
    finally:
        service.close()
        engine.dispose()


# --- one mode ----------------------------------------------------------------------------------


def _mode(
    mode: str, settings: Settings, workload: Workload, run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    _log(f"{mode}: in-process")
    result: dict[str, Any] = {"in_process": _in_process(settings, workload, args.requests)}
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
            ml = Server("ml_service", "serve-ml", _server_env(settings), run_dir)
            servers.append(ml)
            ml.wait_ready("/internal/ready")
            ml_url = ml.url
        api = Server(f"api_{mode}", "serve", _server_env(settings, ml_url), run_dir)
        servers.append(api)
        ready = api.wait_ready("/readyz")
        if ready.get("status") != "ok":
            raise SetupFailed(f"{mode} API not ready: {ready}")
        result["readyz"] = ready
        _log(f"{mode}: HTTP on port {api.port}")
        routes = _routes(api_key, workload, np.random.default_rng(3))
        meter = CpuMeter(servers)
        result["http"] = _http(servers, routes, meter, args.requests, args.step_seconds)
        result["server_cpu_s_total"] = {s.name: round(s.cpu_seconds(), 1) for s in servers}
    finally:
        for server in reversed(servers):
            server.stop()
    return result


def _summary(modes: dict[str, Any]) -> dict[str, Any]:
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


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000, help="per concurrency-1 run")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="per offered rate")
    parser.add_argument("--modes", default="embedded,services")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached setup")
    args = parser.parse_args()
    began, load_before = time.perf_counter(), os.getloadavg()
    client_cpu, code = time.process_time(), _fingerprint(SERVING_CODE)
    torch.set_num_threads(1)
    modes: dict[str, Any] = {}
    try:
        cache_dir, workload = _embedded_cache(args.fresh)
        model = cache_dir / "model" / "sasrec.pt"
        run_dir = cache_dir / "run"  # server logs and services-mode state, kept until the next run
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        for mode in args.modes.split(","):
            if mode == "embedded":
                settings = _settings(cache_dir / "var", model, feast_project="benchserving")
                modes[mode] = _mode(mode, settings, workload, run_dir, args)
            elif mode == "services":
                _log("services: loading Postgres and Redis")
                with _services_settings(model, run_dir / "services-var") as settings:
                    modes[mode] = _mode(mode, settings, workload, run_dir, args)
            else:
                raise SetupFailed(f"unknown mode {mode!r} (embedded, services)")
    except SetupFailed as exc:
        sys.exit(f"benchmarks.serving: {exc}")
    if _fingerprint(SERVING_CODE) != code:
        _log("warning: the serving code changed during the run: the modes measured different code")
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
            **_summary(modes),
            "modes": modes,
            "serving_code_changed_during_run": _fingerprint(SERVING_CODE) != code,
            "client_cpu_s_total": round(time.process_time() - client_cpu, 1),
            "elapsed_seconds": round(time.perf_counter() - began, 1),
        }
    )


if __name__ == "__main__":
    main()
