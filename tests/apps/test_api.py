"""The public API's contract on the served styled model, embedded and services mode."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.apps.serving_env import METRICS_AUTH, STYLE, ServingEnv


def test_predict_recommends_the_style_of_the_seeds(client: TestClient) -> None:
    body = {
        "tracks": [
            {"track_name": "RAINING BLOOD (feat. Someone)", "artist_name": "metallica"},
            {"track_name": "Blood and Fire", "artist_name": "Slayer", "album_name": "ignored"},
        ]
    }
    reply = client.post("/predict", json=body, params={"k": 5})
    assert reply.status_code == 200, reply.text
    assert reply.json()["unmatched_seeds"] == []
    tracks = reply.json()["recommended_tracks"]
    assert len(tracks) == 5
    uris = [t["track_uri"] for t in tracks]
    assert not {"spotify:track:t3", "spotify:track:t5"} & set(uris)  # seeds excluded
    assert [STYLE[u] for u in uris] == ["metal"] * 5
    assert all(t["track_name"] and t["artist_name"] and t["reason"] for t in tracks)
    assert reply.headers["X-Recommendation-Source"] == "model"
    assert reply.headers["X-Model-Version"].startswith("hybrid@")


def test_predict_reads_unknown_tracks_from_their_text(client: TestClient) -> None:
    body = {"tracks": [{"track_name": "Toxic", "artist_name": "Britney Spears"}]}
    reply = client.post("/predict", json=body, params={"k": 4})
    assert reply.status_code == 200, reply.text
    assert [STYLE[t["track_uri"]] for t in reply.json()["recommended_tracks"]] == ["pop"] * 4
    assert reply.headers["X-Unmatched-Seeds"] == "1"


def test_predict_rejects_bad_bodies_with_field_messages(client: TestClient) -> None:
    for body, field in [
        ({}, "playlist name"),
        ({"tracks": []}, "playlist name"),
        ({"name": "  "}, "playlist name"),
        ({"tracks": [{"track_name": "x"}]}, "artist_name"),
        ({"tracks": [{"track_name": "", "artist_name": "y"}]}, "track_name"),
        ({"tracks": [{"track_name": "x", "artist_name": "y"}] * 101}, "tracks"),
    ]:
        reply = client.post("/predict", json=body)
        assert reply.status_code == 422, body
        assert field in str(reply.json()["detail"])
    assert client.post("/predict", params={"k": 0}, json={"tracks": []}).status_code == 422
    assert (
        client.post(
            "/predict", content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )


def test_oversize_bodies_are_refused(client: TestClient) -> None:
    big = {"tracks": [{"track_name": "x" * 500, "artist_name": "y" * 500}] * 100} | {
        "pad": "z" * 300_000
    }
    reply = client.post("/predict", json=big)
    assert reply.status_code == 413
    assert "larger than" in reply.json()["detail"]


def test_listener_recommendations(
    client: TestClient, env: ServingEnv, auth: dict[str, str]
) -> None:
    history = env.history("u0")
    reply = client.get(
        "/v1/users/u0/recommendations", params={"k": 5, "diversity": 0}, headers=auth
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["source"] == "model" and body["fallback"] is False
    assert body["user_id"] == "u0"
    uris = [t["track_uri"] for t in body["tracks"]]
    assert len(uris) == 5 and not set(uris) & set(history)  # heard tracks removed
    style = STYLE[history[-1]]
    assert sum(STYLE[u] == style for u in uris) >= 4
    played = {t["track_name"] for t in body["tracks"]} | set()
    assert all(t["reason"].startswith("because you played ") for t in body["tracks"]), played
    assert body["diversity"]["requested"] == 0
    assert 0 < body["diversity"]["distinct_artists"] <= 1


def test_diversity_spreads_artists(client: TestClient, auth: dict[str, str]) -> None:
    def artists(diversity: float) -> float:
        reply = client.get(
            "/v1/users/u1/recommendations",
            params={"k": 8, "diversity": diversity},
            headers=auth,
        )
        return float(reply.json()["diversity"]["distinct_artists"])

    assert artists(1.0) > artists(0.0)


def test_unknown_listener_gets_the_popular_tracks(client: TestClient, auth: dict[str, str]) -> None:
    reply = client.get("/v1/users/somebody-new/recommendations", headers=auth)
    assert reply.status_code == 200
    body = reply.json()
    assert body["source"] == "popularity" and body["fallback"] is False
    assert len(body["tracks"]) == 10
    assert all(t["reason"].startswith("popular in ") for t in body["tracks"])


def test_bounds_on_k(client: TestClient, auth: dict[str, str]) -> None:
    for k in (0, 501, "ten"):
        reply = client.get("/v1/users/u0/recommendations", params={"k": k}, headers=auth)
        assert reply.status_code == 422
        assert reply.json()["detail"][0]["loc"] == ["query", "k"]
    deep = client.get("/v1/users/u0/recommendations", params={"k": 500}, headers=auth)
    assert deep.status_code == 200


def test_search(client: TestClient, auth: dict[str, str]) -> None:
    reply = client.get("/v1/tracks/search", params={"q": "blood sla"}, headers=auth)
    assert reply.status_code == 200
    assert [(t["track_name"], t["artist_name"]) for t in reply.json()] == [
        ("Blood and Fire", "Slayer"),
        ("Raining Blood", "Slayer"),
    ] or {t["artist_name"] for t in reply.json()} == {"Slayer"}
    assert client.get("/v1/tracks/search", params={"q": "zzzz"}, headers=auth).json() == []


def test_probes_and_metrics(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok", ready
    assert ready["checks"]["database"] == "ok" and ready["checks"]["online_store"] == "ok"
    assert ready["checks"]["model"].startswith("hybrid@")
    client.get("/v1/users/u0/recommendations", headers=auth)
    text = client.get("/metrics", headers=METRICS_AUTH).text
    route = 'route="/v1/users/{user_id}/recommendations"'
    assert (
        f"musicrec_api_request_latency_seconds_bucket{{{route}" in text.replace('method="GET",', "")
        or route in text
    )
    assert "musicrec_api_requests_total" in text
    assert "musicrec_ml_feature_read_latency_seconds_count" in text
    assert 'musicrec_api_model_info{version="hybrid@' in text


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/predict",
        "/v1/users/{user_id}/recommendations",
        "/v1/feedback",
        "/v1/tracks/search",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    predict_body = spec["components"]["schemas"]["PredictRequest"]
    assert predict_body["examples"][0]["tracks"][0]["artist_name"] == "The Killers"
    feedback = paths["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert set(feedback["examples"]) == {"single", "batch"}
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
