"""Set-based row operations on one connection, the same on Postgres and SQLite, for writers that
store rows by a natural key: which of a list of keys a table holds already, and their ids (one
array parameter on Postgres, chunked IN lists on SQLite); inserting rows (COPY ... FROM STDIN in
CSV on Postgres, the driver's executemany on SQLite); inserting the missing keys of a table and
learning their ids (Postgres hands the ids out first); and the text both databases store for a
UTC instant. BatchWriter (musicrec.db.bulk) is built on KeyedRows."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ARRAY, Connection, Table, any_, bindparam, select
from sqlalchemy import Uuid as UuidType

from musicrec.db.models import ListeningEvent

LOOKUP_CHUNK = 10_000  # SQLite bind-parameter lists; Postgres takes one array
EVENTS = ListeningEvent.__table__  # looked up by event_id, which is also the value


class KeyedRows:
    """Row lookups and inserts on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def _resolve(
        self,
        table: Table,
        key: str,
        cache: dict[Any, int],
        rows: dict[Any, tuple[Any, ...]],
        columns: list[str],
    ) -> tuple[int, set[Any]]:
        """Make every key of `rows` exist in `table` and in `cache`. Returns how many rows were
        inserted and which keys the table had already."""
        missing = [k for k in rows if k not in cache]
        found = self._lookup(table, key, missing)
        cache.update(found)
        new = [k for k in missing if k not in found]
        cache.update(self._insert_new(table, key, columns, [rows[k] for k in new], new))
        return len(new), set(found)

    def _insert_new(
        self,
        table: Table,
        key: str,
        columns: list[str],
        rows: list[tuple[Any, ...]],
        keys: list[Any],
    ) -> dict[Any, int]:
        """Insert rows for `keys`; return their ids. Postgres hands out the ids first (one
        query for all, instead of reading every row back); SQLite assigns and is read back."""
        if not rows:
            return {}
        if not self.pg:
            self._insert(table, columns, rows)
            return self._lookup(table, key, keys)
        ids = [
            i
            for (i,) in self.conn.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id'))"
                f" FROM generate_series(1, {len(rows)})"
            )
        ]
        self._insert(table, ["id", *columns], [(i, *row) for i, row in zip(ids, rows, strict=True)])
        return dict(zip(keys, ids, strict=True))

    def _lookup(
        self, table: Table, key: str, keys: Sequence[Any], where: Any = None
    ) -> dict[Any, int]:
        """key -> id of the rows of `table` whose `key` is among `keys`."""
        if not keys:
            return {}
        column = table.c[key]
        # Events are found by their id; for them the value is the hex form used as cache key.
        value = table.c.event_id if table is EVENTS else table.c.id
        query = select(column, value)
        if where is not None:
            query = query.where(where)
        found: dict[Any, int] = {}
        if self.pg:
            array = ARRAY(UuidType() if table is EVENTS else column.type)
            chunks: Iterable[Sequence[Any]] = [keys]
            condition = column == any_(bindparam("keys", type_=array))
        else:
            chunks = (keys[i : i + LOOKUP_CHUNK] for i in range(0, len(keys), LOOKUP_CHUNK))
            condition = column.in_(bindparam("keys", expanding=True))
        for chunk in chunks:
            for k, v in self.conn.execute(query.where(condition), {"keys": list(chunk)}):
                found[k.hex if isinstance(k, uuid.UUID) else k] = v
        return found

    def _insert(self, table: Table, columns: list[str], rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        if self.pg:
            _copy(self.conn, table.name, columns, rows)
        else:
            marks = ", ".join("?" * len(columns))
            self.conn.exec_driver_sql(
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", list(rows)
            )
        return len(rows)

    def _timestamp(self, value: datetime) -> str:
        return self._timestamp_ms(round(value.timestamp() * 1000))

    def _timestamp_ms(self, ms: int) -> str:
        """Text both databases store for a UTC instant: Postgres parses the offset; SQLite keeps
        SQLAlchemy's own format (naive UTC, always with microseconds)."""
        text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(" ", "microseconds")
        return text if self.pg else text[: -len("+00:00")]


# COPY's CSV format is parsed and written in C on both ends; NULL gets an explicit marker so that
# it stays distinct from an empty string.
_COPY_NULL = "\\N"


def _copy(
    conn: Connection, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [_COPY_NULL if v is None else v for v in row] for row in rows
    )
    buf.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        options = f"FORMAT csv, NULL '{_COPY_NULL}'"
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH ({options})", buf)
    finally:
        cursor.close()
