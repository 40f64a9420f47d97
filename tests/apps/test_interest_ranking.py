"""The interest graph in ranking, end to end in both modes: the job stores a listener's graph
and pushes its profile online, and the listener's next recommendations follow it (with no
materialization in between); with the weight at 0 they do not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from apps.api.main import create_app
from apps.api.security import ApiKeys
from ml_pipeline.interest_graph.generate import generate_interest_graphs
from musicrec.db.models import User
from tests.apps.conftest import MODES
from tests.apps.serving_env import APP, STYLE, ServingEnv
from tests.ml_pipeline.interest_graph.scripted import Scripted
from tests.ml_pipeline.styled_data import ARTISTS


def graph_loving(artist: str) -> str:
    return f'{{"nodes": [{{"id": "a", "kind": "artist", "label": "{artist}", "weight": 1.0}}]}}'


def other_artist(env: ServingEnv, user: str) -> str:
    """An artist of a style the listener never played."""
    style = STYLE[env.history(user)[-1]]
    return next(names[0] for s, names in ARTISTS.items() if s != style)


def artists_for(env: ServingEnv, user: str) -> list[str]:
    with TestClient(create_app(env.settings)) as client:
        key = ApiKeys(env.engine, 0).create(f"k{datetime.now(UTC).timestamp()}", app=APP)
        reply = client.get(
            f"/v1/users/{user}/recommendations",
            params={"k": 5, "diversity": 0},
            headers={"X-API-Key": key},
        )
    assert reply.status_code == 200, reply.text
    return [t["artist_name"] for t in reply.json()["tracks"]]


@pytest.mark.parametrize("mode", MODES)
def test_a_new_graph_moves_the_listeners_recommendations(
    make_env: Callable[..., ServingEnv], mode: str
) -> None:
    # A weight far above the model's score spread: the graph alone decides the order.
    env = make_env(mode, interest_graph_weight=50.0)
    loved = other_artist(env, "u0")
    before = artists_for(env, "u0")
    assert loved not in before
    with env.engine.connect() as conn:
        internal = conn.execute(
            select(User.id).where(User.external_id == env.stored("u0"))
        ).scalar_one()
    report = generate_interest_graphs(
        env.engine, env.settings, Scripted([graph_loving(loved)]), user_id=internal
    )
    assert (report.done, report.not_pushed) == (1, 0)
    after = artists_for(env, "u0")
    assert after[:4] == [loved] * 4  # each of the artist's 4 tracks comes first


def test_weight_zero_leaves_the_models_order(make_env: Callable[..., ServingEnv]) -> None:
    env = make_env("embedded", interest_graph_weight=0.0)
    before = artists_for(env, "u0")
    with env.engine.connect() as conn:
        internal = conn.execute(
            select(User.id).where(User.external_id == env.stored("u0"))
        ).scalar_one()
    loved = Scripted([graph_loving(other_artist(env, "u0"))])
    generate_interest_graphs(env.engine, env.settings, loved, user_id=internal)
    assert artists_for(env, "u0") == before
