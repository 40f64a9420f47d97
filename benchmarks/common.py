"""Shared helpers for benchmarks: throwaway Postgres schemas, progress on stderr and JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from statistics import mean
from typing import Any

from sqlalchemy import Engine, text

from musicrec.config import REPO_ROOT
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade

DEFAULT_PG_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@contextmanager
def scratch_schema(url: str = DEFAULT_PG_URL) -> Iterator[Engine]:
    """A migrated, empty Postgres schema of its own, dropped afterwards."""
    admin = make_engine(url)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def commit_id() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages, for the record beside a figure (other
    work on the machine moves latencies)."""
    return [round(x, 2) for x in os.getloadavg()]


def nearest_rank_ms(samples_ns: list[int]) -> dict[str, float]:
    """p50, p99 (nearest rank) and mean in ms of latencies in ns."""
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6, 3)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "mean_ms": round(mean(ordered) / 1e6, 3)}


def log(message: str) -> None:
    """Progress on stderr (stdout is for the result)."""
    print(message, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """One JSON document on stdout (the machine-readable result), also kept as
    results/benchmarks/<name>.json."""
    document = json.dumps({"commit": commit_id(), "cpus": os.cpu_count(), **result}, indent=2)
    print(document)
    out = REPO_ROOT / "results" / "benchmarks" / f"{result['benchmark']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document + "\n")
