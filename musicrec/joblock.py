"""One run at a time per scheduled job: a Postgres advisory lock (services mode: held by the
database session, released when the process dies) or an exclusive file lock under var/locks
(embedded mode: released by the OS when the process dies). A second run fails at once with a
clear message instead of overlapping the first."""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from musicrec.config import Settings
from musicrec.errors import UserError


class JobLocked(UserError):
    exit_code = 4


@contextmanager
def job_lock(name: str, engine: Engine, settings: Settings) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(f"musicrec:{name}".encode())
        with engine.connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                raise JobLocked(f"another {name} run is in progress (advisory lock {key})")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    path = settings.var_dir / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLocked(f"another {name} run is in progress ({path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
