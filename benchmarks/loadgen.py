"""The shared HTTP load generator: a minimal asyncio HTTP/1.1 keep-alive client in the
benchmark's own process, with pre-encoded requests (it competes with the servers for the cores,
so a benchmark reports its CPU time beside theirs; see benchmarks.servers.CpuMeter).

- closed_loop: one connection, one request at a time (concurrency 1), after a warm-up;
- open_loop: requests due at a fixed rate over up to CONNECTIONS keep-alive connections. A
  request due while every connection is busy counts from when it was due (a server that falls
  behind cannot hide its backlog: no coordinated omission); one sent on time counts from its
  send (not the client timer's lateness, reported apart);
- sweep: open-loop steps at rising rates until the first not sustained, then REFINEMENTS steps
  below it. Sustained: achieved >= 95% of offered, no error, no fallback answer (an answer
  without the route's marker), every request answered within DRAIN_SECONDS after the step,
  p99 <= 1 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from benchmarks.common import log
from benchmarks.servers import CpuMeter

SUSTAINED_SHARE, SUSTAINED_P99_MS = 0.95, 1_000.0
CONNECTIONS, DRAIN_SECONDS, WARMUP, REFINEMENTS, STEP_REQUESTS = 64, 2.0, 200, 2, 250


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


async def connect(port: int) -> Connection:
    _, conn = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return conn


def latency_ms(ns: Sequence[int] | np.ndarray) -> dict[str, float]:
    """p50, p99, mean and max in ms of latencies in ns (interpolated percentiles)."""
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


async def closed_loop(port: int, route: Route, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """n requests one at a time on one connection, after WARMUP unrecorded ones."""
    conn = await connect(port)
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
    return {"requests": n, **latency_ms(latencies), "errors": errors, "fallback_answers": fallbacks}


async def open_loop(
    port: int, route: Route, rate: float, seconds: float, rng: np.random.Generator
) -> dict[str, Any]:
    """Requests due at `rate` per second for `seconds` (at least STEP_REQUESTS of them)."""
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
    conns = [await connect(port) for _ in range(CONNECTIONS)]
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
    stats = latency_ms(latency[answered])
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


def sweep(
    run: Runner,
    port: int,
    route: Route,
    rates: Sequence[int],
    seconds: float,
    meter: CpuMeter,
    target_p99_ms: float,
) -> dict[str, Any]:
    """Open-loop steps at `rates` (then refined below the first not sustained): each step's
    result, the highest rate sustained, and the highest sustained with p99 <= target_p99_ms."""
    steps: list[dict[str, Any]] = []
    rng = np.random.default_rng(1)

    def step(rate: int) -> bool:
        with meter.phase() as cpu:
            out = run(open_loop(port, route, rate, seconds, rng))
        out["cpu"] = cpu
        steps.append(out)
        log(
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
    within = [s for s in sustained if s["p99_ms"] <= target_p99_ms]
    return {
        "highest_sustained_rps": best["offered_rps"] if best else 0,
        "p99_ms_at_highest": best["p99_ms"] if best else None,
        "p99_target_held_at_highest": bool(best and best["p99_ms"] <= target_p99_ms),
        "highest_rps_with_p99_within_target": max((s["offered_rps"] for s in within), default=0),
        "first_rate_not_sustained": above or None,
        "achieved_rps_when_overloaded": max(
            (s["achieved_rps"] for s in steps if not s["sustained"]), default=None
        ),
        "steps": sorted(steps, key=lambda s: s["offered_rps"]),
    }


def encode(method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
    """A request as the bytes sent on the wire (a JSON body when one is given)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    data = b"" if body is None else json.dumps(body).encode()
    if data:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data
