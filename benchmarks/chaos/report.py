"""The report: per phase, lost and duplicated events, 5xx, connection errors, recovery and
latency computed from the load's Calls and the Ledger, against the goals; and the whole run's
JSON document."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from benchmarks.chaos.ledger import Ledger, Monitor
from benchmarks.chaos.load import Call
from benchmarks.chaos.plan import CLIENT_TIMEOUT_S, GOALS, HEALTHY_LATENCY_S, Plan
from benchmarks.chaos.scenarios import Phase

NOTES = [
    "One process of each (one API, no load balancer): an API kill is an outage until the new "
    "process has imported torch and Feast and loaded the model; with two replicas behind a load "
    "balancer the requests would go to the other one.",
    "Kafka is librdkafka's mock broker (no real broker here): its outage is "
    "rd_kafka_mock_broker_set_down (clients cut, connections refused, data kept). Its group "
    "coordinator behaves like Kafka's as far as measured, not necessarily in timing.",
    "Postgres and Redis are shared servers: they are never stopped; their faults are the proxy "
    "between them and the processes (refused: listener closed and open connections cut; frozen: "
    "connections held open, nothing forwarded, then resumed). The harness reads the database "
    "directly.",
    "A restarted consumer is back once its process has started (restarted_process_first_poll_s) "
    "and its group has rebalanced, which waits for the killed member's session to expire "
    "(kafka-python's default: 10 s).",
]


def latency_ms(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "n": 0}
    a = np.asarray(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
        "max_ms": round(float(a.max()), 1),
        "n": len(values),
    }


def _recovery(calls: Sequence[Call], fault_start: float, fault_end: float) -> float | None:
    """Seconds from the fault's end to the first request of the run of healthy ones that lasts
    to the window's end (0: none was unhealthy after the fault began; None: never)."""
    after = sorted((c for c in calls if c.key >= fault_start), key=lambda c: c.due)
    bad = [i for i, c in enumerate(after) if not c.healthy]
    if not bad:
        return 0.0
    if bad[-1] == len(after) - 1:
        return None
    return round(max(after[bad[-1] + 1].due - fault_end, 0.0), 2)


def request_figures(calls: Sequence[Call], start: float, disturbed_end: float) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for c in calls:
        if c.error:
            errors[c.error] = errors.get(c.error, 0) + 1
    statuses: dict[str, int] = {}
    for c in calls:
        if c.status is not None:
            statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
    answered = [c for c in calls if c.status is not None]
    return {
        "sent": len(calls),
        "ok": sum(c.ok for c in calls),
        "http_5xx": sum(c.status is not None and c.status >= 500 for c in calls),
        "http_4xx": sum(c.status is not None and 400 <= c.status < 500 for c in calls),
        "statuses": statuses,
        "connection_errors": sum(errors.get(k, 0) for k in ("refused", "reset")),
        "timeouts": errors.get("timeout", 0),
        "errors": errors,
        "fallback_answers": sum(c.fallback for c in calls),
        "latency_during_fault": latency_ms(
            [c.latency for c in answered if start <= c.key <= disturbed_end]
        ),
        "latency_whole_window": latency_ms([c.latency for c in answered]),
    }


def event_figures(calls: Sequence[Call], phase: Phase | None, ledger: Ledger) -> dict[str, Any]:
    stored, dead = ledger.stored, ledger.dead
    feedback = [c for c in calls if c.kind == "feedback"]
    acked = {i: c for c in feedback if c.ok for i in c.event_ids}
    unacked = {i for c in feedback if not c.ok for i in c.event_ids}
    missing = [i for i in acked if i not in stored and i not in dead]
    lost = [i for i in missing if i not in ledger.pending]
    duplicated = [i for i in (*acked, *unacked) if ledger.rows.get(i, 0) > 1]
    delays = [max(stored[i] - c.done, 0.0) for i, c in acked.items() if i in stored]
    out: dict[str, Any] = {
        "acknowledged": len(acked),
        "stored": sum(i in stored for i in acked),
        "dead_lettered": sum(i in dead for i in acked),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "still_pending_at_the_end": len(missing) - len(lost),
        "lost_examples": lost[:3],
        "not_acknowledged": len(unacked),
        "not_acknowledged_but_stored": sum(i in stored or i in dead for i in unacked),
        "ack_to_stored": latency_ms(delays),
    }
    if phase is not None:
        during = [
            stored.get(i, dead.get(i)) for i, c in acked.items() if phase.start <= c.due < phase.end
        ]
        out["events_flow_again_s"] = ledger.flow_after(phase.end)
        out["fault_events_all_stored_after_s"] = (
            round(max(max(t for t in during if t is not None) - phase.end, 0.0), 2)
            if during and all(t is not None for t in during)
            else None
        )
    return out


def _peak_rate(times: Sequence[float], width: float = 10.0) -> float:
    """The most events stored in any `width` seconds, per second (`times` sorted)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - width:
            j += 1
        best = max(best, i - j + 1)
    return round(best / width, 1)


def attribute(calls: Sequence[Call], starts: Sequence[float]) -> None:
    """Set each call's key: its due time, or the latest of `starts` it was in flight at."""
    for c in calls:
        c.key = max([c.due, *(s for s in starts if c.due < s <= c.done)])


