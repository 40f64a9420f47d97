"""Hostile input and failing dependencies, through a real server on loopback: every bad request
gets a 4xx with a message (never a 5xx) and leaves its keep-alive connection usable; a database
or online store that refuses or hangs costs a request at most its budget, and a route that
needs the database answers 503 with Retry-After while the others go on answering."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url

from apps.api.main import create_app
from apps.api.security import SCOPES, ApiKeys
from apps.serving import serve_in_background
from benchmarks.faults import FaultProxy
from feature_store.store import open_store
from tests.apps.serving_env import APP, ServingEnv, build_env

SEEDS = {"tracks": [{"track_name": "Song 0", "artist_name": "Artist 0"}]}
EVENT = {"user_id": "u0", "track_id": "spotify:track:t1", "event_type": "play"}


class Client:
    """One keep-alive HTTP/1.1 connection: a reset or a closed connection fails the test."""

    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.key = key

    def request(
        self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None
    ) -> tuple[int, Any, Any, float]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        headers = {"X-API-Key": self.key, "Content-Type": "application/json"}
        started = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
        assert not response.will_close, f"{method} {path}: the server closed the connection"
        return response.status, response.headers, json.loads(raw), elapsed


@contextmanager
def serving(env: ServingEnv) -> Iterator[tuple[str, str]]:
    key = ApiKeys(env.engine, 0).create("resilience", app=APP, scopes=SCOPES)
    with serve_in_background(create_app(env.settings)) as server:
        yield server.url, key


# Each case: (method, path, body as sent on the wire). Raw strings keep the JSON escapes
# ("\ud800" is a lone surrogate once parsed, "\u0000" a NUL).
HOSTILE: dict[str, tuple[str, str, bytes | str | dict[str, Any]]] = {
    "surrogate in a seed": (
        "POST",
        "/predict",
        r'{"tracks": [{"track_name": "\ud800", "artist_name": "x"}]}',
    ),
    "NUL in a seed": (
        "POST",
        "/predict",
        r'{"tracks": [{"track_name": "a\u0000", "artist_name": "x"}]}',
    ),
    "surrogate in feedback": (
        "POST",
        "/v1/feedback",
        r'{"user_id": "\udfff", "track_id": "spotify:track:t1", "event_type": "play"}',
    ),
    "NUL in feedback": (
        "POST",
        "/v1/feedback",
        r'{"user_id": "u\u0000", "track_id": "spotify:track:t1", "event_type": "play"}',
    ),
    "NUL in a batch's context": (
        "POST",
        "/v1/feedback",
        {"events": [{**EVENT, "context": {"device": "a\x00b"}}]},
    ),
    "huge number": ("POST", "/v1/feedback", {**EVENT, "ms_played": 10**30}),
    "past 32 bits": ("POST", "/v1/feedback", {**EVENT, "context": {"position": 2**40}}),
    "huge query number": ("POST", f"/predict?k={10**30}", SEEDS),
    "deep nesting": ("POST", "/predict", "[" * 100_000 + "]" * 100_000),
    "deep nesting in a field": (
        "POST",
        "/v1/feedback",
        '{"user_id": ' + "[" * 5000 + "]" * 5000 + "}",
    ),
    "truncated JSON": ("POST", "/predict", '{"tracks": [{"track_name": '),
    "not JSON": ("POST", "/v1/feedback", b"\xff\xfe\x00garbage"),
    "a JSON string": ("POST", "/predict", '"tracks"'),
    "invalid UTF-8 in a string": ("POST", "/predict", b'{"tracks": [{"track_name": "\xc3\x28"}]}'),
}


def test_hostile_input_gets_a_4xx_and_the_connection_stays_usable(
    make_env: Callable[..., ServingEnv],
) -> None:
    with serving(make_env("embedded")) as (url, key):
        client = Client(url, key)
        for name, (method, path, body) in HOSTILE.items():
            status, _, answer, _ = client.request(method, path, body)
            assert 400 <= status < 500, (name, status, answer)
            assert answer["detail"], name
            # The same connection serves the next request (a 500 used to close it).
            assert client.request("GET", "/healthz")[0] == 200, name
        status, _, answer, _ = client.request("POST", "/v1/feedback", HOSTILE["NUL in feedback"][2])
        assert "NUL" in json.dumps(answer)  # says what is wrong


def test_a_body_shorter_than_its_content_length_is_answered_408(
    make_env: Callable[..., ServingEnv],
) -> None:
    env = make_env("embedded", body_read_timeout_seconds=0.5)
    with serving(env) as (url, key):
        parts = urlsplit(url)
        stalled = socket.create_connection((parts.hostname, parts.port), timeout=10)
        stalled.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"tracks": ['
        )
        started = time.monotonic()
        # Meanwhile others are served.
        assert Client(url, key).request("POST", "/predict", SEEDS)[0] == 200
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.3 < time.monotonic() - started < 3
        stalled.close()


@contextmanager
def through_proxy(
    make_env: Callable[..., ServingEnv], dependency: str, **settings: object
) -> Iterator[tuple[FaultProxy, ServingEnv]]:
    """A services-mode setup whose API reaches `dependency` ("postgres" or "redis") through a
    FaultProxy (the setup itself is written directly)."""
    env = make_env("services")
    if dependency == "postgres":
        url = make_url(env.settings.database_url)
        proxy = FaultProxy((url.host or "127.0.0.1", url.port or 5432))
        moved = url.set(port=proxy.port).render_as_string(hide_password=False)
        update: dict[str, object] = {"database_url": moved}
    else:
        proxy = FaultProxy(("127.0.0.1", env.settings.feast_redis_port))
        update = {"feast_redis_port": proxy.port}
    try:
        yield (
            proxy,
            ServingEnv(
                env.settings.model_copy(update={**update, **settings}), env.engine, env.model
            ),
        )
    finally:
        proxy.close()


@pytest.mark.parametrize("fault", ["refuse", "hang"])
def test_a_database_outage_is_a_503_for_what_needs_it_and_nothing_else(
    make_env: Callable[..., ServingEnv], fault: str
) -> None:
    with (
        through_proxy(make_env, "postgres", database_timeout_seconds=1.0) as (proxy, env),
        serving(env) as (url, key),
    ):
        client = Client(url, key)
        assert client.request("GET", "/v1/listeners")[0] == 200  # keys loaded, pool warm
        getattr(proxy, fault)()
        for _ in range(3):
            status, headers, answer, elapsed = client.request("GET", "/v1/listeners")
            assert status == 503, answer
            assert headers["Retry-After"] and answer["detail"].startswith("database unavailable")
            assert elapsed < 2.5
            # What needs no database keeps answering, on the same connection.
            status, _, answer, elapsed = client.request("POST", "/predict", SEEDS)
            assert status == 200 and answer["recommended_tracks"], answer
            assert elapsed < 2.5
            status, _, answer, _ = client.request("GET", "/v1/users/u0/recommendations")
            assert status == 200 and answer["tracks"], answer
        status, _, answer, elapsed = client.request("GET", "/readyz")  # degraded, not stuck
        assert status == 200 and answer["status"] == "degraded", answer
        assert answer["checks"]["database"].startswith("unavailable") and elapsed < 3.5
        proxy.restore()
        deadline = time.monotonic() + 10
        while client.request("GET", "/v1/listeners")[0] != 200:
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.1)


def test_a_hanging_online_store_costs_the_feature_budget(
    make_env: Callable[..., ServingEnv],
) -> None:
    with (
        through_proxy(make_env, "redis", feature_timeout_ms=50) as (proxy, env),
        serving(env) as (url, key),
    ):
        client = Client(url, key)
        assert client.request("GET", "/v1/users/u0/recommendations")[0] == 200
        proxy.hang()
        waits = []
        for _ in range(20):
            status, _, answer, elapsed = client.request("GET", "/v1/users/u0/recommendations")
            assert status == 200 and answer["tracks"] and answer["fallback"], answer
            waits.append(elapsed)
        assert max(waits) < 0.5, waits  # one budget at most, then the breaker answers at once
        assert client.request("POST", "/predict", SEEDS)[0] == 200


# JSON values whose strings hold anything a JSON text can spell: NULs, lone surrogates,
# control characters, non-BMP characters; numbers far past 64 bits; nesting a few levels deep.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["user_id", "track_id", "event_type", "occurred_at", "ms_played", "context", "events"]


@st.composite
def feedback_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """An event whose fields are each either valid or anything at all."""
    body: dict[str, Any] = dict(EVENT)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        body[field] = draw(ANY_JSON)
    return body


@st.composite
def predict_bodies(draw: st.DrawFn) -> dict[str, Any]:
    track = {"track_name": draw(ANY_TEXT), "artist_name": draw(ANY_TEXT | st.just("x"))}
    if draw(st.booleans()):
        track["track_uri"] = draw(ANY_JSON)
    return {"tracks": draw(st.lists(st.just(track) | ANY_JSON, max_size=3))}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[tuple[str, str]]:
    env = build_env("embedded", tmp_path_factory.mktemp("hostile"), model_path, None)
    with serving(env) as running:
        yield running
    open_store(env.settings).teardown()


def _wire(body: Any) -> bytes:
    # json.dumps writes lone surrogates as \\u escapes: the server parses them back.
    return json.dumps(body).encode()


@given(body=feedback_bodies(), cut=st.integers(min_value=0, max_value=3))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_feedback_body_is_answered_below_500(
    fuzzed: tuple[str, str], body: dict[str, Any], cut: int
) -> None:
    client = Client(*fuzzed)
    data = _wire(body)
    data = data[: len(data) - cut] if cut < len(data) else data  # truncated JSON too
    status, _, answer, _ = client.request("POST", "/v1/feedback", data)
    assert status < 500, answer
    assert client.request("GET", "/healthz")[0] == 200


@given(body=predict_bodies())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_predict_body_is_answered_below_500(
    fuzzed: tuple[str, str], body: dict[str, Any]
) -> None:
    client = Client(*fuzzed)
    status, _, answer, _ = client.request("POST", "/predict?k=5", _wire(body))
    assert status < 500, answer
    assert client.request("GET", "/healthz")[0] == 200
