"""The feedback sink: applies listening events to the database and the online feature store, and
the consumers that feed it from a transport (apps.workers.transport).

Delivery is at least once, so the sink is idempotent by event_id: a redelivered event is
counted as a duplicate and changes nothing, in the database or in the online counters (only
events this call actually stored are pushed to the feature store).

Messages the sink cannot apply (not a valid event, an event for a track not in the catalog, or
an event the database refuses) go to the dead_events table with their reason, and the consumer
moves on: a poison message never blocks a partition, and nothing is dropped unrecorded. When the
database refuses a batch for its data (not because it is unreachable), the batch is split in
halves until the refused events are alone; they are dead-lettered and the rest is stored.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import DBAPIError, StatementError

from apps.workers.transport import InProcessTransport, decode
from musicrec.config import Settings
from musicrec.db.bulk import BatchWriter
from musicrec.db.models import DeadEvent, Track
from musicrec.db.models import ListeningEvent as EventRow
from musicrec.errors import one_line
from musicrec.events import ListeningEvent, escape_unstorable
from musicrec.records import CatalogBatch, EventRecord
from musicrec.retry import Retrying

if TYPE_CHECKING:
    from kafka import KafkaConsumer

    from feature_store.online import OnlineFeatures

log = logging.getLogger(__name__)

# The consumer group of the sink; every sink process joins it and shares the partitions.
GROUP_ID = "musicrec-feedback-sink"

DEAD_EVENTS = cast(Table, DeadEvent.__table__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message for the dead_events table. `source` names the message where it came from
    (e.g. "kafka:<topic>/<partition>/<offset>"); a redelivered message with the same source, or
    a rejected event with the same event_id, is stored once."""

    source: str
    payload: str
    reason: str
    event_id: uuid.UUID | None = None

    @classmethod
    def undecodable(cls, source: str, value: bytes | str | None, exc: Exception) -> DeadLetter:
        if isinstance(value, bytes):
            text = value.decode("utf-8", errors="backslashreplace")
        else:
            text = value or ""
        reason = "empty message" if value is None else f"not a valid event: {one_line(exc)}"
        return cls(source, escape_unstorable(text), escape_unstorable(reason))

    @classmethod
    def refused(cls, source: str, event: ListeningEvent, exc: Exception) -> DeadLetter:
        """An event the database would not store (it holds what neither store can: the API
        refuses such events, so only other producers can send them)."""
        reason = f"refused by the database: {escape_unstorable(one_line(exc))}"
        return cls(source, _payload(event), reason, event.event_id)


def _payload(event: ListeningEvent) -> str:
    """The event's JSON for dead_events: ASCII, so whatever it holds is escaped (no raw NUL)."""
    return json.dumps(event.model_dump(mode="json"), ensure_ascii=True)


def refused_for_its_data(exc: Exception) -> bool:
    """Whether the database refused a write for the values in it (a poison event), rather than
    being unreachable or broken (then every event would fail the same way: retry the batch).
    A ValueError is the driver failing to send a value at all (psycopg2: a NUL in text; sqlite3
    and psycopg2: a lone surrogate, UnicodeEncodeError), raised as is or as a StatementError."""
    if isinstance(exc, ValueError):
        return True
    # By the DB-API's class names: the bulk writer's COPY raises the driver's own errors,
    # unwrapped (psycopg2.errors.NumericValueOutOfRange is a psycopg2.DataError).
    if {"DataError", "IntegrityError"} & {cls.__name__ for cls in type(exc).__mro__}:
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


