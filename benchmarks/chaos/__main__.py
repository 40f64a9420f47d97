"""`python -m benchmarks.chaos`: the command line (see the package's docstring)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks import chaos
from benchmarks.chaos.plan import FAULTS, QUICK, Plan
from benchmarks.chaos.suite import run
from benchmarks.chaos.table import markdown
from musicrec.config import REPO_ROOT

RESULT = REPO_ROOT / "results" / "benchmarks" / "chaos.json"


def main() -> None:
    from benchmarks.common import emit

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos", description=(chaos.__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 s outages, shorter waits")
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"comma-separated, in order (default: {','.join(FAULTS)})",
    )
    parser.add_argument("--no-body-check", action="store_true")
    parser.add_argument("--outage-seconds", type=float, default=None)
    parser.add_argument("--recs-per-second", type=float, default=None)
    parser.add_argument("--events-per-second", type=float, default=None)
    parser.add_argument("--batch", type=int, default=None, help="events per feedback request")
    parser.add_argument(
        "--body-read-timeout-seconds",
        type=float,
        default=None,
        help="the API's BODY_READ_TIMEOUT_SECONDS (default: its own, 10 s)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=REPO_ROOT / "var" / "chaos-logs",
        help="the processes' logs (default var/chaos-logs, replaced each run)",
    )
    parser.add_argument(
        "--markdown",
        nargs="?",
        type=Path,
        const=RESULT,
        default=None,
        metavar="JSON",
        help="print the Markdown table of a run's JSON (default: results/benchmarks/chaos.json) "
        "and run nothing",
    )
    args = parser.parse_args()
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())), end="")
        return
    plan = QUICK if args.quick else Plan()
    for name, value in (
        ("outage_s", args.outage_seconds),
        ("rec_per_s", args.recs_per_second),
        ("events_per_s", args.events_per_second),
        ("batch", args.batch),
        ("body_read_timeout_s", args.body_read_timeout_seconds),
    ):
        if value is not None:
            plan = replace(plan, **{name: value})
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if args.log_dir.exists():
        for old in args.log_dir.glob("*.log"):
            old.unlink()

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)  # the cleanup runs on the way out

    signal.signal(signal.SIGTERM, interrupted)
    result = run(plan, faults, body_check=not args.no_body_check, log_dir=args.log_dir)
    result["quick"] = args.quick
    emit(result)
    print(markdown(json.loads(RESULT.read_text())), file=sys.stderr)  # as written, with commit


if __name__ == "__main__":
    main()
