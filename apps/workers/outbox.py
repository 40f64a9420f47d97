"""The outbox: Kafka down does not mean feedback lost. OutboxTransport hands events Kafka does
not acknowledge to the event_outbox table in the main database; OutboxRelay (`musicrec
relay-outbox`) publishes them to Kafka later, oldest first, and deletes each once acknowledged.
`transport_for` picks the API's transport: Kafka behind the outbox, or the in-process queue."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from prometheus_client import Gauge
from sqlalchemy import Engine, Table, delete, false, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from apps.workers.transport import (
    EventTransport,
    InProcessTransport,
    KafkaTransport,
    TransportError,
    decode,
    encode,
)
from musicrec.config import Settings
from musicrec.db.engine import make_engine
from musicrec.db.models import EventOutbox
from musicrec.errors import one_line
from musicrec.events import ListeningEvent
from musicrec.retry import Retrying

log = logging.getLogger(__name__)

OUTBOX = cast(Table, EventOutbox.__table__)


BREAKER_OPEN = Gauge(
    "musicrec_outbox_kafka_breaker_open",
    "1 while Kafka is taken for down and feedback goes straight to the outbox",
)


class KafkaBreaker:
    """Whether to try Kafka at all. Closed: yes. Opened by a failed publish: no, every request
    goes straight to the outbox (a few ms) instead of waiting for Kafka's timeout, while a
    background thread probes Kafka every `probe_seconds` and closes it once Kafka answers.
    Each change of state is logged once."""

    def __init__(self, kafka: KafkaTransport, probe_seconds: float) -> None:
        self.kafka = kafka
        self.probe_seconds = probe_seconds
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self.reason = ""
        self._stopping = threading.Event()

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def status(self) -> str:
        if self._opened_at is None:
            return "kafka"
        since = time.monotonic() - self._opened_at
        return f"degraded: Kafka unavailable for {since:.0f} s, feedback goes to the outbox"

    def trip(self, reason: str) -> None:
        with self._lock:
            if self._opened_at is not None:
                return
            self._opened_at, self.reason = time.monotonic(), reason
        BREAKER_OPEN.set(1)
        log.warning("Kafka unavailable, feedback goes to the outbox until it is back: %s", reason)
        threading.Thread(target=self._probe, name="kafka-probe", daemon=True).start()

    def _probe(self) -> None:
        while not self._stopping.wait(self.probe_seconds):
            try:
                self.kafka.probe()
            except TransportError:
                continue  # still down: said once already
            with self._lock:
                opened_at, self._opened_at = self._opened_at, None
            BREAKER_OPEN.set(0)
            down = time.monotonic() - (opened_at or time.monotonic())
            log.info("Kafka is back after %.0f s: feedback goes to Kafka again", down)
            return

    def close(self) -> None:
        self._stopping.set()


class OutboxTransport:
    """Kafka first; when Kafka does not acknowledge, the events go to the event_outbox table in
    one transaction and publish returns normally (they are durably handed over, and
    OutboxRelay publishes them later). Raises TransportError only when both fail. Events of a
    batch Kafka took in part (or delivered after the timeout) reach Kafka twice: the sink
    stores them once, by event_id.

    After a Kafka failure, a breaker (KafkaBreaker) sends requests straight to the outbox until
    Kafka answers again: an outage costs the requests in flight when it began one Kafka
    timeout, and no request after them any.

    A listener's events keep their order: while the outbox holds events of a listener in the
    batch, the batch goes to the outbox behind them instead of overtaking them on Kafka."""

    def __init__(
        self,
        kafka: KafkaTransport,
        engine: Engine,
        *,
        owns_engine: bool = False,
        breaker_seconds: float = 10.0,
        check_seconds: float = 2.0,
    ):
        self.kafka = kafka
        self.engine = engine
        self.owns_engine = owns_engine
        self.breaker = KafkaBreaker(kafka, breaker_seconds)
        self.check_seconds = check_seconds
        # The ordering check's queries, abandoned past check_seconds (a hung database).
        self._checks = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="outbox")

    def publish(self, events: Sequence[ListeningEvent]) -> None:
        if not events:
            return
        if self.breaker.is_open:
            reason = f"Kafka unavailable ({self.breaker.reason})"
        else:
            try:
                if not self._queued_behind(events):
                    self.kafka.publish(events)
                    return
                reason = "earlier events of these listeners are in the outbox"
            except TransportError as exc:
                reason = str(exc)
                self.breaker.trip(reason)
        try:
            added = write_outbox(self.engine, events)
        except SQLAlchemyError as exc:
            raise TransportError(
                f"{reason}; and the outbox did not store them: {one_line(exc)}"
            ) from exc
        if not self.breaker.is_open:  # while it is, the breaker said so once
            log.warning("%d event(s) to the outbox (%d new): %s", len(events), added, reason)

    def status(self) -> str:
        return self.breaker.status()

    def _queued_behind(self, events: Sequence[ListeningEvent]) -> bool:
        """Whether the outbox holds events of these listeners, asked within check_seconds: a
        database that hangs must not hold feedback that Kafka can take (the order of a
        listener's events is then not checked, and the warning says so)."""
        users = {e.user_id for e in events}
        try:
            return self._checks.submit(self._holds_any, users).result(self.check_seconds)
        except concurrent.futures.TimeoutError:
            log.warning("outbox not checked: no answer within %g s", self.check_seconds)
        except SQLAlchemyError as exc:  # no outbox to be behind: Kafka alone decides
            log.warning("outbox not checked: %s", one_line(exc))
        return False

    def _holds_any(self, users: set[str]) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(OUTBOX.c.id).where(OUTBOX.c.user_id.in_(users)).limit(1)
            ).first()
        return found is not None

    def close(self) -> None:
        self.breaker.close()
        self._checks.shutdown(wait=False)
        self.kafka.close()
        if self.owns_engine:
            self.engine.dispose()


