"""What a chaos run does and against which goals: the faults in order, the goals, the load's
rates and every wait (Plan; QUICK for --quick), and the harness's log line."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

FAULTS = (
    "api_kill",
    "api_kill",
    "consumer_kill",
    "relay_kill",
    "redis_refuse",
    "redis_hang",
    "postgres_refuse",
    "postgres_hang",
    "kafka_outage",
)
GOALS = {
    "lost": 0,
    "duplicated": 0,
    "http_5xx": 0,
    "recovery_s": 2.0,  # requests succeed again, and events reach the database, within this
    "body_read_answered_within_s": 15.0,
}
# A request is healthy when answered 2xx within this (a fallback answer counts: it is the
# designed degradation). Recovery ends where the last unhealthy request of a kind is followed
# only by healthy ones.
HEALTHY_LATENCY_S = 1.0
CLIENT_TIMEOUT_S = 10.0
TRACKS, LISTENERS = 36, 40


@dataclass(frozen=True)
class Plan:
    outage_s: float = 20.0
    pre_s: float = 3.0  # steady load before each fault
    baseline_s: float = 10.0
    max_observe_s: float = 45.0  # after a fault's end, at most this long waiting for recovery
    # The same after a kill: a process restarting imports torch and Feast first (tens of
    # seconds on a busy 2-core machine) and the consumer then rejoins its group.
    restart_observe_s: float = 120.0
    settle_s: float = 2.0  # after recovery, before the next fault
    drain_timeout_s: float = 90.0
    body_check_s: float = 30.0  # how long the short-bodied requests are held open
    body_connections: int = 10
    # The API's BODY_READ_TIMEOUT_SECONDS (None: its default, 10 s); the test shortens it.
    body_read_timeout_s: float | None = None
    rec_per_s: float = 50.0
    # Below what the feedback consumer stores per second on these machines (about 7-10: each
    # event's online-feature push costs ~0.1 s, mostly Feast reading its SQL registry), so a
    # fault's backlog drains and delivery figures mean something; --events-per-second 50
    # measures an overloaded consumer instead.
    events_per_s: float = 4.0
    batch: int = 2

    def process_env(self) -> dict[str, str]:
        """Settings the plan gives the `musicrec` processes beyond the harness's own."""
        if self.body_read_timeout_s is None:
            return {}
        return {"BODY_READ_TIMEOUT_SECONDS": f"{self.body_read_timeout_s:g}"}


QUICK = Plan(
    outage_s=5.0,
    pre_s=2.0,
    baseline_s=4.0,
    max_observe_s=30.0,
    restart_observe_s=90.0,
    settle_s=1.0,
    drain_timeout_s=60.0,
    body_check_s=20.0,
    body_connections=5,
)


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
