"""Retrying a worker's failing dependency: exponential backoff with jitter, one log line per
change of state (not one per attempt), and the state as a Prometheus gauge."""

from __future__ import annotations

import logging
import random
import time

from prometheus_client import Counter, Gauge

from musicrec.errors import one_line

log = logging.getLogger(__name__)

UP = Gauge(
    "musicrec_worker_dependency_up",
    "1 while the worker's last call to a dependency succeeded, 0 while it is retrying",
    ["worker", "dependency"],
)
FAILURES = Counter(
    "musicrec_worker_dependency_failures_total",
    "Failed calls to a dependency (each retried after a backoff)",
    ["worker", "dependency"],
)


class Retrying:
    """The state of one dependency of one worker. `failed` returns how long to wait before the
    next attempt: `initial` seconds doubling up to `maximum`, with equal jitter (half fixed,
    half random, so workers that failed together do not retry together). The cap is small on
    purpose: a worker must be back within seconds of its dependency."""

    def __init__(
        self, worker: str, dependency: str, *, initial: float = 0.2, maximum: float = 2.0
    ) -> None:
        self.worker, self.dependency = worker, dependency
        self.initial, self.maximum = initial, maximum
        self.failures = 0  # in a row
        self._down_since: float | None = None
        UP.labels(worker, dependency).set(1)

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def failed(self, exc: BaseException) -> float:
        FAILURES.labels(self.worker, self.dependency).inc()
        if self.failures == 0:
            self._down_since = time.monotonic()
            UP.labels(self.worker, self.dependency).set(0)
            log.warning(
                "%s: %s unavailable, retrying with backoff: %s",
                self.worker,
                self.dependency,
                one_line(exc),
            )
        self.failures += 1
        wait = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        return wait / 2 + random.uniform(0, wait / 2)

    def succeeded(self) -> None:
        if self.failures == 0:
            return
        down = time.monotonic() - (self._down_since or time.monotonic())
        log.warning(
            "%s: %s is back after %.1f s (%d failed attempts)",
            self.worker,
            self.dependency,
            down,
            self.failures,
        )
        self.failures = 0
        UP.labels(self.worker, self.dependency).set(1)
