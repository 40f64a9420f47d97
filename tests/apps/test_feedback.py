"""POST /v1/feedback: validated, durably queued (202), then visible in the database, the online
features and the next recommendations."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from apps.api.state import ApiState
from musicrec.db.models import ListeningEvent as EventRow
from tests.apps.serving_env import ServingEnv


def _state(client: TestClient) -> ApiState:
    return client.app.state.api  # type: ignore[attr-defined,no-any-return]


def _stored(env: ServingEnv, event_id: uuid.UUID) -> int:
    with env.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(EventRow).where(EventRow.event_id == event_id)
            ).scalar_one()
        )


def test_a_play_is_accepted_and_then_visible(
    client: TestClient, env: ServingEnv, auth: dict[str, str]
) -> None:
    before = client.get(
        "/v1/users/u0/recommendations", params={"k": 5, "diversity": 0}, headers=auth
    )
    played = before.json()["tracks"][0]["track_uri"]
    event_id = uuid.uuid4()
    event = {"event_id": str(event_id), "user_id": "u0", "track_id": played, "event_type": "play"}
    reply = client.post("/v1/feedback", json=event, headers=auth)
    assert reply.status_code == 202, reply.text
    assert reply.json() == {"accepted": 1, "event_ids": [str(event_id)]}
    consumer = _state(client).consumer
    assert consumer is not None and consumer.drain(timeout=20)
    assert _stored(env, event_id) == 1
    after = client.get(
        "/v1/users/u0/recommendations", params={"k": 5, "diversity": 0}, headers=auth
    )
    assert played not in [t["track_uri"] for t in after.json()["tracks"]]  # now heard
    # Resent (a client retry): stored once.
    assert client.post("/v1/feedback", json=event, headers=auth).status_code == 202
    assert consumer.drain(timeout=20) and _stored(env, event_id) == 1


def test_a_new_listener_becomes_known_through_feedback(
    client: TestClient, env: ServingEnv, auth: dict[str, str]
) -> None:
    events = [
        {"user_id": "newcomer", "track_id": f"spotify:track:t{i}", "event_type": "play"}
        for i in (12, 13, 14)  # pop: Britney Spears
    ] + [{"user_id": "newcomer", "track_id": "spotify:track:t0", "event_type": "skip"}]
    reply = client.post("/v1/feedback", json={"events": events}, headers=auth)
    assert reply.status_code == 202 and reply.json()["accepted"] == 4
    consumer = _state(client).consumer
    assert consumer is not None and consumer.drain(timeout=20)
    body = client.get("/v1/users/newcomer/recommendations", headers=auth).json()
    assert body["source"] == "model"
    uris = [t["track_uri"] for t in body["tracks"]]
    assert not {"spotify:track:t12", "spotify:track:t13", "spotify:track:t14"} & set(uris)
    assert "spotify:track:t0" not in uris  # skipped: not offered again


def test_bad_feedback_is_rejected_with_a_message(client: TestClient, auth: dict[str, str]) -> None:
    good = {"user_id": "u0", "track_id": "spotify:track:t1", "event_type": "play"}
    cases = [
        (good | {"event_type": "teleport"}, "event_type"),
        (good | {"ms_played": -5}, "ms_played"),
        (good | {"occurred_at": "yesterday"}, "occurred_at"),
        (good | {"occurred_at": "2026-11-23T10:00:00"}, "occurred_at"),  # no time zone
        (good | {"surprise": 1}, "surprise"),
        ({"events": []}, "events"),
        ({"events": [good] * 501}, "events"),
    ]
    for body, field in cases:
        reply = client.post("/v1/feedback", json=body, headers=auth)
        assert reply.status_code == 422, body
        assert field in str(reply.json()["detail"]), reply.json()
    unknown = client.post(
        "/v1/feedback", json=good | {"track_id": "spotify:track:nope"}, headers=auth
    )
    assert unknown.status_code == 422
    assert "spotify:track:nope" in unknown.json()["detail"]
    assert client.post("/v1/feedback", json=good).status_code == 401