@dataclass
class HandleReport:
    stored: int = 0
    duplicates: int = 0  # already stored, or repeated within the batch
    rejected: int = 0  # track not in the catalog (dead-lettered)
    invalid: int = 0  # not a valid event (dead-lettered)
    refused: int = 0  # a valid event the database would not store (dead-lettered)
    push_failures: int = 0  # stored, but the online features missed them until the batch job

    def add(self, other: HandleReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class FeedbackSink:
    def __init__(self, engine: Engine, features: OnlineFeatures | None) -> None:
        self.engine = engine
        self.features = features

    def handle(
        self,
        events: Sequence[ListeningEvent],
        *,
        sources: Sequence[str] | None = None,
        invalid: Sequence[DeadLetter] = (),
    ) -> HandleReport:
        """Store new events in one transaction, then push each newly stored one to the online
        features. Rejected events (unknown track) and the `invalid` messages are stored in
        dead_events in the same transaction; `sources` names where each event came from.
        Events the database refuses for their data are dead-lettered and the others stored.
        Raises only when the database is unavailable (nothing is stored then)."""
        if sources is None:
            sources = ["direct"] * len(events)
        try:
            return self._store(events, sources, invalid)
        except Exception as exc:
            if not refused_for_its_data(exc):
                raise
            log.warning("the database refused a batch of %d: %s", len(events), one_line(exc))
        report = self._store([], [], invalid) if invalid else HandleReport()
        report.add(self._isolate(events, sources))
        return report

    def _isolate(self, events: Sequence[ListeningEvent], sources: Sequence[str]) -> HandleReport:
        """Store what the database takes of a batch it refused: halves, recursively, until the
        refused events are alone (log2 of the batch's size extra transactions per poison
        event); those are dead-lettered."""
        try:
            return self._store(events, sources, ())
        except Exception as exc:
            if not refused_for_its_data(exc):
                raise
            if len(events) == 1:
                log.error("dead-lettered event %s: %s", events[0].event_id, one_line(exc))
                report = self._store([], [], [DeadLetter.refused(sources[0], events[0], exc)])
                report.invalid, report.refused = 0, 1
                return report
        mid = len(events) // 2
        report = self._isolate(events[:mid], sources[:mid])
        report.add(self._isolate(events[mid:], sources[mid:]))
        return report

    def _store(
        self,
        events: Sequence[ListeningEvent],
        sources: Sequence[str],
        invalid: Sequence[DeadLetter],
    ) -> HandleReport:
        report = HandleReport(invalid=len(invalid))
        if not events and not invalid:
            return report
        first: dict[uuid.UUID, tuple[ListeningEvent, str]] = {}
        for e, source in zip(events, sources, strict=True):
            first.setdefault(e.event_id, (e, source))
        # In arrival order: a listener's events are pushed in order.
        unique = [e for e, _ in first.values()]
        report.duplicates = len(events) - len(unique)
        with self.engine.begin() as conn:
            # Created first: on Postgres it takes the writers' lock, so nothing can store one
            # of these events between the check below and the insert.
            writer = BatchWriter(conn)
            ids = [e.event_id for e in unique]
            stored = set(conn.scalars(select(EventRow.event_id).where(EventRow.event_id.in_(ids))))
            uris = {e.track_id for e in unique}
            known = set(conn.scalars(select(Track.spotify_uri).where(Track.spotify_uri.in_(uris))))
            new = [e for e in unique if e.event_id not in stored and e.track_id in known]
            rejected = [e for e in unique if e.event_id not in stored and e.track_id not in known]
            writer.write(
                CatalogBatch(
                    users={e.user_id: None for e in new},
                    events=[EventRecord.from_event(e) for e in new],
                )
            )
            dead = [
                DeadLetter(
                    first[e.event_id][1],
                    _payload(e),
                    f"track {e.track_id} is not in the catalog",
                    e.event_id,
                )
                for e in rejected
            ]
            _store_dead(conn, [*dead, *invalid])
        report.duplicates += len(stored)
        report.stored, report.rejected = len(new), len(rejected)
        if rejected:
            log.warning(
                "dead-lettered %d event(s) for tracks not in the catalog, e.g. %s (event %s)",
                len(rejected),
                rejected[0].track_id,
                rejected[0].event_id,
            )
        report.push_failures = self._push(new)
        return report

    def _push(self, events: list[ListeningEvent]) -> int:
        """Failures are logged, not raised: the events are committed and a redelivery would not
        push them again; the next feature batch run recomputes the values exactly. Returns the
        events whose fresh features were not updated (the batch is pushed as one)."""
        if self.features is None or not events:
            return 0
        from feature_store.push import push_events  # feast: slow to import, needed only here

        try:
            push_events(self.features, events, self.engine)
        except Exception:
            log.exception(
                "fresh features not updated for %d event(s), e.g. %s",
                len(events),
                events[0].event_id,
            )
            return len(events)
        return 0


def _store_dead(conn: Connection, dead: Sequence[DeadLetter]) -> None:
    """Insert the dead letters not stored yet (the caller holds the writers' lock)."""
    if not dead:
        return
    ids = {d.event_id for d in dead if d.event_id is not None}
    known_ids = set(
        conn.scalars(select(DEAD_EVENTS.c.event_id).where(DEAD_EVENTS.c.event_id.in_(ids)))
        if ids
        else ()
    )
    plain = {d.source for d in dead if d.event_id is None}
    known_sources = set(
        conn.scalars(
            select(DEAD_EVENTS.c.source).where(
                DEAD_EVENTS.c.source.in_(plain), DEAD_EVENTS.c.event_id.is_(None)
            )
        )
        if plain
        else ()
    )
    rows: dict[object, dict[str, Any]] = {}
    for d in dead:
        key = d.event_id if d.event_id is not None else ("source", d.source)
        if (
            key in rows
            or d.event_id in known_ids
            or (d.event_id is None and d.source in known_sources)
        ):
            continue
        rows[key] = {
            "source": d.source,
            "event_id": d.event_id,
            "payload": d.payload,
            "reason": d.reason,
        }
    if rows:
        conn.execute(insert(DEAD_EVENTS), list(rows.values()))


def stop_on_signals(stop: Callable[[], None]) -> None:
    """On SIGTERM or SIGINT call `stop` (a consumer finishes and commits its batch, then
    returns); a second signal of the same kind ends the process at once."""

    def handler(signum: int, frame: object) -> None:
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)
        stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


