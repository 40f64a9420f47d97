"""Lyrics CSV (artist, song, link, text — the Kaggle "Spotify Million Song Dataset" layout)
joined onto catalog tracks by normalized (artist, title). Re-running changes nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import BindParameter, Engine, bindparam, update

from ml_pipeline.ingest.catalog_join import CatalogIndex, JoinReport, read_csv
from ml_pipeline.ingest.errors import IngestError
from musicrec.db.models import Track
from musicrec.text import track_key

REQUIRED_COLUMNS = {"artist", "song", "text"}


def join_lyrics(
    engine: Engine, path: Path, *, skip_bad: bool = False, index: CatalogIndex | None = None
) -> JoinReport:
    header, rows = read_csv(path)
    if missing := REQUIRED_COLUMNS - set(header):
        raise IngestError(path, "header", f"missing column(s) {', '.join(sorted(missing))}")
    report = JoinReport(path=path)
    lyrics_by_key: dict[str, str] = {}
    for line, row in rows:
        artist, song, text = (row.get(c) or "" for c in ("artist", "song", "text"))
        if not (artist.strip() and song.strip() and text.strip()):
            error = IngestError(path, f"line {line}", "missing artist, song or text")
            if not skip_bad:
                raise error
            report.skipped.append(str(error))
            continue
        report.rows += 1
        lyrics_by_key[track_key(artist, song)] = text.strip()
    with engine.begin() as conn:
        index = index or CatalogIndex.load(conn)
        params: list[dict[str, object]] = []
        for key, text in lyrics_by_key.items():
            if ids := index.by_key.get(key):
                report.matched_by_name += 1
                params.extend({"b_id": track_id, "v_lyrics": text} for track_id in ids)
        if params:
            lyrics: BindParameter[str] = bindparam("v_lyrics")
            stmt = (
                update(Track)
                # Unchanged tracks are left alone: an update moves updated_at (feature job).
                .where(Track.id == bindparam("b_id"), Track.lyrics.is_distinct_from(lyrics))
                .values(lyrics=lyrics)
            )
            report.tracks_updated = conn.execute(stmt, params).rowcount or 0
    return report
