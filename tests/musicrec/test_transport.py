"""Event transports: the in-process queue is durable, safe from many threads and at least once;
Kafka publishes keyed JSON that a broker acknowledged, and fails fast without a broker."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from apps.workers.outbox import OutboxTransport, transport_for
from apps.workers.transport import InProcessTransport, KafkaTransport, TransportError
from musicrec.config import REPO_ROOT, Settings
from musicrec.events import ListeningEvent
from tests.musicrec.conftest import MOCK_API_VERSION, play_events

CRASHING_PUBLISHER = """
import os, sys
from musicrec.events import ListeningEvent
from apps.workers.transport import InProcessTransport

events = [ListeningEvent.model_validate_json(line) for line in sys.stdin]
InProcessTransport(sys.argv[1]).publish(events)
os._exit(0)  # no close, no cleanup: as if the process died right after the 202
"""


def test_published_events_survive_the_process(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    events = play_events(3)
    subprocess.run(
        [sys.executable, "-c", CRASHING_PUBLISHER, str(path)],
        input="\n".join(e.model_dump_json() for e in events),
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    queue = InProcessTransport(path)
    assert [q.event for q in queue.receive()] == events
    assert queue._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert queue._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    queue.close()


def test_concurrent_publishers_lose_nothing_and_keep_each_ones_order(tmp_path: Path) -> None:
    queue = InProcessTransport(tmp_path / "queue.db")
    per_thread = {f"u{t}": play_events(40, user=f"u{t}") for t in range(8)}
    errors: list[BaseException] = []

    def publish(events: list[ListeningEvent]) -> None:
        try:
            for i in range(0, len(events), 4):
                queue.publish(events[i : i + 4])
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(ev,)) for ev in per_thread.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    received = [q.event for q in queue.receive(limit=1000)]
    assert len(received) == 320
    for user, events in per_thread.items():
        assert [e for e in received if e.user_id == user] == events
    queue.close()


def test_events_are_redelivered_until_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    events = play_events(5)
    queue = InProcessTransport(path)
    queue.publish(events)

    first = queue.receive(limit=3)
    assert [q.event for q in first] == events[:3]
    assert [q.event for q in queue.receive(limit=3)] == events[:3]  # not acknowledged yet
    queue.ack([q.seq for q in first[:2]])
    assert queue.pending() == 3
    rest = queue.receive()
    assert [q.event for q in rest] == events[2:]
    queue.close()

    queue = InProcessTransport(path)  # acknowledgements are durable too
    assert [q.event for q in queue.receive()] == events[2:]
    queue.ack([q.seq for q in rest])
    assert queue.pending() == 0
    assert queue.receive(wait_seconds=0.05) == []
    queue.close()


def test_receive_wakes_up_on_publish(tmp_path: Path) -> None:
    queue = InProcessTransport(tmp_path / "queue.db")
    event = play_events(1)[0]
    timer = threading.Timer(0.1, queue.publish, args=([event],))
    timer.start()
    started = time.monotonic()
    assert [q.event for q in queue.receive(wait_seconds=5)] == [event]
    assert time.monotonic() - started < 2
    timer.join()
    queue.close()


def test_invalid_entries_are_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = InProcessTransport(path)
    raw = sqlite3.connect(path)
    with raw:  # e.g. written by an older version with another schema
        raw.execute(
            "INSERT INTO queued_events (event_id, payload, enqueued_at) VALUES ('x', '{}', 0)"
        )
    raw.close()
    events = play_events(1)
    queue.publish(events)
    assert [q.event for q in queue.receive()] == events
    assert queue.pending() == 1  # the invalid entry left the queue
    (count,) = queue._conn.execute("SELECT count(*) FROM dead_events").fetchone()
    assert count == 1
    queue.close()


def test_publish_fails_within_the_timeout_when_the_queue_stays_locked(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = InProcessTransport(path, timeout_seconds=0.3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.monotonic()
    with pytest.raises(TransportError, match="did not store 2 event") as info:
        queue.publish(play_events(2))
    assert time.monotonic() - started < 1.5
    assert "\n" not in str(info.value)
    other.execute("ROLLBACK")
    other.close()
    queue.publish(play_events(2))  # and works again once the lock is gone
    assert queue.pending() == 2
    queue.close()


def test_transport_for_picks_the_configured_one(tmp_path: Path) -> None:
    embedded = transport_for(Settings(var_dir=tmp_path))
    assert isinstance(embedded, InProcessTransport)
    assert embedded.path == tmp_path / "event-queue.db"
    embedded.close()
    kafka = transport_for(Settings(var_dir=tmp_path, kafka_bootstrap_servers="broker:9092"))
    assert isinstance(kafka, OutboxTransport)  # connects lazily: no broker needed yet
    assert kafka.kafka.topic == "listening-events"
    kafka.close()


def test_kafka_publish_is_keyed_by_listener(mock_kafka: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = "transport-round-trip"
    transport = KafkaTransport(mock_kafka, topic, api_version=MOCK_API_VERSION)
    events = [
        e for pair in zip(play_events(5, "a"), play_events(5, "b"), strict=True) for e in pair
    ]
    transport.publish(events)
    transport.close()

    # Read the partitions directly: no consumer group, so no ~3 s join.
    reader = Consumer({"bootstrap.servers": mock_kafka, "group.id": "unused", "log_level": 3})
    reader.assign([TopicPartition(topic, p, 0) for p in range(4)])
    messages = reader.consume(num_messages=10, timeout=10)
    reader.close()
    assert len(messages) == 10
    by_partition: dict[int | None, list[ListeningEvent]] = {}
    for m in messages:
        event = ListeningEvent.model_validate(json.loads(m.value() or b""))  # plain JSON
        assert m.key() == event.user_id.encode()
        by_partition.setdefault(m.partition(), []).append(event)
    for user in ("a", "b"):
        (partition,) = {p for p, evs in by_partition.items() if any(e.user_id == user for e in evs)}
        assert [e for e in by_partition[partition] if e.user_id == user] == [
            e for e in events if e.user_id == user
        ]


@pytest.mark.parametrize("api_version", [None, MOCK_API_VERSION])
def test_kafka_publish_fails_fast_without_a_broker(api_version: tuple[int, ...] | None) -> None:
    transport = KafkaTransport("127.0.0.1:1", "t", timeout_seconds=1.0, api_version=api_version)
    started = time.monotonic()
    with pytest.raises(TransportError, match="did not acknowledge 2 event") as info:
        transport.publish(play_events(2))
    assert time.monotonic() - started < 2.0
    assert "\n" not in str(info.value)
    transport.close()
