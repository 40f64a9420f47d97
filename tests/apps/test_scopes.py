"""Keys have scopes and act for an app: an app sees and writes only its own listeners, a key
lacks what its scopes do not give (403), and /metrics is served to its token or to loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import Request

from apps.api.main import create_app
from apps.api.security import ApiKeys
from apps.api.state import ApiState
from apps.ml.main import create_app as create_ml_app
from apps.ml.metrics import is_loopback, metrics_response
from apps.ml.service import MLService
from apps.serving import serve_in_background
from musicrec.db.models import ListeningEvent, User
from tests.apps.serving_env import METRICS_AUTH, METRICS_TOKEN, ServingEnv

POP = ["spotify:track:t12", "spotify:track:t13", "spotify:track:t14"]  # Britney Spears


def _drain(client: TestClient) -> None:
    state: ApiState = client.app.state.api  # type: ignore[attr-defined]
    assert state.consumer is not None and state.consumer.drain(timeout=20)


def _stored_events(env: ServingEnv) -> dict[uuid.UUID, str]:
    query = select(ListeningEvent.event_id, User.external_id).join(
        User, User.id == ListeningEvent.user_id
    )
    with env.engine.connect() as conn:
        return {event_id: user for event_id, user in conn.execute(query)}


def test_an_app_sees_and_writes_only_its_own_listeners(client: TestClient, env: ServingEnv) -> None:
    keys = ApiKeys(env.engine, 0)
    alpha = {"X-API-Key": keys.create("alpha")}
    beta = {"X-API-Key": keys.create("beta")}
    plays = [{"user_id": "u1", "track_id": uri, "event_type": "play"} for uri in POP]
    reply = client.post("/v1/feedback", json={"events": plays}, headers=alpha)
    assert reply.status_code == 202, reply.text
    alpha_ids = reply.json()["event_ids"]
    _drain(client)

    listed = client.get("/v1/listeners", headers=alpha).json()
    assert [(x["user_id"], x["events"]) for x in listed] == [("u1", 3)]
    assert client.get("/v1/listeners", headers=beta).json() == []
    mine = client.get("/v1/users/u1/recommendations", headers=alpha).json()
    assert mine["user_id"] == "u1" and mine["source"] == "model"
    assert not set(POP) & {t["track_uri"] for t in mine["tracks"]}  # heard: not offered
    # beta's "u1", and beta spelling alpha's stored id, are listeners of beta's own: new ones.
    for user in ("u1", "alpha:u1"):
        theirs = client.get(f"/v1/users/{user}/recommendations", headers=beta).json()
        assert theirs["user_id"] == user and theirs["source"] == "popularity"

    event_id = uuid.uuid4()
    skip = {"event_id": str(event_id), "user_id": "u1", "track_id": POP[0], "event_type": "skip"}
    assert client.post("/v1/feedback", json=skip, headers=beta).status_code == 202
    _drain(client)
    stored = _stored_events(env)
    assert stored[event_id] == "beta:u1"
    assert {stored[uuid.UUID(i)] for i in alpha_ids} == {"alpha:u1"}
    assert [x["user_id"] for x in client.get("/v1/listeners", headers=beta).json()] == ["u1"]
    assert [x["events"] for x in client.get("/v1/listeners", headers=alpha).json()] == [3]


def test_routes_need_their_scope(client: TestClient, env: ServingEnv) -> None:
    keys = ApiKeys(env.engine, 0)
    read = {"X-API-Key": keys.create("reader", app="tests", scopes=["read"])}
    write = {"X-API-Key": keys.create("writer", app="tests", scopes=["write"])}
    default = {"X-API-Key": keys.create("default", app="tests")}
    event = {"user_id": "u0", "track_id": POP[0], "event_type": "play"}

    def refused(reply: httpx.Response, scope: str) -> None:
        assert reply.status_code == 403, reply.text
        detail = reply.json()["detail"]
        assert f"lacks the '{scope}' scope" in detail and "\n" not in detail

    refused(client.post("/v1/feedback", json=event, headers=read), "write")
    assert client.get("/v1/users/u0/recommendations", headers=read).status_code == 200
    assert client.get("/v1/listeners", headers=read).status_code == 200
    assert client.get("/v1/tracks/search?q=baby", headers=read).status_code == 200

    assert client.post("/v1/feedback", json=event, headers=write).status_code == 202
    refused(client.get("/v1/users/u0/recommendations", headers=write), "read")
    refused(client.get("/v1/listeners", headers=write), "read")
    refused(client.get("/v1/tracks/search?q=baby", headers=write), "read")

    for headers in (read, write, default):  # no admin scope: no operations view
        refused(client.get("/v1/ops/summary", headers=headers), "admin")
    admin = {"X-API-Key": keys.create("ops", app="tests", scopes=["admin"])}
    assert client.get("/v1/ops/summary", headers=admin).status_code == 200
    assert client.get("/v1/ops/summary").status_code == 401  # no key at all: still 401
    _drain(client)


def _request(host: str | None, headers: dict[str, str] | None = None) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/metrics",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": None if host is None else (host, 40000),
        }
    )


def test_metrics_access_rule() -> None:
    from pydantic import SecretStr

    for host in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
        assert metrics_response(_request(host), None).status_code == 200
    for host in ("10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "fe80::1", "testclient", "", None):
        assert not is_loopback(host), host
        with pytest.raises(HTTPException) as refused:
            metrics_response(_request(host), None)
        assert refused.value.status_code == 403
        assert refused.value.detail == "metrics are served to loopback only: set METRICS_TOKEN"
    token = SecretStr("s3cret")
    remote = "10.0.0.1"
    ok = metrics_response(_request(remote, {"Authorization": "Bearer s3cret"}), token)
    assert ok.status_code == 200 and b"python_info" in ok.body
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        for host in (remote, "127.0.0.1"):  # with a token, loopback needs it too
            with pytest.raises(HTTPException) as refused:
                metrics_response(_request(host, headers), token)
            assert refused.value.status_code == 401


def test_metrics_need_the_token_when_one_is_set(env: ServingEnv) -> None:
    service = MLService(env.settings, env.engine)
    with (
        TestClient(create_app(env.settings)) as api,
        TestClient(create_ml_app(service)) as ml,
    ):
        for client in (api, ml):
            assert client.get("/metrics").status_code == 401
            wrong = client.get("/metrics", headers={"Authorization": "Bearer not-it"})
            assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
            right = client.get("/metrics", headers=METRICS_AUTH)
            assert right.status_code == 200 and "python_info" in right.text
    assert METRICS_TOKEN not in right.text


def test_metrics_without_a_token_are_served_to_loopback_only(
    make_env: Callable[..., ServingEnv],
) -> None:
    env = make_env("embedded", metrics_token=None)
    with (
        serve_in_background(create_app(env.settings)) as api,
        serve_in_background(create_ml_app(MLService(env.settings, env.engine))) as ml,
    ):
        for server in (api, ml):
            assert server.url.startswith("http://127.0.0.1:")
            reply = httpx.get(f"{server.url}/metrics", timeout=30)
            assert reply.status_code == 200 and "python_info" in reply.text
    with TestClient(create_app(env.settings)) as client:  # its client is "testclient"
        refused = client.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["detail"] == "metrics are served to loopback only: set METRICS_TOKEN"
