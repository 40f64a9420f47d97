"""Crash consistency of the Kafka feedback consumer: produce events to a broker, run the consumer
(`KafkaConsumerLoop` + `FeedbackSink` on a Postgres schema) as a subprocess, SIGKILL it at random
points and restart it until the topic is consumed; then Postgres must hold exactly the produced
event ids (none lost; none stored twice). Prints JSON.

    python -m benchmarks.consumer_crash [--events 100000] [--kills 5] [--batch-size 500]

Runs against librdkafka's mock cluster (confluent-kafka, a test dependency): no broker needed.
That broker keeps only ~5 MiB a partition (about 18k of these events) and deletes older
messages, read or not, so events are produced while the consumer runs, never more than BACKLOG
ahead of it (a first try that produced all 100k up front lost the 28k the broker deleted before
they were read: `lost` counts those too). `broker_deleted` is the sum of the partitions' low
watermarks at the end, for the record.
`crash_trial` is also what tests/musicrec/test_consumer_crash.py runs, CI-sized.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from apps.workers.feedback import FeedbackSink
from musicrec.config import REPO_ROOT
from musicrec.db.bulk import write_batch
from musicrec.db.models import ListeningEvent as EventRow
from musicrec.events import EventType, ListeningEvent
from musicrec.records import CatalogBatch, TrackRecord

# kafka-python clients must speak this protocol version to the mock cluster.
MOCK_API_VERSION = (2, 3)
# The mock cluster holds a rejoin for about a session timeout: keep it short (and the members
# of a killed worker are evicted after it).
# max_poll_interval_ms is also the rebalance timeout: a join the killed member left half done
# waits that long (300 s by default; seen stalling the CI-sized test).
CONSUMER_CONFIG = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 15000,
}
TRACKS = [f"spotify:track:crash{i}" for i in range(50)]
BACKLOG, CHUNK = 40_000, 5_000


def catalog() -> CatalogBatch:
    """The tracks the events refer to (the sink rejects events for unknown tracks)."""
    return CatalogBatch(
        tracks={uri: TrackRecord(uri=uri, name=uri, artist_name="crash") for uri in TRACKS}
    )


def make_events(n: int, users: int = 200, seed: int = 0) -> list[ListeningEvent]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        ListeningEvent(
            user_id=f"crash-user-{rng.randrange(users)}",
            track_id=rng.choice(TRACKS),
            event_type=EventType.PLAY,
            occurred_at=start + timedelta(seconds=i),
            ms_played=rng.randrange(1, 200_000),
        )
        for i in range(n)
    ]


def produce(bootstrap: str, topic: str, events: Sequence[ListeningEvent]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        api_version=MOCK_API_VERSION,
        acks="all",
        linger_ms=5,
    )
    try:
        for e in events:
            producer.send(topic, key=e.user_id.encode(), value=e.model_dump_json().encode())
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def paced_produce(
    bootstrap: str, topic: str, events: Sequence[ListeningEvent], engine: Engine
) -> None:
    """Produce in chunks, each once the consumer is less than BACKLOG events behind."""
    for start in range(0, len(events), CHUNK):
        while start - _count(engine) > BACKLOG:
            time.sleep(0.2)
        produce(bootstrap, topic, events[start : start + CHUNK])


def broker_deleted(bootstrap: str, topic: str, partitions: int = 4) -> int:
    """Messages the broker deleted (retention) before they were consumed, or at all."""
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe", "log_level": 3})
    try:
        return sum(
            probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
            for p in range(partitions)
        )
    finally:
        probe.close()


def mock_cluster() -> tuple[object, str]:
    """(owner, bootstrap_servers) of a one-broker mock cluster living while `owner` does."""
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    brokers = owner.list_topics(timeout=10).brokers.values()
    return owner, ",".join(f"{b.host}:{b.port}" for b in brokers)


@dataclass
class CrashResult:
    produced: int
    stored: int = 0
    lost: int = 0
    unexpected: int = 0  # stored ids that were never produced
    kills: int = 0
    seconds: float = 0.0
    stored_at_kill: list[int] = field(default_factory=list)
    # From a worker's start to its first new stored event (group join + first batch).
    resume_seconds: list[float] = field(default_factory=list)
    final_exit_code: int | None = None
    final_totals: dict[str, int] = field(default_factory=dict)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(EventRow)) or 0)


def worker_command(
    engine: Engine, bootstrap: str, topic: str, group: str, batch_size: int, hold_ms: int = 0
) -> list[str]:
    url = engine.url.render_as_string(hide_password=False)
    return [
        sys.executable,
        "-m",
        "benchmarks.consumer_crash",
        "worker",
        url,
        bootstrap,
        topic,
        group,
        str(batch_size),
        str(hold_ms),
    ]


def crash_trial(
    engine: Engine,
    bootstrap: str,
    topic: str,
    expected: set[uuid.UUID],
    *,
    kills: int,
    batch_size: int = 200,
    hold_ms: int = 20,
    seed: int = 0,
    timeout: float = 120.0,
    log_path: Path | None = None,
) -> CrashResult:
    """Consume `topic` into `engine` (migrated, with the tracks) with a worker subprocess that is
    SIGKILLed `kills` times, each once a random number of events more is stored, and restarted;
    the last one is stopped with SIGTERM once everything is stored.

    Each worker holds `hold_ms` after storing a batch, before its offsets are committed (where
    the sink pushes to the online features): kills land in that window too, so batches are
    stored and then redelivered."""
    rng = random.Random(seed)
    n = len(expected)
    group = f"crash-{uuid.uuid4().hex[:8]}"
    cmd = worker_command(engine, bootstrap, topic, group, batch_size, hold_ms)
    result = CrashResult(produced=n)
    targets = sorted(rng.sample(range(1, n), kills))
    deadline = time.monotonic() + timeout
    log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - closed below
    started = time.monotonic()
    try:
        for target in [*targets, n]:
            before = _count(engine)
            proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True
            )
            t0 = time.monotonic()
            resumed = False
            try:
                while True:
                    stored = _count(engine)
                    if not resumed and stored > before:
                        result.resume_seconds.append(round(time.monotonic() - t0, 3))
                        resumed = True
                    if stored >= target and stored > before:  # each worker makes progress
                        break
                    if proc.poll() is not None:
                        raise RuntimeError(f"worker exited with {proc.returncode}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{stored} of {n} events stored in {timeout:g} s")
                    time.sleep(0.01)
                if target < n:
                    time.sleep(rng.uniform(0, 0.05))  # anywhere in the batch cycle
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    result.kills += 1
                    result.stored_at_kill.append(_count(engine))
                else:
                    proc.send_signal(signal.SIGTERM)
                    out, _ = proc.communicate(timeout=30)
                    result.final_exit_code = proc.returncode
                    if out.strip():
                        result.final_totals = json.loads(out.strip().splitlines()[-1])
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    finally:
        log.close()
    result.seconds = round(time.monotonic() - started, 2)
    with engine.connect() as conn:
        ids = list(conn.scalars(select(EventRow.event_id)))
    result.stored = len(ids)
    result.lost = len(expected - set(ids))
    result.unexpected = len(set(ids) - expected)
    return result


class _HeldSink(FeedbackSink):
    """Stands for the online-feature push: time between storing a batch and its offset commit."""

    def __init__(self, engine: Engine, hold_seconds: float) -> None:
        super().__init__(engine, None)
        self.hold_seconds = hold_seconds

    def _push(self, events: list[ListeningEvent]) -> int:
        time.sleep(self.hold_seconds)
        return 0


def worker(url: str, bootstrap: str, topic: str, group: str, batch_size: int, hold_ms: int) -> None:
    """The consumer process: runs until SIGTERM, then prints its totals as JSON."""
    import logging

    from apps.workers.feedback import KafkaConsumerLoop, stop_on_signals
    from musicrec.db.engine import make_engine

    logging.basicConfig(level=logging.WARNING)
    engine = make_engine(url)
    loop = KafkaConsumerLoop(
        bootstrap,
        topic,
        _HeldSink(engine, hold_ms / 1000),
        api_version=MOCK_API_VERSION,
        group_id=group,
        batch_size=batch_size,
        poll_seconds=0.1,
        retry_seconds=0.2,
        consumer_config=CONSUMER_CONFIG,
    )
    stop_on_signals(loop.stop)
    try:
        loop.run()
    finally:
        loop.close()
        engine.dispose()
    print(json.dumps(asdict(loop.totals)), flush=True)


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        url, bootstrap, topic, group, batch_size, hold_ms = sys.argv[2:8]
        worker(url, bootstrap, topic, group, int(batch_size), int(hold_ms))
        return

    from benchmarks.common import emit, scratch_schema

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--hold-ms", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    owner, bootstrap = mock_cluster()
    topic = f"feedback-crash-{uuid.uuid4().hex[:8]}"
    events = make_events(args.events, seed=args.seed)
    with scratch_schema() as engine:
        write_batch(engine, catalog())
        producer = threading.Thread(
            target=paced_produce, args=(bootstrap, topic, events, engine), daemon=True
        )
        producer.start()
        result = crash_trial(
            engine,
            bootstrap,
            topic,
            {e.event_id for e in events},
            kills=args.kills,
            batch_size=args.batch_size,
            hold_ms=args.hold_ms,
            seed=args.seed,
            timeout=1800,
            log_path=REPO_ROOT / "results" / "benchmarks" / "consumer_crash.log",
        )
        producer.join()
    deleted = broker_deleted(bootstrap, topic)
    del owner
    emit(
        {
            "benchmark": "consumer_crash",
            "broker": "librdkafka mock cluster (1 broker, 4 partitions)",
            "database": "postgres",
            "batch_size": args.batch_size,
            "hold_ms": args.hold_ms,
            "max_backlog": BACKLOG,
            "broker_deleted": deleted,
            "events_per_second": round(args.events / result.seconds),
            **asdict(result),
            "ok": (result.lost, result.unexpected, result.stored) == (0, 0, args.events),
        }
    )


if __name__ == "__main__":
    main()
