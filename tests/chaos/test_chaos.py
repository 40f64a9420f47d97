"""The fault-injection suite (benchmarks/chaos/), CI-sized so the harness cannot rot: the
services-mode stack under load, Postgres frozen behind its proxy for a few seconds (events the
API acknowledged meanwhile wait in Kafka until the consumer can store them), then requests whose
body is shorter than their Content-Length. (`make bench-chaos` runs every fault.)

Sized for time: most of the minute is the three `musicrec` processes starting. A lighter load
than the benchmark's (the consumer keeps up, so the drain is short), a 2 s body-read timeout,
and no process kill: a killed consumer's partitions come back only after the mock broker's
group rebalance (~45 s), which `make bench-chaos` measures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.chaos import QUICK, markdown, run

PLAN = replace(
    QUICK,
    outage_s=3.0,
    pre_s=1.0,
    baseline_s=2.0,
    settle_s=0.5,
    rec_per_s=10.0,
    body_read_timeout_s=2.0,
    body_check_s=3.0,
    body_connections=2,
)


@pytest.mark.timeout(300)
def test_a_frozen_database_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = run(PLAN, ["postgres_hang"], log_dir=tmp_path / "logs")

    (fault,) = report["faults"]
    assert fault["name"] == "postgres_hang"
    assert fault["events"]["acknowledged"] > 0
    assert report["drain"]["complete"], report["drain"]
    assert (fault["lost"], fault["duplicated"]) == (0, 0)
    assert (report["totals"]["lost"], report["totals"]["duplicated"]) == (0, 0)
    assert report["totals"]["http_5xx"] == 0
    # Every event acknowledged while the database was frozen reached it afterwards.
    assert fault["events"]["fault_events_all_stored_after_s"] is not None, fault["events"]

    body = report["body_read_timeout"]
    assert body["connections"] == 2
    # The API gives up on a body that stops arriving (BODY_READ_TIMEOUT_SECONDS) with a 408.
    assert body["status_lines"] == ["HTTP/1.1 408 Request Timeout"], body
    assert body["goal_met"], body
    assert body["last_answer_or_close_s"] < 2.0 + 1.0, body  # the plan's timeout, not the default

    # The docs' table is written from the same report.
    table = markdown(report)
    assert "| `postgres_hang` | 0 | 0 | 0 | 0 |" in table, table