def report_phase(
    phase: Phase,
    calls: Sequence[Call],
    ledger: Ledger,
    monitor: Monitor,
    t0: float,
) -> dict[str, Any]:
    window = [c for c in calls if phase.start <= c.key < phase.window_end]
    rec = [c for c in window if c.kind == "rec"]
    fb = [c for c in window if c.kind == "feedback"]
    recovery = {
        "requests_recommendations_s": _recovery(rec, phase.start, phase.end),
        "requests_feedback_s": _recovery(fb, phase.start, phase.end),
    }
    events = event_figures(window, phase, ledger)
    recovery["events_flow_again_s"] = events.pop("events_flow_again_s")
    figures = [v for v in recovery.values()]
    worst = None if any(v is None for v in figures) else max(v for v in figures if v is not None)
    recovery["worst_s"] = worst
    disturbed_end = phase.end + (worst if worst is not None else phase.window_end - phase.end)
    requests = {
        "recommendations": request_figures(rec, phase.start, disturbed_end),
        "feedback": request_figures(fb, phase.start, disturbed_end),
    }
    http_5xx = sum(r["http_5xx"] for r in requests.values())
    out = {
        "name": phase.name,
        "what": phase.what,
        "fault_start_s": round(phase.start - t0, 2),
        "fault_duration_s": round(phase.end - phase.start, 2),
        "window_s": round(phase.window_end - phase.start, 2),
        "load_average": {"at_start": phase.load_start, "at_end": phase.load_end},
        "lost": events["lost"],
        "duplicated": events["duplicated"],
        "http_5xx": http_5xx,
        "connection_errors": sum(r["connection_errors"] for r in requests.values()),
        "client_timeouts": sum(r["timeouts"] for r in requests.values()),
        "recovery": recovery,
        "events": events,
        "requests": requests,
        "outbox_peak_rows": monitor.peak(phase.start, phase.window_end),
        "goals_met": {
            "lost": events["lost"] == GOALS["lost"],
            "duplicated": events["duplicated"] == GOALS["duplicated"],
            "http_5xx": http_5xx == GOALS["http_5xx"],
            "recovery_s": worst is not None and worst <= GOALS["recovery_s"],
        },
    }
    if phase.running_again_s is not None:
        out["restarted_process_first_poll_s"] = phase.running_again_s
    if phase.outbox_at_kills:
        out["outbox_rows_at_relay_kills"] = phase.outbox_at_kills
    if phase.notes:
        out["notes"] = phase.notes
    return out


DEFINITIONS = {
    "lost": "events acknowledged 202 whose event_id is in neither listening_events nor "
    "dead_events after the drain",
    "duplicated": "event_ids with more than one row across listening_events and "
    "dead_events (listening_events' primary key is the event_id)",
    "http_5xx": "answers with a 5xx status to the load's requests due in the window",
    "connection_errors": "requests refused or reset (timeouts are counted apart, "
    f"client timeout {CLIENT_TIMEOUT_S:g} s)",
    "recovery_s": "from the fault's end (a kill: the kill) to the first request of the "
    f"final run of healthy ones (2xx within {HEALTHY_LATENCY_S:g} s of its due time; "
    "fallback answers count), per route; events_flow_again_s: from the fault's end to "
    "the first event sent after it being stored; worst_s: the largest; null: not "
    "recovered in the window",
    "latency_during_fault": "requests due from the fault's start until its end plus the "
    "worst recovery (the whole window if it did not recover), from their due time",
    "window": "from a fault's start to the next one's (the baseline: the steady load "
    "before the first fault)",
    "load_average": "os.getloadavg() (1, 5, 15 min) at the fault's start and end",
}


def document(
    plan: Plan,
    *,
    started: float,
    calls: Sequence[Call],
    ledger: Ledger,
    reports: Sequence[dict[str, Any]],
    body: dict[str, Any] | None,
    drained: dict[str, Any],
    online: dict[str, Any],
    processes: dict[str, Any],
    log_dir: str | None,
) -> dict[str, Any]:
    """The run's JSON: the plan, goals and definitions, a summary line per phase, each phase's
    report, the body-read check, totals, the drain, the online store's counts, the processes'
    starts and exits."""
    all_events = event_figures(calls, None, ledger)
    summary = {
        r["name"]: {
            "lost": r["lost"],
            "duplicated": r["duplicated"],
            "http_5xx": r["http_5xx"],
            "connection_errors": r["connection_errors"],
            "client_timeouts": r["client_timeouts"],
            "recovery_s": r["recovery"]["worst_s"],
            "events_flow_again_s": r["recovery"]["events_flow_again_s"],
            "all_goals_met": all(r["goals_met"].values()),
        }
        for r in reports
    }
    return {
        "benchmark": "chaos",
        "mode": (
            "services: Postgres schema + Redis (each through a fault proxy), librdkafka mock "
            "broker, `musicrec serve` (ML embedded), `consume-feedback`, `relay-outbox` as "
            "subprocesses, each one process"
        ),
        "plan": asdict(plan),
        "goals": GOALS,
        "definitions": DEFINITIONS,
        "seconds": round(time.time() - started, 1),
        "summary": summary,
        "baseline": reports[0],
        "faults": list(reports[1:]),
        "body_read_timeout": body,
        "totals": {
            "requests": len(calls),
            "acknowledged_events": all_events["acknowledged"],
            "lost": all_events["lost"],
            "duplicated": all_events["duplicated"],
            "not_acknowledged_but_stored": all_events["not_acknowledged_but_stored"],
            "http_5xx": sum(c.status is not None and c.status >= 500 for c in calls),
            "events_stored_per_second_peak_10s": _peak_rate(ledger.times),
        },
        "drain": drained,
        "online_features": online,
        "processes": processes,
        "log_dir": log_dir,
        "notes": NOTES,
    }
