"""Bulk, idempotent writes of catalog batches.

A write looks up which of a batch's natural keys (artist keys, track URIs, user ids,
(source, pid), event ids) the database has already, inserts only the new rows straight into the
tables (COPY on Postgres, the driver's executemany on SQLite), and reads back the ids the
database gave them. Existing rows are left alone, so a batch written twice adds nothing the
second time. A BatchWriter remembers the ids it resolved for the rest of its transaction.

Check-then-insert must not race: writers take a transaction-scoped advisory lock on Postgres
(SQLite allows one writer at a time anyway).

For a large initial load into Postgres, ``bulk_transaction(defer_indexes=True)`` drops the
secondary indexes and foreign keys of the big tables for the duration of one transaction and
rebuilds them at the end: one sorted index build and one set-based foreign-key check instead of
one index insert and one trigger per row (about 5x faster here). Unique indexes stay. The tables
are locked meanwhile; use it for initial loads.

The steps that know nothing of catalogs (key lookups, COPY or executemany inserts, id
resolution) are in musicrec.db.keyed_rows, which BatchWriter builds on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex
from sqlalchemy.sql.ddl import ExecutableDDLElement

from musicrec.db.keyed_rows import KeyedRows
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

# The high-volume tables a bulk load fills; their non-unique indexes and foreign keys are rebuilt.
BULK_TABLES = (TRACKS, PLAYLIST_TRACKS, EVENTS)

TRACK_COLUMNS = [
    "spotify_uri",
    "name",
    "artist_id",
    "album_name",
    "album_uri",
    "duration_ms",
    "match_key",
    *AUDIO_FEATURES,
    "genre",
]
EVENT_COLUMNS = [
    "event_id",
    "user_id",
    "track_id",
    "event_type",
    "occurred_at",
    "ms_played",
    "device",
    "session_id",
    "position",
]
PLAYLIST_COLUMNS = [
    "source",
    "pid",
    "name",
    "collaborative",
    "modified_at",
    "num_followers",
    "num_edits",
    "user_id",
]
WRITER_LOCK = 0x6D75_7369_6372  # "musicr": advisory-lock id of catalog writers


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


class UnknownReference(ValueError):
    """An event names a user or track that is neither in its batch nor in the database."""


def write_batch(engine: Engine, batch: CatalogBatch) -> WriteCounts:
    """Store a batch in one transaction; nothing of it is kept if any part fails."""
    with engine.begin() as conn:
        return BatchWriter(conn).write(batch)


@contextmanager
def bulk_transaction(engine: Engine, *, defer_indexes: bool = False) -> Iterator[BatchWriter]:
    """One transaction for many writes; see the module docstring for defer_indexes (Postgres
    only, ignored on SQLite)."""
    with engine.begin() as conn:
        writer = BatchWriter(conn)
        deferred = _drop_secondary(conn) if defer_indexes and writer.pg else []
        yield writer
        for ddl in deferred:
            conn.execute(ddl)


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


class BatchWriter(KeyedRows):
    """Writes batches on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.artist_ids: dict[str, int] = {}
        self.track_ids: dict[str, int] = {}
        self.user_ids: dict[str, int] = {}
        if self.pg:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")

    def write(self, batch: CatalogBatch) -> WriteCounts:
        counts = WriteCounts()
        artist_rows: dict[str, tuple[Any, ...]] = {}
        for t in batch.tracks.values():
            name = clean_name(t.artist_name)
            artist_rows.setdefault(match_key(name), (name, match_key(name), t.artist_uri))
        counts.artists, _ = self._resolve(
            ARTISTS, "match_key", self.artist_ids, artist_rows, ["name", "match_key", "spotify_uri"]
        )
        counts.tracks = self._write_tracks(batch)
        counts.users, _ = self._resolve(
            USERS,
            "external_id",
            self.user_ids,
            {ext: (ext, name) for ext, name in batch.users.items()},
            ["external_id", "display_name"],
        )
        new_playlists = self._write_playlists(batch.playlists)
        counts.playlists = len(new_playlists)
        counts.playlist_tracks = self._insert(
            PLAYLIST_TRACKS,
            ["playlist_id", "position", "track_id"],
            [
                (pl_id, pos, self.track_ids[uri])
                for p, pl_id in new_playlists
                for pos, uri in enumerate(p.track_uris)
            ],
        )
        counts.events = self._write_plays(new_playlists) + self._write_events(batch)
        return counts

    def _write_tracks(self, batch: CatalogBatch) -> int:
        rows: dict[str, tuple[Any, ...]] = {}
        for uri, t in batch.tracks.items():
            if uri in self.track_ids:
                continue
            artist = clean_name(t.artist_name)
            feats = t.audio_features or {}
            rows[uri] = (
                uri,
                clean_name(t.name),
                self.artist_ids[match_key(artist)],
                clean_name(t.album_name) if t.album_name else None,
                t.album_uri,
                t.duration_ms,
                track_key(artist, t.name),
                *[feats.get(name) for name in AUDIO_FEATURES],
                t.genre,
            )
        added, existed = self._resolve(TRACKS, "spotify_uri", self.track_ids, rows, TRACK_COLUMNS)
        self._fill_missing_durations(batch, existed)
        return added

    def _fill_missing_durations(self, batch: CatalogBatch, uris: set[str]) -> None:
        """A track first seen in a reduced-format file gains album and duration from a full one."""
        known = [uri for uri in uris if batch.tracks[uri].duration_ms is not None]
        if not known:
            return
        lacking = self._lookup(TRACKS, "spotify_uri", known, where=TRACKS.c.duration_ms.is_(None))
        if lacking:
            self.conn.execute(
                TRACKS.update()
                .where(TRACKS.c.id == bindparam("b_id"))
                .values(
                    duration_ms=bindparam("b_ms"),
                    album_name=bindparam("b_album"),
                    album_uri=bindparam("b_album_uri"),
                ),
                [
                    {
                        "b_id": track_id,
                        "b_ms": batch.tracks[uri].duration_ms,
                        "b_album": batch.tracks[uri].album_name,
                        "b_album_uri": batch.tracks[uri].album_uri,
                    }
                    for uri, track_id in lacking.items()
                ],
            )

    def _write_playlists(self, playlists: list[PlaylistRecord]) -> list[tuple[PlaylistRecord, int]]:
        """Insert playlists the database does not have; return those with their new ids."""
        by_key = {(p.source, p.pid): p for p in playlists}
        existing: set[tuple[str, int]] = set()
        for source in {p.source for p in playlists}:
            pids = [pid for (s, pid) in by_key if s == source]
            found = self._lookup(PLAYLISTS, "pid", pids, where=PLAYLISTS.c.source == source)
            existing.update((source, pid) for pid in found)
        new = [p for key, p in by_key.items() if key not in existing]
        self._insert(
            PLAYLISTS,
            PLAYLIST_COLUMNS,
            [
                (
                    p.source,
                    p.pid,
                    clean_name(p.name),
                    p.collaborative,
                    self._timestamp(p.modified_at) if p.modified_at else None,
                    p.num_followers,
                    p.num_edits,
                    self.user_ids[p.user_external_id],
                )
                for p in new
            ],
        )
        ids: dict[tuple[str, int], int] = {}
        for source in {p.source for p in new}:
            pids = [p.pid for p in new if p.source == source]
            found = self._lookup(PLAYLISTS, "pid", pids, where=PLAYLISTS.c.source == source)
            ids.update(((source, pid), pl_id) for pid, pl_id in found.items())
        return [(p, ids[(p.source, p.pid)]) for p in new]

    def _write_plays(self, playlists: list[tuple[PlaylistRecord, int]]) -> int:
        """One play event per position of playlists that carry PlaylistPlays (MPD)."""
        rows = []
        play = EventType.PLAY.value
        for p, _ in playlists:
            if p.plays is None:
                continue
            user = self.user_ids[p.user_external_id]
            base, session = p.plays.event_id_base.int, p.plays.session_id
            for pos, (uri, start, ms) in enumerate(
                zip(p.track_uris, p.plays.starts_ms, p.plays.ms_played, strict=True)
            ):
                rows.append(
                    (
                        f"{base ^ pos:032x}",
                        user,
                        self.track_ids[uri],
                        play,
                        self._timestamp_ms(start),
                        ms,
                        None,
                        session,
                        pos,
                    )
                )
        return self._insert(EVENTS, EVENT_COLUMNS, rows)

    def _write_events(self, batch: CatalogBatch) -> int:
        if not batch.events:
            return 0
        events = {e.event_id.hex: e for e in batch.events}
        users = {e.user_external_id for e in events.values()}
        self._require_ids(USERS, "external_id", self.user_ids, users)
        self._require_ids(
            TRACKS, "spotify_uri", self.track_ids, {e.track_uri for e in events.values()}
        )
        stored = self._lookup(EVENTS, "event_id", [e.event_id for e in events.values()])
        rows = [
            (
                hex_id,
                self.user_ids[e.user_external_id],
                self.track_ids[e.track_uri],
                e.event_type.value,
                self._timestamp(e.occurred_at),
                e.ms_played,
                e.device,
                e.session_id,
                e.position,
            )
            for hex_id, e in events.items()
            if hex_id not in stored
        ]
        return self._insert(EVENTS, EVENT_COLUMNS, rows)

    def _require_ids(self, table: Table, key: str, cache: dict[str, int], keys: set[str]) -> None:
        cache.update(self._lookup(table, key, [k for k in keys if k not in cache]))
        if unknown := sorted(k for k in keys if k not in cache):
            raise UnknownReference(
                f"events refer to unknown {table.name}: {', '.join(unknown[:5])}"
            )
