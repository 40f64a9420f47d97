"""The feature store set up in each mode, with the small event set stored (embedded: SQLite
database and online store; services: Postgres offline store + the real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from feature_store.store import open_store
from musicrec.config import Settings
from musicrec.db.bulk import write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from tests.feature_store.event_set import batch

MODES = ["embedded", "services"]


@pytest.fixture(params=MODES)
def feature_env(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema_engine: Callable[[], Engine]
) -> Iterator[tuple[Settings, Engine]]:
    project = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "embedded":
        settings = Settings(var_dir=tmp_path, feast_project=project)
        engine = make_engine(settings=settings)
    else:
        try:
            redis.Redis(host="127.0.0.1", port=6379).ping()
        except redis.ConnectionError as exc:
            pytest.fail(f"Redis is required at 127.0.0.1:6379: {exc}", pytrace=False)
        engine = pg_schema_engine()
        settings = Settings(
            var_dir=tmp_path,
            feast_project=project,
            database_url=engine.url.render_as_string(hide_password=False),
            feast_redis_host="127.0.0.1",
        )
    upgrade(engine)
    write_batch(engine, batch())
    yield settings, engine
    open_store(settings).teardown()  # drops the project's online keys and tables
