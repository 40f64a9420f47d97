"""Ingest benchmark: the bulk path vs a naive per-row ORM insert of the same MPD data, both into
real Postgres, in the same run. Prints JSON.

    python -m benchmarks.ingest [--path ../shared/data/mpd_reduced] [--naive-rows 20000]

The naive path (one INSERT per row through the ORM, with a lookup per track and artist, as a
straightforward loader would write it) is measured on the first --naive-rows playlist-track
rows: its rate does not depend on size, and the whole set would take many minutes.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from benchmarks.common import DEFAULT_PG_URL, emit, scratch_schema
from ml_pipeline.ingest.loader import load_mpd
from ml_pipeline.ingest.mpd import mpd_files, parse_file
from musicrec.config import get_settings
from musicrec.db.models import Artist, ListeningEvent, Playlist, PlaylistTrack, Track, User
from musicrec.events import EventType
from musicrec.records import PlaylistRecord, TrackRecord
from musicrec.text import clean_name, match_key, track_key

TARGET_ROWS_PER_S = 100_000
TARGET_SPEEDUP = 20


def bulk(engine: Engine, path: Path) -> dict[str, float]:
    started = time.perf_counter()
    report = load_mpd(engine, [path])
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = load_mpd(engine, [path])
    written = sum(report.written.as_dict().values())
    return {
        "rows": report.rows_read,
        "playlists": report.playlists_read,
        "seconds": round(seconds, 3),
        "rows_per_s": round(report.rows_read / seconds),
        # Each playlist-track row also becomes a play event; tracks, artists, users too.
        "all_rows_written": written,
        "all_rows_written_per_s": round(written / seconds),
        "reload_seconds": round(time.perf_counter() - started, 3),
        "reload_rows_added": again.written.playlist_tracks + again.written.events,
    }


def naive(engine: Engine, path: Path, max_rows: int) -> dict[str, float]:
    playlists: list[PlaylistRecord] = []
    tracks: dict[str, TrackRecord] = {}
    rows = 0
    for f in mpd_files([path]):
        batch = parse_file(f).batch
        tracks.update(batch.tracks)
        for p in batch.playlists:
            if rows >= max_rows:
                break
            playlists.append(p)
            rows += len(p.track_uris)
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        for p in playlists:
            _naive_playlist(session, p, tracks)
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}


def _naive_playlist(session: Session, p: PlaylistRecord, tracks: dict[str, TrackRecord]) -> None:
    user = User(external_id=p.user_external_id, display_name=p.name)
    session.add(user)
    session.flush()
    playlist = Playlist(source=p.source, pid=p.pid, name=clean_name(p.name), user_id=user.id)
    session.add(playlist)
    session.flush()
    assert p.plays is not None
    for pos, uri in enumerate(p.track_uris):
        t = tracks[uri]
        track = session.scalar(select(Track).where(Track.spotify_uri == uri))
        if track is None:
            key = match_key(t.artist_name)
            artist = session.scalar(select(Artist).where(Artist.match_key == key))
            if artist is None:
                artist = Artist(name=clean_name(t.artist_name), match_key=key)
                session.add(artist)
                session.flush()
            track = Track(
                spotify_uri=uri,
                name=clean_name(t.name),
                artist_id=artist.id,
                match_key=track_key(t.artist_name, t.name),
            )
            session.add(track)
            session.flush()
        session.add(PlaylistTrack(playlist_id=playlist.id, position=pos, track_id=track.id))
        session.flush()
        session.add(
            ListeningEvent(
                event_id=p.plays.event_id(pos),
                user_id=user.id,
                track_id=track.id,
                event_type=EventType.PLAY.value,
                occurred_at=datetime.fromtimestamp(p.plays.starts_ms[pos] / 1000, UTC),
                ms_played=p.plays.ms_played[pos],
                session_id=p.plays.session_id,
                position=pos,
            )
        )
        session.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=get_settings().default_mpd_path)
    parser.add_argument("--database-url", default=DEFAULT_PG_URL)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    args = parser.parse_args()
    if args.path is None:
        parser.error("no MPD data: pass --path or set MPD_PATH")

    with scratch_schema(args.database_url) as engine:
        fast = bulk(engine, args.path)
    with scratch_schema(args.database_url) as engine:
        slow = naive(engine, args.path, args.naive_rows)
    speedup = fast["rows_per_s"] / slow["rows_per_s"]
    emit(
        {
            "benchmark": "ingest",
            "dataset": str(args.path),
            "database": "postgresql",
            "bulk": fast,
            "naive_orm_per_row": slow,
            "speedup": round(speedup, 1),
            "targets": {"rows_per_s": TARGET_ROWS_PER_S, "speedup": TARGET_SPEEDUP},
            "met": {
                "rows_per_s": fast["rows_per_s"] >= TARGET_ROWS_PER_S,
                "speedup": speedup >= TARGET_SPEEDUP,
            },
        }
    )


if __name__ == "__main__":
    main()