def write_outbox(engine: Engine, events: Sequence[ListeningEvent]) -> int:
    """Store the events in the outbox in one transaction, in their order; an event_id already
    there (a client's retry) is not stored again. Returns the rows added."""
    rows = {
        e.event_id: {"event_id": e.event_id, "user_id": e.user_id, "payload": encode(e).decode()}
        for e in events
    }
    with engine.begin() as conn:
        # The two databases the project runs on (Settings.database_backend).
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(OUTBOX).on_conflict_do_nothing(index_elements=["event_id"])
        result = conn.execute(stmt, list(rows.values()))
    return max(result.rowcount, 0)


class OutboxRelay:
    """Publishes the outbox to Kafka, oldest row first, and deletes each row only after Kafka
    acknowledged it, in the transaction that read it.

    Guarantee: no row is lost; a row is resent only if the relay dies (or its database
    connection drops) between Kafka's ack and the delete's commit, and the sink stores it once
    (idempotent by event_id). On Postgres the rows are locked (FOR UPDATE SKIP LOCKED), so
    relays running at once never send the same row, and a relay leaves alone the listeners
    whose earlier rows another relay holds: each listener's events reach Kafka in outbox order.
    On SQLite the transaction takes the database's write lock first: relays take turns.

    `kafka` must publish to Kafka only (a KafkaTransport), not to the outbox again."""

    def __init__(self, engine: Engine, kafka: EventTransport) -> None:
        self.engine = engine
        self.kafka = kafka
        self.sent = 0
        self._stopping = threading.Event()

    def run_once(self, limit: int = 500) -> int:
        """Publish up to `limit` of the oldest rows; returns how many were sent and deleted.
        Raises TransportError when Kafka did not acknowledge them (they stay in the outbox)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # take the write lock before reading
                conn.execute(delete(OUTBOX).where(false()))
            rows = conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.user_id, OUTBOX.c.payload)
                .order_by(OUTBOX.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            # Rows of a listener whose earlier rows are locked by another relay wait.
            first: dict[str, int] = {}
            for row in rows:
                first.setdefault(row.user_id, row.id)
            oldest = dict(
                conn.execute(
                    select(OUTBOX.c.user_id, func.min(OUTBOX.c.id))
                    .where(OUTBOX.c.user_id.in_(first))
                    .group_by(OUTBOX.c.user_id)
                ).all()
            )
            mine = [r for r in rows if oldest[r.user_id] == first[r.user_id]]
            if not mine:
                return 0
            self.kafka.publish([decode(r.payload) for r in mine])
            conn.execute(delete(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in mine])))
        self.sent += len(mine)
        return len(mine)

    def run(
        self, poll_seconds: float = 1.0, limit: int = 500, heartbeat_path: Path | None = None
    ) -> int:
        """Relay until stop(): batches back to back while there are rows, then a poll every
        poll_seconds. A failure (Kafka or the database down) is logged once and retried with
        backoff, up to poll_seconds apart, until it works again (logged once too).
        heartbeat_path is touched every round, for a liveness probe. Returns the rows sent."""
        kafka = Retrying("outbox relay", "kafka", maximum=poll_seconds)
        database = Retrying("outbox relay", "database", maximum=poll_seconds)
        while not self._stopping.is_set():
            if heartbeat_path is not None:
                heartbeat_path.touch()
            try:
                sent = self.run_once(limit)
            except TransportError as exc:
                self._stopping.wait(kafka.failed(exc))
                continue
            except Exception as exc:  # the database, or anything else: never a dead relay
                self._stopping.wait(database.failed(exc))
                continue
            database.succeeded()
            if sent:
                kafka.succeeded()
            if not sent:
                self._stopping.wait(poll_seconds)
        return self.sent

    def stop(self) -> None:
        self._stopping.set()


def transport_for(settings: Settings, engine: Engine | None = None) -> EventTransport:
    """Kafka with the outbox in the main database (`engine`, or one of its own) as fallback
    when Kafka is configured; the in-process queue otherwise."""
    if settings.kafka_bootstrap_servers:
        kafka = KafkaTransport(
            settings.kafka_bootstrap_servers,
            settings.kafka_feedback_topic,
            timeout_seconds=settings.kafka_publish_timeout_seconds,
        )
        options: dict[str, Any] = {
            "breaker_seconds": settings.kafka_breaker_seconds,
            "check_seconds": settings.database_timeout_seconds,
        }
        if engine is not None:
            return OutboxTransport(kafka, engine, **options)
        own = make_engine(settings=settings, serving=True)
        return OutboxTransport(kafka, own, owns_engine=True, **options)
    assert settings.event_queue_path is not None  # derived by Settings
    return InProcessTransport(
        settings.event_queue_path, timeout_seconds=settings.event_publish_timeout_seconds
    )
