"""A Kafka-protocol broker for the transport and consumer tests: librdkafka's mock cluster,
bundled with confluent-kafka (a test dependency only; the product uses kafka-python)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from musicrec.events import EventType, ListeningEvent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# kafka-python clients must speak this protocol version to the mock cluster.
MOCK_API_VERSION = (2, 3)


@pytest.fixture(scope="module")
def mock_kafka() -> Iterator[str]:
    """bootstrap_servers of a one-broker cluster that lives while the client that started it."""
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    brokers = owner.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in brokers)
    owner.flush(1)
    del owner


def play_events(n: int, user: str = "u1") -> list[ListeningEvent]:
    """n plays of one listener, a second apart from T0, each on a track of its own."""
    return [
        ListeningEvent(
            user_id=user,
            track_id=f"spotify:track:{i:022d}",
            event_type=EventType.PLAY,
            occurred_at=T0 + timedelta(seconds=i),
            ms_played=1000 * i,
        )
        for i in range(n)
    ]
