"""Never a 5xx for a missing dependency: Redis down or slow, the ML service down, no model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from apps.api.main import create_app
from apps.api.security import ApiKeys
from apps.ml.main import create_app as create_ml_app
from apps.ml.service import MLService
from apps.serving import serve_in_background
from musicrec.config import Settings
from tests.apps.serving_env import APP, METRICS_AUTH, ServingEnv
from tests.apps.tcp_proxy import TcpProxy


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", 6379))
    yield proxy
    proxy.stop()


def _through(env: ServingEnv, proxy: TcpProxy) -> Settings:
    """The env's settings with Redis reached through the proxy."""
    return env.settings.model_copy(update={"feast_redis_port": proxy.port})


def _recommend(client: TestClient, auth: dict[str, str], user: str = "u0") -> dict:
    reply = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}, headers=auth)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_redis_down_gives_the_cached_or_popular_fallback(
    make_env: Callable[..., ServingEnv], proxy: TcpProxy
) -> None:
    env = make_env("services")
    auth = {"X-API-Key": ApiKeys(env.engine, 0).create("k", app=APP)}
    with TestClient(create_app(_through(env, proxy))) as client:
        fresh = _recommend(client, auth)
        assert fresh["source"] == "model"
        proxy.stop()
        cached = _recommend(client, auth)
        assert cached["source"] == "cached" and cached["fallback"] is True
        assert "feature store unavailable" in cached["fallback_reason"]
        assert cached["tracks"] == fresh["tracks"]
        other = _recommend(client, auth, "u7")  # nothing cached: popularity
        assert other["source"] == "popularity" and other["fallback"] is True
        assert client.get("/readyz").json()["checks"]["online_store"].startswith("unavailable")
        metrics = client.get("/metrics", headers=METRICS_AUTH).text
        assert (
            'musicrec_api_fallback_total{reason="feature store unavailable",route="user"}'
            in metrics
        )
        predict = client.post(  # /predict needs no online features
            "/predict", json={"tracks": [{"track_name": "Baby Love", "artist_name": "Katy Perry"}]}
        )
        assert predict.status_code == 200 and predict.headers["X-Recommendation-Source"] == "model"


def test_redis_slower_than_the_budget_falls_back_in_time(
    make_env: Callable[..., ServingEnv], proxy: TcpProxy
) -> None:
    env = make_env("services", feature_timeout_ms=50)
    auth = {"X-API-Key": ApiKeys(env.engine, 0).create("k", app=APP)}
    with TestClient(create_app(_through(env, proxy))) as client:
        proxy.delay = 0.5
        started = time.perf_counter()
        body = _recommend(client, auth, "u3")
        assert time.perf_counter() - started < 0.4
        assert body["fallback"] is True and body["source"] == "popularity"


def test_no_model_serves_popularity(make_env: Callable[..., ServingEnv], tmp_path) -> None:
    env = make_env("embedded", sequential_model_path=None)
    auth = {"X-API-Key": ApiKeys(env.engine, 0).create("k", app=APP)}
    with TestClient(create_app(env.settings)) as client:
        body = _recommend(client, auth)
        assert body["source"] == "popularity" and body["fallback_reason"] == "no model loaded"
        assert not set(t["track_uri"] for t in body["tracks"]) & set(env.history("u0"))
        seeds = {"tracks": [{"track_name": "Baby Love", "artist_name": "Katy Perry"}]}
        predict = client.post("/predict", json=seeds)
        assert predict.status_code == 200
        assert predict.headers["X-Fallback-Reason"] == "no model loaded"
        nothing = client.post(
            "/predict", json={"tracks": [{"track_name": "Unheard Of", "artist_name": "Nobody"}]}
        )
        assert nothing.status_code == 200 and nothing.json()["unmatched_seeds"] == [0]
        assert nothing.headers["X-Fallback-Reason"] == "no model loaded"
        assert client.get("/readyz").json()["checks"]["model"].startswith("none")


def test_services_mode_over_http_and_the_ml_service_down(
    make_env: Callable[..., ServingEnv],
) -> None:
    env = make_env("services")
    auth = {"X-API-Key": ApiKeys(env.engine, 0).create("k", app=APP)}
    ml_app = create_ml_app(MLService(env.settings, env.engine))
    with serve_in_background(ml_app) as ml:
        settings = env.settings.model_copy(update={"ml_service_url": ml.url})
        with TestClient(create_app(settings)) as client:
            body = _recommend(client, auth)
            assert body["source"] == "model" and body["model_version"].startswith("hybrid@")
            seeds = {"tracks": [{"track_name": "Toxic", "artist_name": "Britney Spears"}]}
            assert client.post("/predict", json=seeds).headers["X-Unmatched-Seeds"] == "1"
            ready = client.get("/readyz").json()["checks"]
            assert ready["ml_service"] == "ok" and ready["online_store"] == "ok"
            ml.stop()
            time.sleep(0.5)
            down = _recommend(client, auth)
            assert down["source"] == "popularity" and down["fallback"] is True
            assert "ML service unreachable" in down["fallback_reason"]
