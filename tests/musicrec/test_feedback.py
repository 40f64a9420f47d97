"""The feedback sink and its consumers: events reach the database and the online features exactly
once per event_id, new listeners are created, unknown tracks rejected, failures retried."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from apps.workers.feedback import (
    DeadLetter,
    FeedbackSink,
    HandleReport,
    InProcessConsumer,
    KafkaConsumerLoop,
)
from apps.workers.transport import InProcessTransport, KafkaTransport
from feature_store.online import OnlineFeatures
from feature_store.store import materialize
from musicrec.config import Settings
from musicrec.db.bulk import write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from musicrec.db.models import DeadEvent, User
from musicrec.db.models import ListeningEvent as EventRow
from musicrec.events import EventContext, EventType, ListeningEvent
from musicrec.timeutil import as_utc
from tests.conftest import backends
from tests.feature_store.event_set import T0, T1, T2, T3, batch
from tests.musicrec.conftest import MOCK_API_VERSION

UNKNOWN = "spotify:track:nowhere"


def _event(user: str, track: str, kind: EventType = EventType.PLAY, **kw: object) -> ListeningEvent:
    return ListeningEvent(
        user_id=user,
        track_id=track,
        event_type=kind,
        **{"occurred_at": T0 + timedelta(minutes=1), **kw},  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, Engine, OnlineFeatures]]:
    """An embedded setup (SQLite database and online store) with the event set materialized:
    u1 has 2 plays and 1 skip online."""
    settings = Settings(var_dir=tmp_path / "var", feast_project=f"t{uuid.uuid4().hex[:10]}")
    engine = make_engine(settings=settings)
    upgrade(engine)
    write_batch(engine, batch())
    materialize(settings, engine, T0)
    yield settings, engine, OnlineFeatures.for_settings(settings)
    engine.dispose()


def _stats(features: OnlineFeatures, user: str) -> tuple[int, int]:
    wanted = ["user_listening_stats__plays", "user_listening_stats__skips"]
    u = features.user_features(user, features=wanted)
    return u["user_listening_stats__plays"], u["user_listening_stats__skips"]


@backends
def test_a_redelivered_event_is_stored_and_pushed_once(
    engine: Engine, store: tuple[Settings, Engine, OnlineFeatures]
) -> None:
    features = store[2]
    write_batch(engine, batch())
    sink = FeedbackSink(engine, features)
    play = _event("u1", T2, ms_played=95_000)
    skip = _event("u1", T3, EventType.SKIP, ms_played=5_000)
    click = _event("u1", T1, EventType.CLICK, occurred_at=T0 + timedelta(minutes=2))

    assert sink.handle([play, skip, click, play]) == HandleReport(stored=3, duplicates=1)
    assert sink.handle([skip, click, play]) == HandleReport(duplicates=3)

    with engine.connect() as conn:
        rows = conn.execute(
            select(EventRow.event_id, EventRow.event_type, EventRow.ms_played).where(
                EventRow.event_id.in_([play.event_id, skip.event_id])
            )
        ).all()
    assert sorted(rows) == sorted([(play.event_id, "play", 95_000), (skip.event_id, "skip", 5_000)])
    assert _stats(features, "u1") == (3, 2)  # materialized (2, 1) plus each event once
    # Pushed once each, in time order: the sequence ends with the play, then the later click.
    recent = features.user_features("u1")["user_recent_tracks__track_ids"].split()
    assert recent[-3:] == [T1, T2, T1] and recent.count(T2) == 1


@backends
def test_a_new_listener_is_created_and_an_unknown_track_rejected(engine: Engine) -> None:
    write_batch(engine, batch())
    sink = FeedbackSink(engine, None)
    context = EventContext(device="mobile", session_id="s9", position=2)
    new = _event("newcomer", T1, EventType.LIKE, context=context)
    stray = _event("ghost", UNKNOWN)

    assert sink.handle([stray, new]) == HandleReport(stored=1, rejected=1)
    assert sink.handle([stray]) == HandleReport(rejected=1)  # still unknown: never stored

    with engine.connect() as conn:
        users = dict(conn.execute(select(User.external_id, User.display_name)).all())
        row = conn.execute(select(EventRow).where(EventRow.event_id == new.event_id)).one()
    assert users["newcomer"] is None
    assert "ghost" not in users  # only listeners of stored events get a row
    assert users.keys() == {"u1", "u2", "newcomer"}
    assert (row.event_type, row.device, row.session_id, row.position) == ("like", "mobile", "s9", 2)
    assert as_utc(row.occurred_at) == new.occurred_at


def _dead(engine: Engine) -> list[tuple[str, uuid.UUID | None, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                DeadEvent.source, DeadEvent.event_id, DeadEvent.payload, DeadEvent.reason
            ).order_by(DeadEvent.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@backends
def test_poison_messages_are_dead_lettered_once_with_the_batch(engine: Engine) -> None:
    write_batch(engine, batch())
    sink = FeedbackSink(engine, None)
    good, stray = _event("u1", T1), _event("ghost", UNKNOWN)
    garbage = DeadLetter.undecodable("kafka:t/0/7", b"\xff\x00 not json", ValueError("bad\nmore"))
    empty = DeadLetter.undecodable("kafka:t/1/3", None, TypeError("none"))

    report = sink.handle([good, stray], sources=["a", "b"], invalid=[garbage, empty])
    assert report == HandleReport(stored=1, rejected=1, invalid=2)
    # Redelivered (after a crash before the offset commit): counted again, stored once.
    assert sink.handle([stray], sources=["c"], invalid=[garbage]) == HandleReport(
        rejected=1, invalid=1
    )
    assert sink.handle([], invalid=[]) == HandleReport()

    dead = _dead(engine)
    assert [(source, event_id) for source, event_id, *_ in dead] == [
        ("b", stray.event_id),
        ("kafka:t/0/7", None),
        ("kafka:t/1/3", None),
    ]
    assert ListeningEvent.model_validate_json(dead[0][2]) == stray
    assert dead[0][3] == f"track {UNKNOWN} is not in the catalog"
    assert dead[1][2:] == ("\\xff\\x00 not json", "not a valid event: bad")
    assert dead[2][2:] == ("", "empty message")


def _poison(user: str, **fields: object) -> ListeningEvent:
    """An event the API would refuse (it validates as the stores do), as another producer, or
    an older API, could still put on the topic: built without validation."""
    event = _event(user, T1)
    return event.model_copy(update=fields)


# What each store refuses: SQLite holds NUL, Postgres neither NUL nor 64-bit integers; no store
# can encode a lone surrogate.
POISON = {
    "sqlite": {"surrogate": {"user_id": "bad\ud800"}},
    "postgresql": {
        "surrogate": {"user_id": "bad\ud800"},
        "nul": {"user_id": "nul\x00user"},
        "int_overflow": {"ms_played": 2**40},
        "nul_in_context": {"context": EventContext.model_construct(device="a\x00", position=1)},
    },
}


@backends
def test_a_poison_event_is_dead_lettered_and_the_rest_of_its_batch_stored(
    engine: Engine,
) -> None:
    """The consumer once retried a batch holding one NUL forever, so nothing after it was
    stored. Now the refused event is alone dead-lettered, every good one around it lands."""
    write_batch(engine, batch())
    sink = FeedbackSink(engine, None)
    for name, fields in POISON[engine.dialect.name].items():
        good = [_event(f"{name}-{i}", T1) for i in range(7)]
        poison = _poison(f"{name}-poison", **fields)
        events = [*good[:3], poison, *good[3:]]
        sources = [f"kafka:t/0/{i}" for i in range(len(events))]

        report = sink.handle(events, sources=sources)
        assert report == HandleReport(stored=7, refused=1), name
        with engine.connect() as conn:
            stored = set(
                conn.scalars(
                    select(EventRow.event_id).where(
                        EventRow.event_id.in_([e.event_id for e in events])
                    )
                )
            )
        assert stored == {e.event_id for e in good}, name
        dead = [d for d in _dead(engine) if d[1] == poison.event_id]
        assert len(dead) == 1, name
        source, _, payload, reason = dead[0]
        assert source == "kafka:t/0/3"
        assert reason.startswith("refused by the database: ")
        assert "\x00" not in payload and str(poison.event_id) in payload
        # Redelivered (no offset commit before a crash): nothing new, nothing stored twice.
        again = sink.handle(events, sources=sources)
        assert again.stored == 0 and again.duplicates == 7, name
        assert len([d for d in _dead(engine) if d[1] == poison.event_id]) == 1


@backends
def test_an_unavailable_database_is_retried_not_dead_lettered(engine: Engine) -> None:
    from sqlalchemy import text

    write_batch(engine, batch())
    sink = FeedbackSink(engine, None)
    with engine.begin() as conn:  # a broken database, as every event would find it
        conn.execute(text("DROP TABLE dead_events"))
        conn.execute(text("DROP TABLE listening_events"))
    with pytest.raises(Exception, match="listening_events"):
        sink.handle([_event("u1", T1), _poison("u2", user_id="bad\ud800")])


@backends
def test_dead_letters_roll_back_with_a_failed_batch(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apps.workers.feedback

    write_batch(engine, batch())
    store_dead = apps.workers.feedback._store_dead

    def store_then_fail(*args: Any) -> None:
        store_dead(*args)
        raise RuntimeError("database gone")

    monkeypatch.setattr(apps.workers.feedback, "_store_dead", store_then_fail)
    sink = FeedbackSink(engine, None)
    poison = DeadLetter("kafka:t/0/1", "{", "not a valid event")
    with pytest.raises(RuntimeError):
        sink.handle([_event("newcomer", T1), _event("u1", UNKNOWN)], invalid=[poison])
    assert _dead(engine) == []  # nothing of the batch is stored: it is read again
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(EventRow)) == len(batch().events)


def test_in_process_consumer_end_to_end(store: tuple[Settings, Engine, OnlineFeatures]) -> None:
    settings, engine, features = store
    assert settings.event_queue_path is not None
    transport = InProcessTransport(settings.event_queue_path)
    consumer = InProcessConsumer(transport, FeedbackSink(engine, features))
    consumer.start()
    play = _event("u1", T2, ms_played=95_000)
    try:
        transport.publish([play, _event("newcomer", T3, ms_played=180_000)])
        transport.publish([play, _event("u1", UNKNOWN)])  # a client's retry, and a stray track
        assert consumer.drain(timeout=15)
    finally:
        consumer.stop()
        transport.close()

    assert consumer.totals == HandleReport(stored=2, duplicates=1, rejected=1)
    [(source, event_id, _, reason)] = _dead(engine)
    assert source.startswith("in-process:") and "not in the catalog" in reason
    assert _stats(features, "u1") == (3, 1)
    assert _stats(features, "newcomer") == (1, 0)
    u1 = features.user_features("u1")
    assert u1["user_recent_tracks__track_ids"].split()[-1] == T2
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(EventRow)) == len(batch().events) + 2


def test_in_process_consumer_retries_until_the_sink_works(
    empty_engine: Engine, tmp_path: Path
) -> None:
    transport = InProcessTransport(tmp_path / "queue.db")
    # The database has no tables yet: every attempt fails until it is migrated.
    consumer = InProcessConsumer(transport, FeedbackSink(empty_engine, None), retry_seconds=0.05)
    consumer.start()
    try:
        transport.publish([_event("u1", T1)])
        time.sleep(0.3)
        assert transport.pending() == 1  # failed batches are not acknowledged
        assert consumer.totals == HandleReport()
        upgrade(empty_engine)
        write_batch(empty_engine, batch())
        assert consumer.drain(timeout=10)
    finally:
        consumer.stop()
        transport.close()
    assert consumer.totals == HandleReport(stored=1)


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _start(loop: KafkaConsumerLoop, max_batches: int | None = None) -> threading.Thread:
    thread = threading.Thread(target=loop.run, args=(max_batches,), daemon=True)
    thread.start()
    return thread


def test_kafka_consumer_loop_commits_only_handled_batches(
    mock_kafka: str, empty_engine: Engine, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic, group = f"feedback-{uuid.uuid4().hex[:8]}", f"sink-{uuid.uuid4().hex[:8]}"
    transport = KafkaTransport(mock_kafka, topic, api_version=MOCK_API_VERSION)
    events = [_event("u1", T1), _event("u2", T2), _event("newcomer", T3)]
    transport.publish(events)
    transport.publish(events[:1])  # redelivered by a client retry
    raw = Producer({"bootstrap.servers": mock_kafka, "log_level": 3})
    raw.produce(topic, key=b"u1", value=b"not an event")
    raw.flush(5)

    def loop() -> KafkaConsumerLoop:
        return KafkaConsumerLoop(
            mock_kafka,
            topic,
            FeedbackSink(empty_engine, None),
            api_version=MOCK_API_VERSION,
            group_id=group,
            poll_seconds=0.1,
            retry_seconds=0.1,
            # The mock cluster sometimes makes kafka-python rejoin right after its first join,
            # and holds the rejoin for about a session timeout: keep it short.
            consumer_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
            heartbeat_path=tmp_path / "alive",
        )

    first = loop()
    caplog.set_level(logging.WARNING, logger="musicrec.retry")
    thread = _start(first)
    try:
        # No tables yet: the batch fails and must be read again, not skipped.
        _wait(lambda: any("database unavailable" in r.getMessage() for r in caplog.records))
        upgrade(empty_engine)
        write_batch(empty_engine, batch())
        _wait(lambda: first.totals.stored + first.totals.duplicates == 4)
        said = [r.getMessage() for r in caplog.records if r.name == "musicrec.retry"]
        assert len(said) == 2 and "database is back after" in said[1]  # once per change
        # The liveness heartbeat keeps being touched while the loop polls.
        touched = (tmp_path / "alive").stat().st_mtime_ns
        _wait(lambda: (tmp_path / "alive").stat().st_mtime_ns > touched)
    finally:
        first.stop()
        thread.join(10)
        first.close()
    assert first.totals == HandleReport(stored=3, duplicates=1, invalid=1)
    assert first.skipped == 1  # the bad message did not stop the loop
    [(source, event_id, payload, reason)] = _dead(empty_engine)  # stored with the batch
    assert source.startswith(f"kafka:{topic}/") and event_id is None
    assert (payload, reason[:18]) == ("not an event", "not a valid event:")

    # Everything handled is committed: a restarted sink resumes after it. (Read with a
    # client outside the group: a second member's join costs the mock cluster ~5 s.)
    transport.close()
    probe = Consumer({"bootstrap.servers": mock_kafka, "group.id": group, "log_level": 3})
    partitions = [TopicPartition(topic, p) for p in range(4)]
    committed = [tp.offset for tp in probe.committed(partitions, timeout=10)]
    ends = [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    probe.close()
    assert committed == ends
    assert sum(ends) == 5
