"""Joining side data (audio features, lyrics) onto catalog tracks: by Spotify URI when the data
has one, else by normalized (artist, title) key."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, select

from ml_pipeline.ingest.errors import IngestError
from musicrec.db.models import Track

# Lyrics fields run to tens of kilobytes; the csv module's default limit is 128 KiB.
csv.field_size_limit(sys.maxsize)


@dataclass
class CatalogIndex:
    by_uri: dict[str, int]
    by_key: dict[str, list[int]]

    @classmethod
    def load(cls, conn: Connection) -> CatalogIndex:
        by_uri: dict[str, int] = {}
        by_key: dict[str, list[int]] = defaultdict(list)
        for track_id, uri, key in conn.execute(
            select(Track.id, Track.spotify_uri, Track.match_key)
        ):
            by_uri[uri] = track_id
            by_key[key].append(track_id)
        return cls(by_uri, dict(by_key))


@dataclass
class JoinReport:
    path: Path
    rows: int = 0
    matched_by_uri: int = 0
    matched_by_name: int = 0
    tracks_updated: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def unmatched(self) -> int:
        return self.rows - self.matched_by_uri - self.matched_by_name


def read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs. utf-8-sig drops the BOM some exports start with."""
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise IngestError(path, "", exc.strerror or str(exc)) from exc
    reader = csv.DictReader(f)
    header = list(reader.fieldnames or [])

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with f:
            try:
                for row in reader:
                    yield reader.line_num, row
            except (csv.Error, UnicodeDecodeError) as exc:
                raise IngestError(path, f"line {reader.line_num}", str(exc)) from exc

    return header, rows()
