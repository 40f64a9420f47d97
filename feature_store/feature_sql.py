"""What the feature batch job's modules share: short names for the columns of the tables it
reads (E: listening_events, T: tracks, U: users), the window predicate over event times, and the
writing of feature rows — an upsert keyed by (entity, event_timestamp) on Postgres and SQLite,
and DataFrame rows as plain Python values for it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Table, and_
from sqlalchemy.dialects import postgresql, sqlite

from musicrec.db.models import ListeningEvent, Track, User

E = ListeningEvent.__table__.c
T = Track.__table__.c
U = User.__table__.c


def in_window(start: datetime, end: datetime) -> Any:
    """Events that happened in (start, end]."""
    return and_(E.occurred_at > start, E.occurred_at <= end)


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows; a row whose key (entity, event_timestamp) is stored already replaces it."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if not c.primary_key},
    )
    conn.execute(stmt, rows)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (NaN -> None) for an executemany insert."""
    clean = df.astype(object).where(df.notna(), None)
    return [
        {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        for row in clean.to_dict("records")
    ]
