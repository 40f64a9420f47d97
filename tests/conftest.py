"""Fixtures: fresh migrated databases on SQLite and on the real Postgres.

Each Postgres fixture works in a schema of its own, created for it and dropped afterwards, in
the `test` database: a test never touches data it did not create. A missing Postgres fails
the test with a message; it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from musicrec.config import REPO_ROOT, get_settings
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Test models are tiny: one thread is as fast, and OpenMP threads that outnumber free
    cores (pytest next to another job on 2 cores) spin and slow everything down many times."""
    import torch

    torch.set_num_threads(1)


def _pg_admin() -> Engine:
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(
            f"Postgres is required at {PG_URL} (start it with `make services`): {exc.orig}",
            pytrace=False,
        )
    return engine


@pytest.fixture
def pg_schema_engine() -> Iterator[Callable[[], Engine]]:
    """Factory of engines, each bound to a new empty Postgres schema (dropped at teardown)."""
    admin = _pg_admin()
    schemas: list[str] = []
    engines: list[Engine] = []

    def make() -> Engine:
        schema = f"test_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema_engine: Callable[[], Engine]
) -> Iterator[Engine]:
    """An engine on an empty database of the backend the test is parametrized with."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        yield engine
        engine.dispose()
    else:
        yield pg_schema_engine()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """A freshly migrated database (SQLite by default; parametrize with `backends`)."""
    upgrade(empty_engine)
    return empty_engine


def backends(func: Callable[..., object]) -> Callable[..., object]:
    """Run a test that uses `engine` or `empty_engine` once per database backend."""
    return pytest.mark.parametrize("empty_engine", BACKENDS, indirect=True)(func)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Point the process-wide settings at a temporary embedded setup (plus overrides)."""

    def apply(**env: str) -> None:
        monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
        for key, value in env.items():
            monkeypatch.setenv(key.upper(), value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mpd_reduced").is_dir():
        pytest.fail(f"the shared data folder is missing: {SHARED_DATA}", pytrace=False)
    return SHARED_DATA
