"""The Kafka feedback consumer as a process: SIGKILLed at random points and restarted it loses and
duplicates nothing; SIGTERM stores and commits the batch in hand before it exits.
(benchmarks/consumer_crash.py runs the same trial at 100k events.)"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from benchmarks.consumer_crash import (
    catalog,
    crash_trial,
    make_events,
    produce,
    worker_command,
)
from musicrec.config import REPO_ROOT
from musicrec.db.bulk import write_batch
from musicrec.db.migrate import upgrade
from musicrec.db.models import ListeningEvent as EventRow


@pytest.fixture
def pg_engine(pg_schema_engine: Callable[[], Engine]) -> Engine:
    engine = pg_schema_engine()
    upgrade(engine)
    write_batch(engine, catalog())
    return engine


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(EventRow)) or 0)


def test_a_sigkilled_consumer_loses_and_duplicates_nothing(
    mock_kafka: str, pg_engine: Engine, tmp_path: Path
) -> None:
    events = make_events(3_000, seed=7)
    topic = f"feedback-crash-{uuid.uuid4().hex[:8]}"
    produce(mock_kafka, topic, events)

    # Each restart waits for the killed member's session to expire (~11 s on the mock cluster).
    result = crash_trial(
        pg_engine,
        mock_kafka,
        topic,
        {e.event_id for e in events},
        kills=3,
        batch_size=100,
        hold_ms=30,
        seed=7,
        timeout=240,
        log_path=tmp_path / "workers.log",
    )

    assert result.kills == 3
    assert (result.stored, result.lost, result.unexpected) == (3_000, 0, 0)
    assert result.final_exit_code == 0  # the last worker stopped cleanly on SIGTERM


def test_sigterm_stores_and_commits_the_batch_in_hand(
    mock_kafka: str, pg_engine: Engine, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    events = make_events(2_000, seed=8)
    topic, group = f"feedback-term-{uuid.uuid4().hex[:8]}", f"sink-{uuid.uuid4().hex[:8]}"
    produce(mock_kafka, topic, events)
    # A long hold after each stored batch: the signal arrives while a batch is stored but its
    # offsets are not committed yet.
    cmd = worker_command(pg_engine, mock_kafka, topic, group, batch_size=100, hold_ms=400)
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while _count(pg_engine) == 0:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
    stored = _count(pg_engine)
    assert 0 < stored < len(events)  # stopped early, after the batch in hand

    probe = Consumer({"bootstrap.servers": mock_kafka, "group.id": group, "log_level": 3})
    partitions = [TopicPartition(topic, p) for p in range(4)]
    committed = [max(tp.offset, 0) for tp in probe.committed(partitions, timeout=10)]
    probe.close()
    # Every stored event's offset is committed, and nothing unstored: a restart resumes exactly.
    assert sum(committed) == stored