class InProcessConsumer:
    """A daemon thread that drains an InProcessTransport through the sink, acknowledging each
    batch after the sink handled it. A failing sink (database down) is retried, never skipped."""

    def __init__(
        self,
        transport: InProcessTransport,
        sink: FeedbackSink,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.2,
        retry_seconds: float = 1.0,
    ) -> None:
        self.transport = transport
        self.sink = sink
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.totals = HandleReport()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="feedback-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self, wait_seconds: float = 0.0) -> HandleReport | None:
        """Handle one batch (None when the queue is empty)."""
        batch = self.transport.receive(self.batch_size, wait_seconds=wait_seconds)
        if not batch:
            return None
        report = self.sink.handle(
            [q.event for q in batch], sources=[f"in-process:{q.seq}" for q in batch]
        )
        self.transport.ack([q.seq for q in batch])
        self.totals.add(report)
        return report

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event is handled; True if so within the timeout. Without the
        thread running, handles the batches here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                if self.run_once() is None:
                    return True
            elif self.transport.pending() == 0:
                return True
            else:
                time.sleep(0.02)
        return self.transport.pending() == 0

    def _run(self) -> None:
        database = Retrying("feedback consumer", "database", maximum=self.retry_seconds)
        while not self._stopping.is_set():
            try:
                self.run_once(wait_seconds=self.poll_seconds)
            except Exception as exc:
                self._stopping.wait(database.failed(exc))
            else:
                database.succeeded()


class KafkaConsumerLoop:
    """Consumes the feedback topic into the sink. Offsets are committed only after the sink
    handled a batch; a batch the sink failed on is read again from its first offsets."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        sink: FeedbackSink,
        *,
        api_version: tuple[int, ...] | None = None,
        group_id: str = GROUP_ID,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        retry_seconds: float = 1.0,
        consumer_config: Mapping[str, Any] | None = None,
        heartbeat_path: Path | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.sink = sink
        self.api_version = api_version
        self.group_id = group_id
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.consumer_config = dict(consumer_config or {})  # more KafkaConsumer settings (TLS…)
        # Touched after every poll: a liveness probe that finds it stale knows the loop is stuck
        # (a process without an HTTP port has no other way to say it is alive).
        self.heartbeat_path = heartbeat_path
        self.totals = HandleReport()
        self.skipped = 0  # messages that were not valid events (dead-lettered)
        self._stopping = threading.Event()
        self._consumer: KafkaConsumer | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, sink: FeedbackSink, heartbeat_path: Path | None = None
    ) -> KafkaConsumerLoop:
        if not settings.kafka_bootstrap_servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set")
        return cls(
            settings.kafka_bootstrap_servers,
            settings.kafka_feedback_topic,
            sink,
            heartbeat_path=heartbeat_path,
        )

    def run(self, max_batches: int | None = None) -> int:
        """Consume until stop() (or max_batches non-empty batches); returns the batches handled."""
        from kafka.errors import KafkaError

        kafka = Retrying("feedback consumer", "kafka", maximum=self.retry_seconds)
        database = Retrying("feedback consumer", "database", maximum=self.retry_seconds)
        handled = 0
        while not self._stopping.is_set() and (max_batches is None or handled < max_batches):
            if self.heartbeat_path is not None:
                self.heartbeat_path.touch()
            try:
                consumer = self._connect()
                polled = consumer.poll(
                    timeout_ms=int(self.poll_seconds * 1000), max_records=self.batch_size
                )
            except KafkaError as exc:  # no broker yet: the loop stays alive and says so once
                self._stopping.wait(kafka.failed(exc))
                continue
            kafka.succeeded()
            if not polled:
                continue
            events, sources, invalid = [], [], []
            for tp, records in polled.items():
                for r in records:
                    source = f"kafka:{tp.topic}/{tp.partition}/{r.offset}"
                    try:
                        events.append(decode(r.value))
                        sources.append(source)
                    except (ValueError, TypeError) as exc:
                        invalid.append(DeadLetter.undecodable(source, r.value, exc))
                        log.warning("dead-lettered bad message %s: %s", source, one_line(exc))
            try:
                report = self.sink.handle(events, sources=sources, invalid=invalid)
            except Exception as exc:  # the database is unavailable: read the batch again
                for tp, records in polled.items():
                    consumer.seek(tp, records[0].offset)
                self._stopping.wait(database.failed(exc))
                continue
            database.succeeded()
            self.totals.add(report)
            self.skipped += len(invalid)
            try:
                consumer.commit()
            except KafkaError as exc:
                # E.g. a rebalance moved the partitions: their new owner redelivers the batch,
                # which the idempotent sink absorbs.
                log.warning("offset commit failed: %s", exc)
            handled += 1
        return handled

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _connect(self) -> KafkaConsumer:
        from kafka import KafkaConsumer

        if self._consumer is None:
            config: dict[str, Any] = {
                "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",")],
                "group_id": self.group_id,
                "enable_auto_commit": False,
                "auto_offset_reset": "earliest",
                "api_version": self.api_version,
                "max_poll_records": self.batch_size,
            }
            # Ours win: committing only handled batches depends on them.
            self._consumer = KafkaConsumer(self.topic, **{**self.consumer_config, **config})
        return self._consumer
