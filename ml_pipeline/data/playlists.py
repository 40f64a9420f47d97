"""Playlists as the continuation task reads them: each MPD playlist with its title, its tracks in
order, and the file it came from (the unit of the train / validation / test split), plus the
tracks' names and artists.

Files are split by a hash of their name, never by row: a playlist and its neighbours in the same
MPD slice land on the same side, and adding files never moves an existing one to another split.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from musicrec.errors import UserError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True, slots=True)
class Playlist:
    file: str  # the MPD slice file's name: the split unit
    pid: int
    name: str
    tracks: tuple[str, ...]  # track URIs in playlist order


@dataclass(frozen=True, slots=True)
class TrackInfo:
    name: str
    artist: str


@dataclass
class PlaylistData:
    playlists: list[Playlist]
    tracks: dict[str, TrackInfo]

    def files(self) -> list[str]:
        return sorted({p.file for p in self.playlists})

    def where(self, files: Iterable[str]) -> list[Playlist]:
        chosen = set(files)
        return [p for p in self.playlists if p.file in chosen]


def load_playlists(paths: Sequence[Path], limit: int | None = None) -> PlaylistData:
    """Every playlist of the MPD files (full or reduced format; folders are expanded), or the
    first `limit` of them."""
    from ml_pipeline.ingest.errors import IngestError
    from ml_pipeline.ingest.mpd import mpd_files, parse_file

    playlists: list[Playlist] = []
    tracks: dict[str, TrackInfo] = {}
    try:
        for path in mpd_files(list(paths)):
            batch = parse_file(path).batch
            for uri, track in batch.tracks.items():
                tracks.setdefault(uri, TrackInfo(track.name, track.artist_name))
            playlists += [
                Playlist(path.name, p.pid, p.name, tuple(p.track_uris)) for p in batch.playlists
            ]
            if limit is not None and len(playlists) >= limit:
                playlists = playlists[:limit]
                break
    except IngestError as exc:
        raise UserError(str(exc)) from exc
    if not playlists:
        raise UserError(f"no MPD playlists in {', '.join(map(str, paths))}")
    return PlaylistData(playlists, tracks)


def split_of(file: str, valid_share: float = 0.1, test_share: float = 0.1) -> str:
    """ "train", "valid" or "test" for a file, from a stable hash of its name."""
    u = zlib.crc32(file.encode()) / 2**32
    if u < test_share:
        return "test"
    if u < test_share + valid_share:
        return "valid"
    return "train"


def split_files(
    files: Iterable[str], valid_share: float = 0.1, test_share: float = 0.1
) -> dict[str, list[str]]:
    """The files of each split (every file in exactly one)."""
    parts: dict[str, list[str]] = {name: [] for name in SPLITS}
    for file in sorted(set(files)):
        parts[split_of(file, valid_share, test_share)].append(file)
    return parts


def playlists_from_database(engine: Engine) -> PlaylistData:
    """Every playlist in the database, with its tracks' names and artists. A playlist's `file`
    is its source and block of 1000 pids (`mpd:3` holds pids 3000-3999): MPD's slice files, so
    neighbours stay on one side of a split as they do when read from the files."""
    from musicrec.db.models import Artist, PlaylistTrack, Track
    from musicrec.db.models import Playlist as PlaylistRow

    query = (
        select(PlaylistRow.id, PlaylistRow.source, PlaylistRow.pid, PlaylistRow.name)
        .add_columns(Track.spotify_uri, Track.name, Artist.name)
        .join(PlaylistTrack, PlaylistTrack.playlist_id == PlaylistRow.id)
        .join(Track, Track.id == PlaylistTrack.track_id)
        .join(Artist, Artist.id == Track.artist_id)
        .order_by(PlaylistRow.id, PlaylistTrack.position)
    )
    found: dict[int, tuple[str, int, str, list[str]]] = {}  # by playlist id, in id order
    tracks: dict[str, TrackInfo] = {}
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=10_000).execute(query)
        for playlist_id, source, pid, name, uri, track, artist in rows:
            found.setdefault(playlist_id, (source, pid, name, []))[3].append(uri)
            tracks.setdefault(uri, TrackInfo(track, artist))
    playlists = [
        Playlist(f"{source}:{pid // 1000}", pid, name, tuple(uris))
        for source, pid, name, uris in found.values()
    ]
    return PlaylistData(playlists, tracks)
