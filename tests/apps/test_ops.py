"""The operations summary (models with their training records, latency, fallbacks, feature
freshness), the recent-listeners route and the web page's files, in both modes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from apps.api.main import create_app
from apps.api.ops import quantile
from apps.api.security import ApiKeys
from apps.ml.main import create_app as create_ml_app
from apps.ml.service import MLService
from apps.serving import serve_in_background
from tests.apps.serving_env import APP, AS_OF, LISTENERS, ServingEnv

INF = math.inf


def test_quantile_interpolates_within_buckets_like_prometheus() -> None:
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None
    # 10 observations: 4 up to 10 ms, 6 more up to 20 ms, none above.
    buckets = [(0.01, 4.0), (0.02, 10.0), (INF, 10.0)]
    assert quantile(0.2, buckets) == 0.005  # rank 2 of 4 in [0, 10 ms]
    assert math.isclose(quantile(0.7, buckets) or 0, 0.015)  # rank 7: 3 of 6 in (10, 20]
    assert quantile(1.0, buckets) == 0.02
    # Past the last finite bound: that bound.
    assert quantile(0.99, [(0.01, 1.0), (INF, 10.0)]) == 0.01


def _summary(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    reply = client.get("/v1/ops/summary", headers=auth)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_ops_summary(client: TestClient, env: ServingEnv, auth: dict[str, str]) -> None:
    assert client.get("/v1/ops/summary").status_code == 401
    client.get("/v1/users/u0/recommendations", headers=auth)
    body = _summary(client, auth)
    (production,) = body["models"]["models"]
    assert production["role"] == "production" and production["version"].startswith("hybrid@")
    assert production["items"] == 36 and production["text_seeds"] is True
    assert len(production["curve"]) == 25 and production["curve"][0]["loss"] > 0
    assert 0 < production["metrics"]["ndcg@10"] <= 1
    routes = {r["route"]: r for r in body["serving"]["routes"]}
    listener = routes["/v1/users/{user_id}/recommendations"]
    assert listener["requests"] >= 1 and listener["p50_ms"] > 0
    assert listener["p50_ms"] <= listener["p95_ms"] <= listener["p99_ms"]
    assert body["serving"]["recommendations"] >= 1
    features = body["features"]
    assert features["online_store"] == env.settings.online_store
    assert features["batch_as_of"].startswith(AS_OF.strftime("%Y-%m-%dT%H:%M"))
    assert features["newest_event_at"] is not None and features["batch_lag_seconds"] <= 0
    assert body["tensorboard"].startswith("tensorboard --logdir")


def test_ops_summary_through_the_ml_service_and_without_it(
    make_env: Callable[..., ServingEnv],
) -> None:
    env = make_env("services")
    auth = {"X-API-Key": ApiKeys(env.engine, 0).create("k", app=APP, scopes=["admin"])}
    with serve_in_background(create_ml_app(MLService(env.settings, env.engine))) as ml:
        settings = env.settings.model_copy(update={"ml_service_url": ml.url})
        with TestClient(create_app(settings)) as client:
            models = _summary(client, auth)["models"]["models"]
            assert models[0]["version"].startswith("hybrid@") and len(models[0]["curve"]) == 25
            ml.stop()
            time.sleep(0.5)
            down = _summary(client, auth)  # the rest of the view still answers
            assert down["models"] is None and "ML service" in down["models_error"]
            assert down["features"]["batch_as_of"] is not None


def test_recent_listeners(client: TestClient, auth: dict[str, str]) -> None:
    reply = client.get("/v1/listeners", params={"limit": 5}, headers=auth)
    assert reply.status_code == 200
    listeners = reply.json()
    assert len(listeners) == 5
    assert all(listener["user_id"].startswith("u") for listener in listeners)
    # Most recent first: the catalog's listener u starts u hours after the first.
    assert listeners[0]["user_id"] == f"u{LISTENERS - 1}"
    times = [listener["last_event_at"] for listener in listeners]
    assert times == sorted(times, reverse=True)
    assert client.get("/v1/listeners").status_code == 401


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/app")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="app/static/app.js"' in page.text
    for name, kind in (("app.js", "javascript"), ("api.js", "javascript"), ("app.css", "css")):
        asset = client.get(f"/app/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"], name
    assert client.get("/app/static/nothing.js").status_code == 404
    assert "/app" not in client.get("/openapi.json").json()["paths"]
