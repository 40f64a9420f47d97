"""Run Alembic migrations from code (CLI, demo, tests) against an engine or connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from musicrec.config import REPO_ROOT
from musicrec.db.engine import make_engine
from musicrec.errors import UserError


def _config(engine: Engine) -> Config:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "db" / "migrations"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _migration_connection(engine) as conn:
        cfg = _config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with _migration_connection(engine) as conn:
        cfg = _config(engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction. On SQLite, foreign-key enforcement is off meanwhile:
    Alembic's batch mode rebuilds a table by copy, drop and rename, and the drop would fail
    on the rows that reference it (the pragma has no effect inside a transaction)."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        # Outside any transaction: the driver connection is in autocommit (see engine.py).
        driver = conn.connection.dbapi_connection
        if sqlite:
            driver.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                yield conn
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError("migration left rows that break a foreign key")
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def is_current(engine: Engine) -> bool:
    """True when the database is migrated to the newest revision."""
    script = ScriptDirectory.from_config(_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return set(current) == set(script.get_heads())


def migrated_engine() -> Engine:
    """An engine on the configured database, refused until the database is migrated to the
    newest revision: what a command that reads or writes the tables starts with."""
    engine = make_engine()
    if not is_current(engine):
        engine.dispose()
        raise UserError("the database schema is not up to date: run `musicrec db upgrade`")
    return engine
