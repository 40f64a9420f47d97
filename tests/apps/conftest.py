"""Fixtures of the serving tests: the serving setup per mode, a running app (lifespan and all,
through Starlette's TestClient) and a client API key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from apps.api.main import create_app
from apps.api.security import SCOPES, ApiKeys
from feature_store.store import open_store
from tests.apps.serving_env import APP, ServingEnv, build_env, exported_model

MODES = ["embedded", "services"]


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def make_env(
    tmp_path: Path, model_path: Path, pg_schema_engine: Callable[[], Engine]
) -> Iterator[Callable[..., ServingEnv]]:
    made: list[ServingEnv] = []

    def make(mode: str = "embedded", **settings: object) -> ServingEnv:
        pg = pg_schema_engine() if mode == "services" else None
        env = build_env(mode, tmp_path / mode, model_path, pg, **settings)
        made.append(env)
        return env

    yield make
    for env in made:
        open_store(env.settings).teardown()  # the project's online keys and tables


@pytest.fixture(params=MODES)
def env(request: pytest.FixtureRequest, make_env: Callable[..., ServingEnv]) -> ServingEnv:
    return make_env(request.param)


@pytest.fixture
def client(env: ServingEnv) -> Iterator[TestClient]:
    with TestClient(create_app(env.settings)) as test_client:
        yield test_client


@pytest.fixture
def api_key(env: ServingEnv) -> str:
    """A key of the setup's app (its listeners are "u0", ...) with every scope."""
    return ApiKeys(env.engine, 0).create("tests", app=APP, scopes=SCOPES)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"X-API-Key": api_key}
