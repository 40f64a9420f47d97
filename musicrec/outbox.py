"""The outbox: Kafka down does not mean feedback lost. OutboxTransport hands events Kafka does
not acknowledge to the event_outbox table in the main database; OutboxRelay (`musicrec
relay-outbox`) publishes them to Kafka later, oldest first, and deletes each once acknowledged."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from sqlalchemy import Engine, Table, delete, false, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from musicrec.db.models import EventOutbox
from musicrec.events import ListeningEvent
from musicrec.transport import (
    EventTransport,
    KafkaTransport,
    TransportError,
    decode,
    encode,
    one_line,
)

log = logging.getLogger(__name__)

OUTBOX = cast(Table, EventOutbox.__table__)


class OutboxTransport:
    """Kafka first; when Kafka does not acknowledge, the events go to the event_outbox table in
    one transaction and publish returns normally (they are durably handed over, and
    OutboxRelay publishes them later). Raises TransportError only when both fail. Events of a
    batch Kafka took in part (or delivered after the timeout) reach Kafka twice: the sink
    stores them once, by event_id.

    A listener's events keep their order: while the outbox holds events of a listener in the
    batch, the batch goes to the outbox behind them instead of overtaking them on Kafka."""

    def __init__(self, kafka: KafkaTransport, engine: Engine, *, owns_engine: bool = False):
        self.kafka = kafka
        self.engine = engine
        self.owns_engine = owns_engine

    def publish(self, events: Sequence[ListeningEvent]) -> None:
        if not events:
            return
        try:
            if not self._queued_behind(events):
                self.kafka.publish(events)
                return
            reason = "earlier events of these listeners are in the outbox"
        except TransportError as exc:
            reason = str(exc)
        try:
            added = write_outbox(self.engine, events)
        except SQLAlchemyError as exc:
            raise TransportError(
                f"{reason}; and the outbox did not store them: {one_line(exc)}"
            ) from exc
        log.warning("%d event(s) to the outbox (%d new): %s", len(events), added, reason)

    def _queued_behind(self, events: Sequence[ListeningEvent]) -> bool:
        users = {e.user_id for e in events}
        try:
            with self.engine.connect() as conn:
                found = conn.execute(
                    select(OUTBOX.c.id).where(OUTBOX.c.user_id.in_(users)).limit(1)
                ).first()
        except SQLAlchemyError as exc:  # no outbox to be behind: Kafka alone decides
            log.warning("outbox not checked: %s", one_line(exc))
            return False
        return found is not None

    def close(self) -> None:
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
        poll_seconds; a failure (Kafka or the database down) is logged and retried after
        poll_seconds. heartbeat_path is touched every round, for a liveness probe. Returns the
        rows sent."""
        while not self._stopping.is_set():
            if heartbeat_path is not None:
                heartbeat_path.touch()
            try:
                if self.run_once(limit):
                    continue
            except Exception as exc:
                log.warning("outbox relay: %s; retrying in %g s", one_line(exc), poll_seconds)
            self._stopping.wait(poll_seconds)
        return self.sent

    def stop(self) -> None:
        self._stopping.set()
