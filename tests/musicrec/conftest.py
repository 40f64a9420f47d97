"""A Kafka-protocol broker for the transport and consumer tests: librdkafka's mock cluster,
bundled with confluent-kafka (a test dependency only; the product uses kafka-python)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
