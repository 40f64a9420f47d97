"""Client API keys on /v1, the admin token, rate limits."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from apps.api.main import create_app
from apps.api.security import ApiKeys
from tests.apps.serving_env import ADMIN_TOKEN, ServingEnv


def test_v1_routes_need_a_valid_key(client: TestClient, env: ServingEnv, api_key: str) -> None:
    for headers in ({}, {"X-API-Key": "mr_wrong"}, {"X-API-Key": api_key + "x"}):
        reply = client.get("/v1/users/u0/recommendations", headers=headers)
        assert reply.status_code == 401
        assert "API key" in reply.json()["detail"]
    assert client.get("/v1/users/u0/recommendations", headers={"X-API-Key": api_key}).is_success
    assert ApiKeys(env.engine, 0).revoke("tests")
    revoked = client.get("/v1/users/u0/recommendations", headers={"X-API-Key": api_key})
    assert revoked.status_code == 401  # the app's key cache lives 0 s in these tests
    assert client.post(
        "/predict", json={"tracks": [{"track_name": "Baby Love", "artist_name": "Katy Perry"}]}
    ).is_success  # open route


def test_admin_routes_need_the_admin_token(client: TestClient, auth: dict[str, str]) -> None:
    assert client.post("/v1/admin/model/reload", headers=auth).status_code == 401
    wrong = {"Authorization": "Bearer not-it"}
    assert client.post("/v1/admin/model/reload", headers=wrong).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status = client.post("/v1/admin/model/reload", headers=admin)
    assert status.status_code == 200 and status.json()["loaded"] is True
    assert client.get("/v1/admin/model", headers=admin).json()["version"].startswith("hybrid@")


def test_admin_routes_are_off_without_a_token(make_env: Callable[..., ServingEnv]) -> None:
    env = make_env("embedded", admin_token=None)
    with TestClient(create_app(env.settings)) as client:
        reply = client.post("/v1/admin/model/reload", headers={"Authorization": "Bearer x"})
        assert reply.status_code == 403 and "ADMIN_TOKEN" in reply.json()["detail"]


def test_rate_limit_per_key(make_env: Callable[..., ServingEnv]) -> None:
    env = make_env("embedded", rate_limit_per_second=0.01, rate_limit_burst=3)
    keys = ApiKeys(env.engine, 0)
    first, second = {"X-API-Key": keys.create("a")}, {"X-API-Key": keys.create("b")}
    with TestClient(create_app(env.settings)) as client:
        codes = [
            client.get("/v1/tracks/search?q=blood", headers=first).status_code for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        limited = client.get("/v1/tracks/search?q=blood", headers=first)
        assert int(limited.headers["Retry-After"]) >= 1
        assert client.get("/v1/tracks/search?q=blood", headers=second).status_code == 200
