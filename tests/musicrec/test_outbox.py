"""The outbox behind the Kafka transport: events Kafka does not take are stored once in the main
database, and the relay publishes them later, each row once and in order per listener."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from apps.workers.outbox import OUTBOX, OutboxRelay, OutboxTransport, write_outbox
from apps.workers.transport import KafkaTransport, TransportError, decode
from musicrec.db.engine import make_engine
from musicrec.events import ListeningEvent
from tests.conftest import backends
from tests.musicrec.conftest import MOCK_API_VERSION, play_events

NO_BROKER = "127.0.0.1:1"


def _interleaved(per_user: int, users: Sequence[str]) -> list[ListeningEvent]:
    streams = [play_events(per_user, u) for u in users]
    return [e for group in zip(*streams, strict=True) for e in group]


def _outbox(engine: Engine) -> list[ListeningEvent]:
    with engine.connect() as conn:
        payloads = conn.scalars(select(OUTBOX.c.payload).order_by(OUTBOX.c.id)).all()
    return [decode(p) for p in payloads]


def _down_kafka() -> KafkaTransport:
    return KafkaTransport(NO_BROKER, "t", timeout_seconds=0.5, api_version=MOCK_API_VERSION)


class Recorder:
    """A Kafka stand-in that records what it was asked to publish, slowly enough for two
    relays to overlap (and at different speeds, so that one could overtake the other)."""

    def __init__(self, log: list[ListeningEvent], lock: threading.Lock, delay: float) -> None:
        self.log, self.lock, self.delay = log, lock, delay

    def publish(self, events: Sequence[ListeningEvent]) -> None:
        time.sleep(self.delay)
        with self.lock:
            self.log.extend(events)

    def close(self) -> None:
        pass


@backends
def test_kafka_down_events_go_to_the_outbox_once(engine: Engine) -> None:
    transport = OutboxTransport(_down_kafka(), engine)
    events = _interleaved(3, ["a", "b"])
    started = time.monotonic()
    transport.publish(events)  # no TransportError: the API answers 202
    assert time.monotonic() - started < 3
    assert _outbox(engine) == events
    transport.publish(events[:4])  # the client retries: no new rows
    transport.publish(events[1:2] * 2)
    assert _outbox(engine) == events
    with pytest.raises(TransportError):  # and the relay keeps them while Kafka is down
        OutboxRelay(engine, transport.kafka).run_once()
    assert _outbox(engine) == events
    transport.close()


@backends
def test_relay_publishes_every_row_once_in_order(engine: Engine, mock_kafka: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    events = _interleaved(6, ["a", "b", "c"])
    write_outbox(engine, events)
    kafka = KafkaTransport(mock_kafka, topic, api_version=MOCK_API_VERSION)
    relay = OutboxRelay(engine, kafka)
    batches = []
    while sent := relay.run_once(limit=5):
        batches.append(sent)
    assert batches == [5, 5, 5, 3]
    assert _outbox(engine) == []
    kafka.close()

    reader = Consumer({"bootstrap.servers": mock_kafka, "group.id": "unused", "log_level": 3})
    reader.assign([TopicPartition(topic, p, 0) for p in range(4)])
    messages = reader.consume(num_messages=len(events), timeout=5)
    received = [decode(m.value() or b"") for m in messages]
    reader.close()
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in events)
    for user in "abc":
        assert [e for e in received if e.user_id == user] == [
            e for e in events if e.user_id == user
        ]


def test_events_queue_behind_their_listeners_outbox_rows(engine: Engine, mock_kafka: str) -> None:
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    kafka = KafkaTransport(mock_kafka, topic, api_version=MOCK_API_VERSION)
    transport = OutboxTransport(kafka, engine)
    early, late = play_events(2, "a"), play_events(3, "a")[2:]
    write_outbox(engine, early)  # Kafka was down a moment ago
    transport.publish(late)  # Kafka is back, but a's earlier events are still queued
    transport.publish(play_events(1, "b"))  # b has none: straight to Kafka
    assert _outbox(engine) == early + late
    assert OutboxRelay(engine, kafka).run_once() == 3
    transport.close()


@backends
def test_two_relays_send_each_row_once(engine: Engine) -> None:
    users = [f"u{i}" for i in range(6)]
    events = _interleaved(10, users)
    write_outbox(engine, events)
    published: list[ListeningEvent] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def relay(delay: float) -> None:
        worker = OutboxRelay(engine, Recorder(published, lock, delay))
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not worker.run_once(limit=7):
                    with engine.connect() as conn:
                        if not conn.scalar(select(func.count()).select_from(OUTBOX)):
                            return
                    time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=relay, args=(d,)) for d in (0.05, 0.005)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(published) == len(events)  # none twice
    assert {e.event_id for e in published} == {e.event_id for e in events}
    for user in users:
        assert [e for e in published if e.user_id == user] == [
            e for e in events if e.user_id == user
        ]
    assert _outbox(engine) == []


def test_publish_fails_when_kafka_and_the_outbox_are_down() -> None:
    down_db = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/test")
    transport = OutboxTransport(_down_kafka(), down_db, owns_engine=True)
    with pytest.raises(TransportError, match="did not acknowledge.*outbox did not store") as info:
        transport.publish(play_events(2, "a"))
    assert "\n" not in str(info.value)
    transport.close()


def test_kafka_buffer_is_bounded() -> None:
    transport = KafkaTransport(NO_BROKER, "t", timeout_seconds=5.0, max_buffered=3)
    started = time.monotonic()
    with pytest.raises(TransportError, match="at most 3 are buffered"):
        transport.publish(play_events(4, "a"))  # refused before connecting: no 5 s wait
    assert time.monotonic() - started < 0.5
    assert transport._buffered == 0
    transport.close()


def test_relay_loop_drains_and_beats_its_heartbeat(engine: Engine, tmp_path: Path) -> None:
    """run() relays until stopped, touching the liveness file each round (Kubernetes probes it)."""
    events = play_events(4, "a")
    write_outbox(engine, events)
    published: list[ListeningEvent] = []
    relay = OutboxRelay(engine, Recorder(published, threading.Lock(), 0.0))
    alive = tmp_path / "relay.alive"
    thread = threading.Thread(target=relay.run, args=(0.05,), kwargs={"heartbeat_path": alive})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(published) < len(events) or not alive.exists():
            assert time.monotonic() < deadline, "the relay did not drain the outbox"
            time.sleep(0.02)
        touched = alive.stat().st_mtime_ns
        while alive.stat().st_mtime_ns == touched:  # still beating while idle
            assert time.monotonic() < deadline, "the heartbeat stopped"
            time.sleep(0.02)
    finally:
        relay.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert published == events and _outbox(engine) == []


class FlakyKafka:
    """A Kafka stand-in that hangs for `hang` seconds and fails while `down`, like a broker
    that stopped answering."""

    def __init__(self, hang: float) -> None:
        self.hang, self.down = hang, True
        self.published: list[ListeningEvent] = []

    def publish(self, events: Sequence[ListeningEvent]) -> None:
        self.probe()
        self.published.extend(events)

    def probe(self) -> None:
        if self.down:
            time.sleep(self.hang)
            raise TransportError("no answer")

    def close(self) -> None:
        pass


@backends
def test_a_kafka_outage_costs_one_timeout_then_requests_go_straight_to_the_outbox(
    engine: Engine,
) -> None:
    kafka = FlakyKafka(hang=0.5)
    transport = OutboxTransport(kafka, engine, breaker_seconds=0.2)  # type: ignore[arg-type]
    assert transport.status() == "kafka"
    started = time.monotonic()
    transport.publish(play_events(1, "first"))  # the one that finds Kafka down waits for it
    assert time.monotonic() - started >= 0.5
    assert transport.status().startswith("degraded: Kafka unavailable")

    waits = []
    for i in range(20):
        started = time.monotonic()
        transport.publish(play_events(2, f"later-{i}"))
        waits.append(time.monotonic() - started)
    assert max(waits) < 0.25, waits  # an outbox insert, no Kafka timeout
    assert len(_outbox(engine)) == 41 and kafka.published == []

    kafka.down = False  # back: the probe closes the breaker within its period
    deadline = time.monotonic() + 5
    while transport.breaker.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert transport.status() == "kafka"
    fresh = play_events(1, "after")
    transport.publish(fresh)
    assert kafka.published == fresh
    transport.close()
