"""How feedback events travel from the API to the sink that stores them.

`publish` returns only once every event is durably stored by the transport, so the API can
answer 202 and a crash afterwards loses nothing; it raises TransportError when that does not
happen within the timeout (the API answers 503). Delivery is at least once: consumers may see an
event twice, and the sink (apps.workers.feedback) stores and counts it once by its event_id.

- KafkaTransport (services mode): the topic settings.kafka_feedback_topic, keyed by user_id so
  one listener's events stay in order on one partition. Behind the API it is wrapped in an
  OutboxTransport (apps.workers.outbox, which also picks the API's transport: `transport_for`):
  events Kafka does not take go to the event_outbox table, and OutboxRelay
  (`musicrec relay-outbox`) publishes them later.
- InProcessTransport (embedded default): a queue in a SQLite file that a consumer thread in the
  same process drains (apps.workers.feedback.InProcessConsumer).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from musicrec.errors import one_line
from musicrec.events import ListeningEvent

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = logging.getLogger(__name__)

# Producer retries of a failed send; delivery_timeout_ms (the publish timeout) bounds them too.
RETRIES = 10


class TransportError(RuntimeError):
    """Events were not durably stored; the caller may retry them all (they are idempotent)."""


class EventTransport(Protocol):
    def publish(self, events: Sequence[ListeningEvent]) -> None: ...

    def status(self) -> str:
        """For /readyz: the transport, or "degraded: <why>" while it works around an outage."""
        ...

    def close(self) -> None: ...


def encode(event: ListeningEvent) -> bytes:
    return event.model_dump_json().encode()


def decode(payload: bytes | str) -> ListeningEvent:
    """Raises ValueError (pydantic's ValidationError) for anything but a valid event."""
    return ListeningEvent.model_validate_json(payload)


class KafkaTransport:
    """kafka-python producer: acks=all, idempotent retries within the publish timeout, and a
    bounded buffer (kafka-python 3 has no buffer_memory): a publish that would leave more than
    max_buffered events unacknowledged fails at once instead of queueing in memory. It connects
    on the first publish, so an API whose broker is down still starts."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        timeout_seconds: float = 5.0,
        api_version: tuple[int, ...] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        max_buffered: int = 10_000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_seconds = timeout_seconds
        self.api_version = api_version
        self.producer_config = dict(producer_config or {})  # more KafkaProducer settings (TLS…)
        self.max_buffered = max_buffered
        self._buffered = 0  # events sent to the producer and not acknowledged or failed yet
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        # Its own lock: the producer's I/O thread settles futures while close() holds _lock.
        self._buffer_lock = threading.Lock()

    def publish(self, events: Sequence[ListeningEvent]) -> None:
        from kafka.errors import KafkaError

        if not events:
            return
        deadline = time.monotonic() + self.timeout_seconds
        with self._buffer_lock:
            if self._buffered + len(events) > self.max_buffered:
                raise TransportError(
                    f"Kafka at {self.bootstrap_servers}: {self._buffered} event(s) still wait for"
                    f" an acknowledgement (at most {self.max_buffered} are buffered)"
                )
            self._buffered += len(events)
        sent = 0
        try:
            producer = self._connect()
            futures = []
            for e in events:
                future = producer.send(self.topic, key=e.user_id.encode(), value=encode(e))
                future.add_both(self._settled)
                futures.append(future)
                sent += 1
            producer.flush(timeout=max(deadline - time.monotonic(), 0.0))
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.0))
        except (KafkaError, OSError) as exc:
            raise TransportError(
                f"Kafka at {self.bootstrap_servers} did not acknowledge {len(events)} event(s)"
                f" within {self.timeout_seconds:g} s: {one_line(exc)}"
            ) from exc
        finally:
            self._settled(None, count=len(events) - sent)  # those never handed to the producer

    def probe(self) -> None:
        """Raise TransportError unless Kafka answers a metadata request for the topic within
        the publish timeout."""
        from kafka.errors import KafkaError

        try:
            self._connect().partitions_for(self.topic)
        except (KafkaError, OSError) as exc:
            raise TransportError(f"Kafka at {self.bootstrap_servers}: {one_line(exc)}") from exc

    def status(self) -> str:
        return "kafka"

    def _settled(self, _result: object, *, count: int = 1) -> None:
        with self._buffer_lock:
            self._buffered -= count

    def _connect(self) -> KafkaProducer:
        from kafka import KafkaProducer

        with self._lock:
            if self._producer is None:
                ms = max(int(self.timeout_seconds * 1000), 1)
                config: dict[str, Any] = {
                    "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",")],
                    "acks": "all",
                    "enable_idempotence": True,  # retries neither duplicate nor reorder
                    "retries": RETRIES,
                    "retry_backoff_ms": 100,
                    "api_version": self.api_version,
                    # No call may block past the publish timeout (metadata, bootstrap).
                    "max_block_ms": ms,
                    "bootstrap_timeout_ms": ms,
                    "request_timeout_ms": ms,
                    "linger_ms": 2,
                    # A record not acknowledged by then fails (the smallest value allowed), so
                    # the buffer drains even while the broker is away.
                    "delivery_timeout_ms": ms + 2,
                }
                # Ours win: they carry the delivery guarantee and the timeout.
                self._producer = KafkaProducer(**{**self.producer_config, **config})
            return self._producer

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=self.timeout_seconds)
                self._producer = None


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    seq: int  # queue position; acknowledge by it
    event: ListeningEvent


_SCHEMA = """
CREATE TABLE IF NOT EXISTS queued_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_events (
    seq INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    failed_at REAL NOT NULL
);
"""


class InProcessTransport:
    """A durable FIFO queue in a SQLite file (WAL, synchronous=FULL: a published event survives
    a crash of the process or the machine). Safe to share between threads; other processes may
    publish to the same file too. Meant for one consumer: events stay queued until acknowledged,
    and `receive` hands out the oldest ones again until they are."""

    def __init__(self, path: Path, *, timeout_seconds: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout_seconds = timeout_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection behind a lock: SQLite takes one writer at a time anyway. `timeout` is
        # how long a statement waits for another process's lock on the file.
        self._conn = sqlite3.connect(
            self.path, timeout=timeout_seconds, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._published = threading.Condition()

    def publish(self, events: Sequence[ListeningEvent]) -> None:
        if not events:
            return
        now = time.time()
        rows = [(str(e.event_id), encode(e).decode(), now) for e in events]
        try:
            self._write(
                "INSERT INTO queued_events (event_id, payload, enqueued_at) VALUES (?, ?, ?)", rows
            )
        except (sqlite3.Error, TimeoutError) as exc:
            raise TransportError(
                f"event queue {self.path} did not store {len(events)} event(s): {one_line(exc)}"
            ) from exc
        with self._published:
            self._published.notify_all()

    def receive(self, limit: int = 500, *, wait_seconds: float = 0.0) -> list[QueuedEvent]:
        """The oldest unacknowledged events (waiting up to wait_seconds for one to arrive).
        Entries that are not valid events are moved to the dead_events table and logged."""
        batch = self._read(limit)
        if not batch and wait_seconds > 0:
            with self._published:
                self._published.wait(wait_seconds)
            batch = self._read(limit)
        good, dead = [], []
        for seq, payload in batch:
            try:
                good.append(QueuedEvent(seq, decode(payload)))
            except ValidationError as exc:
                dead.append((seq, payload, one_line(exc), time.time()))
        if dead:
            log.error("event queue: moved %d invalid entries to dead_events", len(dead))
            self._write("INSERT OR REPLACE INTO dead_events VALUES (?, ?, ?, ?)", dead)
            self.ack([seq for seq, *_ in dead])
        return good

    def status(self) -> str:
        return "in-process"

    def ack(self, seqs: Iterable[int]) -> None:
        """Remove handled events from the queue."""
        self._write("DELETE FROM queued_events WHERE seq = ?", [(seq,) for seq in seqs])

    def pending(self) -> int:
        """Events published and not yet acknowledged."""
        with self._locked(time.monotonic() + self.timeout_seconds):
            (count,) = self._conn.execute("SELECT count(*) FROM queued_events").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _read(self, limit: int) -> list[tuple[int, str]]:
        with self._locked(time.monotonic() + self.timeout_seconds):
            return self._conn.execute(
                "SELECT seq, payload FROM queued_events ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """One transaction, within the timeout in all: waiting for this process's other threads
        and then for other processes' locks on the file."""
        deadline = time.monotonic() + self.timeout_seconds
        with self._locked(deadline):
            remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            self._conn.execute(f"PRAGMA busy_timeout = {remaining_ms}")
            # IMMEDIATE: take the file's write lock up front rather than fail on an upgrade.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _locked(self, deadline: float) -> Iterator[None]:
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise TimeoutError(f"queue busy for more than {self.timeout_seconds:g} s")
        try:
            yield
        finally:
            self._lock.release()
