"""Bulk, idempotent writes of catalog batches.

Rows go first into temporary staging tables (Postgres: COPY; SQLite: executemany), then one
INSERT ... SELECT ... ON CONFLICT DO NOTHING per table resolves natural keys (URIs, external ids)
to database ids inside the database. A batch is written inside the caller's transaction, and a
batch written twice adds nothing the second time.

For a large initial load into Postgres, ``bulk_transaction(defer_indexes=True)`` drops the
secondary indexes and foreign keys of the big tables for the duration of one transaction and
rebuilds them at the end: one sorted index build and one set-based foreign-key check instead of
one index insert and one trigger per row (about 5x faster here). Unique indexes stay, so
ON CONFLICT still works. The tables are locked for the duration; use it for initial loads.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.functions import FunctionElement

from musicrec.db.models import (
    AUDIO_FEATURES,
    Artist,
    ListeningEvent,
    Playlist,
    PlaylistTrack,
    Track,
    User,
)
from musicrec.events import EventType
from musicrec.records import CatalogBatch, PlaylistRecord
from musicrec.text import clean_name, match_key, track_key

ARTISTS = cast(Table, Artist.__table__)
TRACKS = cast(Table, Track.__table__)
USERS = cast(Table, User.__table__)
PLAYLISTS = cast(Table, Playlist.__table__)
PLAYLIST_TRACKS = cast(Table, PlaylistTrack.__table__)
EVENTS = cast(Table, ListeningEvent.__table__)

_stage = MetaData()


def _temp(name: str, *columns: Column[Any]) -> Table:
    return Table(name, _stage, *columns, prefixes=["TEMPORARY"])


STAGE_ARTISTS = _temp(
    "stage_artists",
    Column("match_key", String),
    Column("name", String),
    Column("spotify_uri", String),
)
STAGE_TRACKS = _temp(
    "stage_tracks",
    Column("spotify_uri", String),
    Column("name", String),
    Column("artist_key", String),
    Column("album_name", String),
    Column("album_uri", String),
    Column("duration_ms", Integer),
    Column("match_key", String),
    *[Column(name, Float) for name in AUDIO_FEATURES],
    Column("genre", String),
)
STAGE_USERS = _temp("stage_users", Column("external_id", String), Column("display_name", String))
STAGE_PLAYLISTS = _temp(
    "stage_playlists",
    Column("source", String),
    Column("pid", BigInteger),
    Column("name", String),
    Column("collaborative", Boolean),
    Column("modified_at", DateTime(timezone=True)),
    Column("num_followers", Integer),
    Column("num_edits", Integer),
    Column("user_external_id", String),
)
# Event ids and times are staged as hex strings and epoch milliseconds: formatting UUID and
# datetime objects costs more than the rest of a row together.
STAGE_PLAYLIST_TRACKS = _temp(
    "stage_playlist_tracks",
    Column("source", String),
    Column("pid", BigInteger),
    Column("position", Integer),
    Column("track_uri", String),
    # The play of this position when the playlist carries PlaylistPlays, else NULL.
    Column("event_id", String(32)),
    Column("session_id", String),
    Column("started_ms", BigInteger),
    Column("ms_played", Integer),
)
STAGE_EVENTS = _temp(
    "stage_events",
    Column("event_id", String(32)),
    Column("user_external_id", String),
    Column("track_uri", String),
    Column("event_type", String),
    Column("occurred_at_ms", BigInteger),
    Column("ms_played", Integer),
    Column("device", String),
    Column("session_id", String),
    Column("position", Integer),
)
STAGE_TABLES = (
    STAGE_ARTISTS,
    STAGE_TRACKS,
    STAGE_USERS,
    STAGE_PLAYLISTS,
    STAGE_PLAYLIST_TRACKS,
    STAGE_EVENTS,
)


@dataclass
class WriteCounts:
    """Rows a write actually added (0 everywhere when the batch was already stored)."""

    artists: int = 0
    tracks: int = 0
    users: int = 0
    playlists: int = 0
    playlist_tracks: int = 0
    events: int = 0

    def add(self, other: WriteCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@contextmanager
def bulk_transaction(engine: Engine, *, defer_indexes: bool = False) -> Iterator[Connection]:
    """One transaction for many write_batch_in calls; see the module docstring for
    defer_indexes (Postgres only, ignored on SQLite)."""
    with engine.begin() as conn:
        deferred = _drop_secondary(conn) if defer_indexes and _is_pg(conn) else []
        yield conn
        for ddl in deferred:
            conn.execute(ddl)


def write_batch(engine: Engine, batch: CatalogBatch) -> WriteCounts:
    """Store a batch in one transaction; nothing of it is kept if any part fails."""
    with engine.begin() as conn:
        return write_batch_in(conn, batch)


def write_batch_in(conn: Connection, batch: CatalogBatch) -> WriteCounts:
    _drop_staging(conn)  # a pooled SQLite connection may keep them from a failed write
    for table in STAGE_TABLES:
        table.create(conn)
    _fill_staging(conn, batch)
    counts = _merge(conn)
    _drop_staging(conn)
    return counts


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _drop_staging(conn: Connection) -> None:
    temp_schema = "pg_temp" if _is_pg(conn) else "temp"
    for table in STAGE_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {temp_schema}.{table.name}"))


# The high-volume tables a bulk load fills; their non-unique indexes and foreign keys are rebuilt.
BULK_TABLES = (TRACKS, PLAYLIST_TRACKS, EVENTS)


def _drop_secondary(conn: Connection) -> list[ExecutableDDLElement]:
    restore: list[ExecutableDDLElement] = []
    for table in BULK_TABLES:
        for fk in table.foreign_key_constraints:
            conn.execute(DropConstraint(fk))
            restore.append(AddConstraint(fk))
        for index in table.indexes:
            if not index.unique:
                conn.execute(DropIndex(index))
                restore.append(CreateIndex(index))
    # Indexes before foreign keys: each FK check is then one join using the rebuilt indexes.
    return sorted(restore, key=lambda ddl: isinstance(ddl, AddConstraint))


def _fill_staging(conn: Connection, batch: CatalogBatch) -> None:
    artists: dict[str, tuple[str, str | None]] = {}
    track_rows = []
    for t in batch.tracks.values():
        artist_name = clean_name(t.artist_name)
        a_key = match_key(artist_name)
        artists.setdefault(a_key, (artist_name, t.artist_uri))
        feats = t.audio_features or {}
        track_rows.append(
            (
                t.uri,
                clean_name(t.name),
                a_key,
                clean_name(t.album_name) if t.album_name else None,
                t.album_uri,
                t.duration_ms,
                track_key(artist_name, t.name),
                *[feats.get(name) for name in AUDIO_FEATURES],
                t.genre,
            )
        )
    _load(conn, STAGE_ARTISTS, [(k, n, u) for k, (n, u) in artists.items()])
    _load(conn, STAGE_TRACKS, track_rows)
    _load(conn, STAGE_USERS, list(batch.users.items()))
    _load(
        conn,
        STAGE_PLAYLISTS,
        [
            (
                p.source,
                p.pid,
                clean_name(p.name),
                p.collaborative,
                p.modified_at,
                p.num_followers,
                p.num_edits,
                p.user_external_id,
            )
            for p in batch.playlists
        ],
    )
    _load(
        conn,
        STAGE_PLAYLIST_TRACKS,
        [row for p in batch.playlists for row in _playlist_track_rows(p)],
    )
    _load(
        conn,
        STAGE_EVENTS,
        [
            (
                e.event_id.hex,
                e.user_external_id,
                e.track_uri,
                e.event_type.value,
                int(e.occurred_at.timestamp() * 1000),
                e.ms_played,
                e.device,
                e.session_id,
                e.position,
            )
            for e in batch.events
        ],
    )


def _playlist_track_rows(p: PlaylistRecord) -> Iterator[tuple[Any, ...]]:
    if p.plays is None:
        for pos, uri in enumerate(p.track_uris):
            yield (p.source, p.pid, pos, uri, None, None, None, None)
        return
    base, session = p.plays.event_id_base.int, p.plays.session_id
    for pos, (uri, start, ms) in enumerate(
        zip(p.track_uris, p.plays.starts_ms, p.plays.ms_played, strict=True)
    ):
        yield (p.source, p.pid, pos, uri, f"{base ^ pos:032x}", session, start, ms)


def _load(conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if _is_pg(conn):
        _copy(conn, table, rows)
    else:
        names = [c.name for c in table.columns]
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])


# COPY's CSV format is parsed and written in C on both ends; NULL gets an explicit marker so that
# it stays distinct from an empty string.
_COPY_NULL = "\\N"


def _copy(conn: Connection, table: Table, rows: Iterable[tuple[Any, ...]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [_COPY_NULL if v is None else v for v in row] for row in rows
    )
    buf.seek(0)
    cols = ", ".join(c.name for c in table.columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY {table.name} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '{_COPY_NULL}')", buf
        )
        # Fresh temp tables have no statistics; without them the merge joins go nested-loop.
        cursor.execute(f"ANALYZE {table.name}")
    finally:
        cursor.close()


class uuid_from_hex(FunctionElement[uuid.UUID]):  # noqa: N801 (SQL function style)
    """32 hex digits to the dialect's UUID column value."""

    type = Uuid()
    inherit_cache = True


