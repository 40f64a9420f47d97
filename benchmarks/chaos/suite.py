"""The whole run: the stack up, steady load, each fault in turn, the body-read check, the
drain, then the report (see the package's docstring)."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.chaos.body import report_body, run_body_check
from benchmarks.chaos.ledger import (
    Ledger,
    Monitor,
    base_plays,
    drain,
    online_plays,
    stored_events,
)
from benchmarks.chaos.load import Load
from benchmarks.chaos.plan import FAULTS, Plan, log
from benchmarks.chaos.report import attribute, document, report_phase
from benchmarks.chaos.scenarios import Phase, Runner
from benchmarks.chaos.stack import services_stack
from benchmarks.common import load_average


def fault_names(kinds: Sequence[str]) -> list[tuple[str, str]]:
    """(name, kind) per fault: a kind that comes more than once is numbered (api_kill_1, ...)."""
    seen: dict[str, int] = {}
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
    numbered: dict[str, int] = {}
    names = []
    for kind in kinds:
        numbered[kind] = numbered.get(kind, 0) + 1
        names.append((f"{kind}_{numbered[kind]}" if seen[kind] > 1 else kind, kind))
    return names


def run(
    plan: Plan,
    faults: Sequence[str] = FAULTS,
    *,
    body_check: bool = True,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """The whole suite; returns the report (see the package's docstring)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("FEAST_USAGE", "False")
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}: one of {', '.join(sorted(set(FAULTS)))}")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="musicrec-chaos-") as tmp:
        logs = log_dir or Path(tmp) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with services_stack(Path(tmp), logs, plan.process_env()) as stack:
            base = base_plays(stack)
            monitor = Monitor(stack.engine)
            load = Load(stack.api_port, stack.key, plan)
            runner = Runner(stack, load, plan)
            monitor.start()
            t0 = time.time()
            load.start()
            try:
                baseline = Phase("baseline", "baseline", "steady load, no fault", t0, t0)
                baseline.load_start = load_average()
                runner.hold(plan.baseline_s)
                baseline.load_end = load_average()
                phases = [baseline]
                for name, kind in fault_names(faults):
                    phases.append(runner.inject(name, kind))
                body = run_body_check(runner, stack, plan) if body_check else None
            finally:
                load.stop()
            end = time.time()
            log("load stopped; draining")
            calls, _ = load.snapshot()
            acked = {i for c in calls if c.kind == "feedback" and c.ok for i in c.event_ids}
            drained, pending = drain(stack, acked, plan.drain_timeout_s)
            monitor.stop()
            time.sleep(1.0)  # the last batch's pushes follow its commit
            stored, dead, rows = stored_events(stack.engine, t0 - 1)
            ledger = Ledger(stored, dead, rows, pending, sorted(stored.values()))
            try:
                online: dict[str, Any] = online_plays(stack, base, t0 - 1)
            except Exception as exc:
                online = {"error": f"{type(exc).__name__}: {exc}"}
            for i, phase in enumerate(phases):
                phase.window_end = phases[i + 1].start if i + 1 < len(phases) else end
            if body is not None:
                phases[-1].window_end = body["start"]
            attribute(calls, [p.start for p in phases] + ([body["start"]] if body else []))
            reports = [report_phase(p, calls, ledger, monitor, t0) for p in phases]
            body_report = None
            if body is not None:
                base_calls = [c for c in calls if t0 <= c.key < phases[0].window_end]
                body_report = report_body(body, calls, base_calls)
            processes = {
                p.name: {
                    "starts": p.starts,
                    "killed_by_the_harness": p.kills,
                    "unexpected_exits": [
                        {**e, "at": round(e["at"] - t0, 2)} for e in p.unexpected_exits
                    ],
                }
                for p in stack.procs
            }
    return document(
        plan,
        started=started,
        calls=calls,
        ledger=ledger,
        reports=reports,
        body=body_report,
        drained=drained,
        online=online,
        processes=processes,
        log_dir=str(log_dir) if log_dir else None,
    )
