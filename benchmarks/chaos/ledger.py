"""Where the run's events ended up, read from the stores directly (not through the proxies):
listening_events and dead_events, the outbox (also sampled while the run goes), the topic past
the sink group's committed offsets, and the listeners' play counts in the online store; the
drain that waits for every acknowledged event to arrive."""

from __future__ import annotations

import bisect
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from benchmarks.chaos.plan import LISTENERS, log
from benchmarks.chaos.stack import Stack


@dataclass
class Ledger:
    """Where the run's events ended up, after the drain."""

    stored: dict[str, float]  # event_id -> stored at (listening_events.created_at, epoch s)
    dead: dict[str, float]  # event_id -> dead-lettered at
    rows: dict[str, int]  # event_id -> rows in listening_events + dead_events
    pending: set[str]  # still in Kafka past the sink's committed offsets, or in the outbox
    times: list[float]  # every stored_at, sorted (the database's inserts)

    def flow_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first event stored after it."""
        i = bisect.bisect_left(self.times, moment)
        return round(self.times[i] - moment, 2) if i < len(self.times) else None


def stored_events(
    engine: Any, since: float
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """(event_id -> stored at, event_id -> dead-lettered at, event_id -> rows in
    listening_events + dead_events) for the events stored since `since` (epoch seconds)."""
    from sqlalchemy import select

    from musicrec.db.models import DeadEvent
    from musicrec.db.models import ListeningEvent as EventRow

    start = datetime.fromtimestamp(since, UTC)
    stored: dict[str, float] = {}
    dead: dict[str, float] = {}
    rows: dict[str, int] = {}
    with engine.connect() as conn:
        for event_id, at in conn.execute(
            select(EventRow.event_id, EventRow.created_at).where(EventRow.created_at >= start)
        ):
            stored[str(event_id)] = at.timestamp()
            rows[str(event_id)] = rows.get(str(event_id), 0) + 1
        for event_id, at in conn.execute(
            select(DeadEvent.event_id, DeadEvent.received_at).where(
                DeadEvent.event_id.is_not(None), DeadEvent.received_at >= start
            )
        ):
            dead[str(event_id)] = at.timestamp()
            rows[str(event_id)] = rows.get(str(event_id), 0) + 1
    return stored, dead, rows


def stored_since(engine: Any, since: float) -> int:
    from sqlalchemy import func, select

    from musicrec.db.models import ListeningEvent as EventRow

    start = datetime.fromtimestamp(since, UTC)
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(EventRow.created_at >= start)) or 0)


def outbox_ids(engine: Any) -> set[str]:
    from sqlalchemy import select

    from musicrec.db.models import EventOutbox

    with engine.connect() as conn:
        return {str(i) for i in conn.scalars(select(EventOutbox.event_id))}


def outbox_rows(engine: Any) -> int:
    from sqlalchemy import func, select

    from musicrec.db.models import EventOutbox

    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(EventOutbox)) or 0)


class Monitor:
    """Samples the outbox's size every half second (directly, not through the proxy)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.samples: list[tuple[float, int]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.wait(0.5):
            try:
                self.samples.append((time.time(), outbox_rows(self.engine)))
            except Exception:  # the harness's own view: never fatal
                pass

    def peak(self, start: float, end: float) -> int:
        return max((n for t, n in self.samples if start <= t < end), default=0)


