"""The body-read check: requests whose body is shorter than their Content-Length, sent on raw
sockets held open. When (if) the server answers or closes each, and whether the load meanwhile
is served as before."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.chaos.load import Call
from benchmarks.chaos.plan import GOALS, Plan, log
from benchmarks.chaos.report import latency_ms, request_figures
from benchmarks.chaos.scenarios import Runner
from benchmarks.chaos.stack import Stack
from benchmarks.common import load_average

BODY_CONTENT_LENGTH, BODY_SENT = 1000, 100


@dataclass
class SlowBody:
    """One short-bodied request: when the server first answered and when it closed (seconds
    after the request was sent; None: not within the check)."""

    sock: socket.socket
    answered_after_s: float | None = None
    status_line: str | None = None
    closed_after_s: float | None = None
    received: bytes = b""

    @property
    def ended_after_s(self) -> float | None:
        times = [t for t in (self.answered_after_s, self.closed_after_s) if t is not None]
        return min(times) if times else None

    def poll(self, started: float) -> None:
        try:
            chunk = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        now = round(time.time() - started, 2)
        if not chunk:
            self.closed_after_s = now
            return
        if self.answered_after_s is None:
            self.answered_after_s = now
        self.received += chunk
        self.status_line = self.received.split(b"\r\n", 1)[0].decode("latin-1")


def body_read_check(stack: Stack, plan: Plan) -> dict[str, Any]:
    """`plan.body_connections` POST /v1/feedback requests declaring Content-Length 1000 and
    sending 100 bytes, held open up to body_check_s: when each is answered or closed."""
    head = (
        "POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {stack.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY_CONTENT_LENGTH}\r\n\r\n"
    ).encode()
    body = (b'{"events": [' + b" " * BODY_SENT)[:BODY_SENT]
    slow: list[SlowBody] = []
    start = time.time()
    try:
        for _ in range(plan.body_connections):
            sock = socket.create_connection(("127.0.0.1", stack.api_port), timeout=5)
            slow.append(SlowBody(sock))
            sock.sendall(head + body)
            sock.setblocking(False)
        deadline = start + plan.body_check_s
        while time.time() < deadline and any(s.closed_after_s is None for s in slow):
            for s in slow:
                if s.closed_after_s is None:
                    s.poll(start)
            time.sleep(0.05)
    finally:
        for s in slow:
            s.sock.close()
    ended = [t for t in (s.ended_after_s for s in slow) if t is not None]
    goal = GOALS["body_read_answered_within_s"]
    return {
        "what": (
            f"{plan.body_connections} raw connections, each POST /v1/feedback with "
            f"Content-Length {BODY_CONTENT_LENGTH} and {BODY_SENT} bytes of body, then nothing, "
            f"held open up to {plan.body_check_s:g} s"
        ),
        "start": start,
        "end": time.time(),
        "connections": len(slow),
        "answered": sum(s.answered_after_s is not None for s in slow),
        "closed_by_server": sum(s.closed_after_s is not None for s in slow),
        "open_at_the_limit": len(slow) - len(ended),
        "status_lines": sorted({s.status_line for s in slow if s.status_line is not None}),
        "first_answer_or_close_s": min(ended) if ended else None,
        "last_answer_or_close_s": max(ended) if ended and len(ended) == len(slow) else None,
        "outcomes": [
            {
                "answered_after_s": s.answered_after_s,
                "status_line": s.status_line,
                "closed_after_s": s.closed_after_s,
            }
            for s in slow
        ],
        "goal_s": goal,
        "goal_met": bool(slow) and len(ended) == len(slow) and max(ended) <= goal,
    }


def run_body_check(runner: Runner, stack: Stack, plan: Plan) -> dict[str, Any]:
    """The check after `plan.pre_s` of steady load, with the machine's load average at its start
    and end, then `plan.settle_s` more."""
    runner.hold(plan.pre_s)
    load_start = load_average()
    log("body-read timeout check")
    body = body_read_check(stack, plan)
    body["load_average"] = {"at_start": load_start, "at_end": load_average()}
    runner.hold(plan.settle_s)
    return body


def report_body(
    body: dict[str, Any], calls: Sequence[Call], baseline: Sequence[Call]
) -> dict[str, Any]:
    """The check's outcome, and the load's requests while it ran against the baseline's."""
    during = [c for c in calls if body["start"] <= c.due < body["end"]]
    others = request_figures(during, body["start"], body["end"])
    base_p99 = latency_ms([c.latency for c in baseline if c.ok])["p99_ms"] or 0.0
    p99 = others["latency_whole_window"]["p99_ms"]
    unaffected = (
        others["http_5xx"] == 0
        and others["connection_errors"] + others["timeouts"] == 0
        and p99 is not None
        and p99 <= 2 * base_p99 + 20
    )
    return {
        **{k: v for k, v in body.items() if k not in ("start", "end")},
        "other_requests_meanwhile": {
            "http_5xx": others["http_5xx"],
            "connection_errors": others["connection_errors"],
            "timeouts": others["timeouts"],
            "latency": others["latency_whole_window"],
            "baseline_p99_ms": base_p99,
        },
        "other_requests_unaffected": unaffected,
    }
