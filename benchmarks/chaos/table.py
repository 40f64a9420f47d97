"""The Markdown table of a run (docs/operations.md, "Measured"), written from its JSON so it is
regenerated, never typed: `python -m benchmarks.chaos --markdown [results/benchmarks/chaos.json]`.
"""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "fault",
    "5xx",
    "connection errors",
    "lost",
    "duplicated",
    "worst recovery",
    "feedback p99 during the fault",
    "load average (1 min, start → end)",
    "goals missed",
)


def _seconds(value: float | None) -> str:
    return "not recovered" if value is None else f"{value:g} s"


def _goal(name: str, value: float) -> str:
    return (
        f"recovery ≤ {value:g} s"
        if name == "recovery_s"
        else f"{value:g} {name.replace('http_', '')}"
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _p99(latency: dict[str, Any]) -> str:
    """The p99, with the count where so few requests make it (a kill: the API was down)."""
    few = f" (n={latency['n']})" if 0 < latency["n"] < 10 else ""
    return _ms(latency["p99_ms"]) + few


def _row(phase: dict[str, Any], goals: dict[str, float], baseline: bool) -> list[str]:
    errors = str(phase["connection_errors"])
    if phase["client_timeouts"]:
        errors += f" (+{phase['client_timeouts']} timeouts)"
    load = phase["load_average"]
    before, after = (load[k][0] if load[k] else None for k in ("at_start", "at_end"))
    missed = [_goal(name, goals[name]) for name, met in phase["goals_met"].items() if not met]
    return [
        f"`{phase['name']}`",
        str(phase["http_5xx"]),
        errors,
        str(phase["lost"]),
        str(phase["duplicated"]),
        "–" if baseline else _seconds(phase["recovery"]["worst_s"]),
        # The baseline has no fault: its whole window, the steady load to compare with.
        _p99(
            phase["requests"]["feedback"][
                "latency_whole_window" if baseline else "latency_during_fault"
            ]
        ),
        f"{before} → {after}",
        "–" if baseline else (", ".join(missed) or "none"),
    ]


def _body_line(body: dict[str, Any] | None, goal: float) -> str:
    if body is None:
        return "Body-read check: not run."
    statuses = ", ".join(f"`{s}`" for s in body["status_lines"]) or "no answer"
    first, last = body["first_answer_or_close_s"], body["last_answer_or_close_s"]
    if last is None:
        within = "not all within the check"
    else:
        within = f"{first:g} s" if first == last else f"{first:g}–{last:g} s"
    others = body["other_requests_meanwhile"]
    latency = others["latency"]
    return (
        f"Body-read check: {body['connections']} requests with a body shorter than their "
        f"Content-Length answered {statuses} after {within} (goal {goal:g} s: "
        f"{'met' if body['goal_met'] else 'missed'}); the load meanwhile: "
        f"{others['http_5xx']} 5xx, {others['connection_errors']} connection errors, p99 "
        f"{_ms(latency['p99_ms'])} (baseline {_ms(others['baseline_p99_ms'])})."
    )


def markdown(report: dict[str, Any]) -> str:
    """The table of a run's report (one row per phase, the baseline first), then the body-read
    check, the totals and the drain in a line each."""
    plan, totals, drained = report["plan"], report["totals"], report["drain"]
    lines = [
        f"Run of commit {report.get('commit', '?')} on {report.get('cpus', '?')} CPUs, "
        f"{report['seconds']:g} s; outages {plan['outage_s']:g} s, load "
        f"{plan['rec_per_s']:g} recommendation requests/s and {plan['events_per_s']:g} "
        f"feedback events/s (batches of {plan['batch']}).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    phases = [(report["baseline"], True)] + [(f, False) for f in report["faults"]]
    lines += [
        "| " + " | ".join(_row(p, report["goals"], baseline)) + " |" for p, baseline in phases
    ]
    lines += [
        "",
        _body_line(report["body_read_timeout"], report["goals"]["body_read_answered_within_s"]),
        "",
        f"Totals: {totals['requests']:,} requests, {totals['acknowledged_events']:,} events "
        f"acknowledged, {totals['lost']} lost, {totals['duplicated']} duplicated, "
        f"{totals['http_5xx']} 5xx. Drain after the load: "
        f"{'complete' if drained['complete'] else 'incomplete'} in {drained['seconds']:g} s.",
    ]
    return "\n".join(lines) + "\n"
