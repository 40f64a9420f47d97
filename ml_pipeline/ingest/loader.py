"""Load MPD files into the database.

Each file is parsed completely before anything of it is written, so a bad file is reported and
nothing from it is stored, while the other files still load. Good files are written in chunks of
about CHUNK_ROWS playlist-track rows, all in one transaction: a load is stored whole or not at all,
and re-running it adds nothing. A chunk is written on a background thread while the next one is
parsed (the database server works while Python parses; psycopg2 releases the GIL meanwhile).

An initial load (no playlist tracks or events stored yet) into Postgres defers index and
foreign-key maintenance to the end of the transaction (see musicrec.db.bulk).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select

from ml_pipeline.ingest.mpd import FileResult, mpd_files, parse_file_or_error
from musicrec.db.bulk import WriteCounts, bulk_transaction
from musicrec.db.models import ListeningEvent, PlaylistTrack
from musicrec.records import CatalogBatch

CHUNK_ROWS = 50_000


@dataclass
class MpdReport:
    files: int = 0
    playlists_read: int = 0
    rows_read: int = 0
    written: WriteCounts = field(default_factory=WriteCounts)
    failed_files: list[str] = field(default_factory=list)
    skipped_records: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_files


def is_initial_load(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not any(
            conn.execute(select(func.count()).select_from(select(t).limit(1).subquery())).scalar()
            for t in (PlaylistTrack, ListeningEvent)
        )


def load_mpd(
    engine: Engine,
    paths: list[Path],
    *,
    source: str | None = None,
    limit: int | None = None,
    skip_bad: bool = False,
    defer_indexes: bool | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> MpdReport:
    """Load MPD files; defer_indexes=None decides by is_initial_load."""
    files = mpd_files(paths)
    if defer_indexes is None:
        defer_indexes = is_initial_load(engine)
    report = MpdReport()
    pending = CatalogBatch()
    with (
        bulk_transaction(engine, defer_indexes=defer_indexes) as batch_writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpd-writer") as writer,
    ):
        in_flight: Future[WriteCounts] | None = None

        def flush() -> None:
            nonlocal pending, in_flight
            if in_flight is not None:
                report.written.add(in_flight.result())  # re-raises a failed write
            in_flight = writer.submit(batch_writer.write, pending) if pending.playlists else None
            pending = CatalogBatch()

        for path, parsed in _parse_all(files, source=source, limit=limit, skip_bad=skip_bad):
            if isinstance(parsed, str):
                report.failed_files.append(parsed)
            else:
                report.files += 1
                report.playlists_read += parsed.playlists
                report.rows_read += parsed.rows
                report.skipped_records.extend(parsed.skipped)
                pending.extend(parsed.batch)
                if pending.playlist_track_rows >= CHUNK_ROWS:
                    flush()
            if on_file:
                on_file(path)
        flush()
        flush()  # waits for the last chunk before the transaction ends
    return report


def _parse_all(
    files: list[Path], *, source: str | None, limit: int | None, skip_bad: bool
) -> Iterator[tuple[Path, FileResult | str]]:
    """Parsed files in order, each up to what the limit leaves."""
    remaining = limit
    for path in files:
        if remaining is not None and remaining <= 0:
            return
        result = parse_file_or_error(path, source, skip_bad, remaining)
        if remaining is not None and not isinstance(result, str):
            remaining -= result.playlists
        yield path, result