def drain(stack: Stack, acked: set[str], timeout: float) -> tuple[dict[str, Any], set[str]]:
    """Wait until every acknowledged event is stored (or dead-lettered) and the outbox is empty,
    at most `timeout`; returns the figures and the events still pending (in Kafka past the
    sink's committed offsets, or in the outbox)."""
    start = time.time()
    before = stored_since(stack.engine, 0)
    while True:
        stored, dead, _ = stored_events(stack.engine, 0)
        missing = len(acked - set(stored) - set(dead))
        outbox = outbox_rows(stack.engine)
        if (missing == 0 and outbox == 0) or time.time() - start > timeout:
            break
        stack.restart_exited()  # still supervised
        time.sleep(0.5)
    seconds = time.time() - start
    in_kafka = kafka_pending(stack)
    in_outbox = outbox_ids(stack.engine)
    figures = {
        "seconds": round(seconds, 2),
        "complete": missing == 0 and outbox == 0,
        "events_stored_meanwhile": stored_since(stack.engine, 0) - before,
        "acknowledged_not_stored_at_the_end": missing,
        "outbox_rows_at_the_end": len(in_outbox),
        "kafka_messages_past_committed_offsets_at_the_end": None
        if in_kafka is None
        else len(in_kafka),
    }
    return figures, (in_kafka or set()) | in_outbox


def kafka_pending(stack: Stack) -> set[str] | None:
    """The event_ids on the topic past the sink group's committed offsets (None: not known):
    events not stored at the end but still there are late, not lost."""
    from confluent_kafka import Consumer, TopicPartition

    from apps.workers.feedback import GROUP_ID

    # The sink's group id, to read its committed offsets; assign() never joins the group and
    # nothing is committed.
    probe = Consumer(
        {
            "bootstrap.servers": stack.kafka.bootstrap,
            "group.id": GROUP_ID,
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        metadata = probe.list_topics(stack.topic, timeout=10).topics[stack.topic]
        partitions = [TopicPartition(stack.topic, p) for p in metadata.partitions]
        ids: set[str] = set()
        for tp in probe.committed(partitions, timeout=10):
            low, high = probe.get_watermark_offsets(tp, timeout=10)
            offset = tp.offset if tp.offset >= 0 else low
            if offset >= high:
                continue
            probe.assign([TopicPartition(stack.topic, tp.partition, offset)])
            while offset < high:
                message = probe.poll(5)
                if message is None:
                    return None
                at, value = message.offset(), message.value()
                if message.error() or at is None:
                    continue
                offset = at + 1
                try:
                    ids.add(str(json.loads(value or b"")["event_id"]))
                except (ValueError, KeyError, TypeError):
                    pass
        return ids
    except Exception as exc:
        log(f"Kafka not read at the end: {exc}")
        return None
    finally:
        probe.close()


def online_plays(stack: Stack, base: dict[str, int], since: float) -> dict[str, Any]:
    """Listeners' play counts in the online store against the batch value plus the plays
    stored since `since` (the sink pushes each stored event once): a difference is a push
    lost (negative) or repeated (positive)."""
    from sqlalchemy import func, select

    from feature_store.online import OnlineFeatures
    from musicrec.db.models import ListeningEvent as EventRow
    from musicrec.db.models import User

    with stack.engine.connect() as conn:
        counts = dict(
            conn.execute(
                select(User.external_id, func.count())
                .join(EventRow, EventRow.user_id == User.id)
                .where(EventRow.created_at >= datetime.fromtimestamp(since, UTC))
                .group_by(User.external_id)
            ).all()
        )
    features = OnlineFeatures.for_settings(stack.settings)
    missing = extra = 0
    for user, n in counts.items():
        online = features.user_features(user, features=["user_listening_stats__plays"])
        diff = int(online["user_listening_stats__plays"]) - (base.get(user, 0) + int(n))
        missing += max(-diff, 0)
        extra += max(diff, 0)
    return {
        "listeners": len(counts),
        "plays_stored": int(sum(counts.values())),
        "plays_missing_online": missing,
        "plays_counted_twice_online": extra,
    }


def base_plays(stack: Stack) -> dict[str, int]:
    from feature_store.online import OnlineFeatures

    features = OnlineFeatures.for_settings(stack.settings)
    return {
        f"u{u}": int(
            features.user_features(f"u{u}", features=["user_listening_stats__plays"])[
                "user_listening_stats__plays"
            ]
        )
        for u in range(LISTENERS)
    }
