"""Engine and session factory for the configured database (SQLite file or Postgres)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from musicrec.config import Settings, get_settings


def make_engine(
    url: str | None = None, *, settings: Settings | None = None, serving: bool = False
) -> Engine:
    """`serving`: for a process that answers requests. On Postgres, connecting and waiting for
    a pooled connection give up after DATABASE_TIMEOUT_SECONDS and dead connections are found
    by TCP keepalives. No statement limit: start-up loads the catalog in long reads; requests
    bound their database calls themselves (apps.api.errors.call_blocking)."""
    settings = settings or get_settings()
    url = url or settings.database_url
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        # Connections are handed between threads (ingest's writer thread), never shared at once.
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite opens transactions only before DML, so DDL (migrations) would commit piece by
        # piece; SQLAlchemy's recipe: the driver in autocommit, and BEGIN at every transaction.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    if not serving:
        return create_engine(url, pool_pre_ping=True)
    timeout = settings.database_timeout_seconds
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_timeout=timeout,
        connect_args={
            "connect_timeout": max(2, math.ceil(timeout)),  # libpq: whole seconds, 2 at least
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
        },
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the API read while the consumer or a batch job writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    with sessionmaker(engine, expire_on_commit=False).begin() as session:
        yield session