@compiles(uuid_from_hex, "postgresql")
def _uuid_from_hex_pg(element: uuid_from_hex, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS UUID)"


@compiles(uuid_from_hex, "sqlite")
def _uuid_from_hex_sqlite(element: uuid_from_hex, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)  # SQLAlchemy stores UUIDs as 32 hex digits


class timestamp_from_epoch_ms(FunctionElement[datetime]):  # noqa: N801
    """Epoch milliseconds to the dialect's timestamp-with-time-zone value (UTC)."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(timestamp_from_epoch_ms, "postgresql")
def _ts_pg(element: timestamp_from_epoch_ms, compiler: Any, **kw: Any) -> str:
    return f"to_timestamp({compiler.process(element.clauses, **kw)} / 1000.0)"


@compiles(timestamp_from_epoch_ms, "sqlite")
def _ts_sqlite(element: timestamp_from_epoch_ms, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy's SQLite DateTime text format, with microseconds.
    ms = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', {ms} / 1000.0, 'unixepoch') || '000'"


def _insert(conn: Connection, table: Table) -> Any:
    dialect_insert = postgresql.insert if _is_pg(conn) else sqlite.insert
    return dialect_insert(table)


def _merge(conn: Connection) -> WriteCounts:
    counts = WriteCounts()
    artists, tracks, users, playlists, events = ARTISTS, TRACKS, USERS, PLAYLISTS, EVENTS
    s_art, s_trk, s_usr = STAGE_ARTISTS.c, STAGE_TRACKS.c, STAGE_USERS.c
    s_pl, s_pt, s_ev = STAGE_PLAYLISTS.c, STAGE_PLAYLIST_TRACKS.c, STAGE_EVENTS.c

    # "WHERE true" keeps SQLite from reading ON CONFLICT as part of a join's ON clause.
    counts.artists = _run_insert(
        conn,
        artists,
        ["match_key", "name", "spotify_uri"],
        select(s_art.match_key, s_art.name, s_art.spotify_uri).where(true()),
        ["match_key"],
    )
    track_cols = [
        "spotify_uri",
        "name",
        "album_name",
        "album_uri",
        "duration_ms",
        "match_key",
        *AUDIO_FEATURES,
        "genre",
    ]
    counts.tracks = _run_insert(
        conn,
        tracks,
        [*track_cols, "artist_id"],
        select(*[s_trk[c] for c in track_cols], artists.c.id)
        .join_from(STAGE_TRACKS, artists, artists.c.match_key == s_trk.artist_key)
        .where(true()),
        ["spotify_uri"],
    )
    # A track first seen in a reduced-format file gains its album and duration from a full one.
    conn.execute(
        update(tracks)
        .where(
            tracks.c.spotify_uri == s_trk.spotify_uri,
            tracks.c.duration_ms.is_(None),
            s_trk.duration_ms.is_not(None),
        )
        .values(
            duration_ms=s_trk.duration_ms, album_name=s_trk.album_name, album_uri=s_trk.album_uri
        )
    )
    counts.users = _run_insert(
        conn,
        users,
        ["external_id", "display_name"],
        select(s_usr.external_id, s_usr.display_name).where(true()),
        ["external_id"],
    )
    pl_cols = [
        "source",
        "pid",
        "name",
        "collaborative",
        "modified_at",
        "num_followers",
        "num_edits",
    ]
    counts.playlists = _run_insert(
        conn,
        playlists,
        [*pl_cols, "user_id"],
        select(*[s_pl[c] for c in pl_cols], users.c.id)
        .join_from(STAGE_PLAYLISTS, users, users.c.external_id == s_pl.user_external_id)
        .where(true()),
        ["source", "pid"],
    )
    counts.playlist_tracks = _run_insert(
        conn,
        PLAYLIST_TRACKS,
        ["playlist_id", "position", "track_id"],
        select(playlists.c.id, s_pt.position, tracks.c.id)
        .join_from(
            STAGE_PLAYLIST_TRACKS,
            playlists,
            and_(playlists.c.source == s_pt.source, playlists.c.pid == s_pt.pid),
        )
        .join(tracks, tracks.c.spotify_uri == s_pt.track_uri)
        .where(true()),
        ["playlist_id", "position"],
    )
    # Plays of playlists that carry PlaylistPlays, derived from the staged playlist tracks.
    counts.events = _run_insert(
        conn,
        events,
        ["event_id", "occurred_at", "event_type", "ms_played", "session_id", "position"]
        + ["user_id", "track_id"],
        select(
            uuid_from_hex(s_pt.event_id),
            timestamp_from_epoch_ms(s_pt.started_ms),
            literal(EventType.PLAY.value),
            s_pt.ms_played,
            s_pt.session_id,
            s_pt.position,
            playlists.c.user_id,
            tracks.c.id,
        )
        .join_from(
            STAGE_PLAYLIST_TRACKS,
            playlists,
            and_(playlists.c.source == s_pt.source, playlists.c.pid == s_pt.pid),
        )
        .join(tracks, tracks.c.spotify_uri == s_pt.track_uri)
        .where(s_pt.event_id.is_not(None)),
        ["event_id"],
    )
    ev_cols = ["event_type", "ms_played", "device", "session_id", "position"]
    counts.events += _run_insert(
        conn,
        events,
        ["event_id", "occurred_at", *ev_cols, "user_id", "track_id"],
        select(
            uuid_from_hex(s_ev.event_id),
            timestamp_from_epoch_ms(s_ev.occurred_at_ms),
            *[s_ev[c] for c in ev_cols],
            users.c.id,
            tracks.c.id,
        )
        .join_from(STAGE_EVENTS, users, users.c.external_id == s_ev.user_external_id)
        .join(tracks, tracks.c.spotify_uri == s_ev.track_uri)
        .where(true()),
        ["event_id"],
    )
    return counts


def _run_insert(
    conn: Connection, table: Table, columns: list[str], query: Any, conflict: list[str]
) -> int:
    stmt = (
        _insert(conn, table)
        .from_select(columns, query)
        .on_conflict_do_nothing(index_elements=conflict)
    )
    return int(conn.execute(stmt).rowcount or 0)
