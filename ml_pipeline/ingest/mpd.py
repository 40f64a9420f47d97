"""Spotify Million Playlist Dataset (MPD) ingest, full and reduced formats.

Mapping (MPD has no listeners and no play times):
- each playlist becomes one listener, external id ``mpd:<source>:<pid>``;
- each playlist track becomes one ``play`` event, in playlist order, as one listening session;
- the plays end at the playlist's ``modified_at``; each lasts the track's ``duration_ms``, so track
  i starts at modified_at minus the durations of tracks i..n-1;
- the reduced format has neither ``modified_at`` nor track durations: the anchor is the MPD
  snapshot date minus a stable per-playlist offset of up to 28 days (so time-windowed features see
  a spread, not one instant), and each track lasts the playlist's mean track length
  (``duration_ms / num_tracks``), or 210 s when that is missing too.
(source, pid) identifies a playlist and makes loads idempotent. ``source`` names the dataset the
pid belongs to, and is derived from the content, never from the file's name or folder, so the
same playlist loads as the same rows from wherever it is read:
- ``mpd``: a playlist in the full format (it has ``modified_at``) carries the MPD's own pid,
  unique within the whole MPD. The pid must lie in the file's slice, ``info.slice`` or else the
  ``mpd.slice.<first>-<last>.json`` name (MPD slice i-j holds pids i..j); a file that is neither
  or whose pids lie outside its slice (renumbered) needs an explicit ``source``.
- ``mpd_reduced``: a playlist in the reduced format (no ``modified_at``). Its pids are the
  reduced dataset's own numbering: the shared ``mpd_reduced`` data renumbered them 0..5364 over
  its 711 files, outside their slices' ranges and overlapping real MPD pids, so they must not
  share the ``mpd`` source. Another reduced dataset with its own numbering needs its own
  ``source``.
The listener ids of the shared data are the ones a folder-named source gave them before
(``mpd:mpd:<pid>`` for ``mpd/``, ``mpd:mpd_reduced:<pid>`` for ``mpd_reduced/``).
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ijson

from ml_pipeline.ingest.errors import BadRecord, IngestError
from musicrec.records import CatalogBatch, PlaylistPlays, PlaylistRecord, TrackRecord
from musicrec.text import SPOTIFY_TRACK_PREFIX

MPD_SNAPSHOT = datetime(2017, 11, 1, tzinfo=UTC)
REDUCED_SPREAD_SECONDS = 28 * 24 * 3600
DEFAULT_TRACK_MS = 210_000
EVENT_NAMESPACE = uuid.UUID("5b0c1f0e-3a47-4c1e-9d7e-6f3e2b8a9c10")
MPD_SOURCE = "mpd"  # full-format playlists: the MPD's own pids
REDUCED_SOURCE = "mpd_reduced"  # reduced-format playlists: the reduced dataset's numbering
_SLICE = re.compile(r"(\d+)-(\d+)")
_SLICE_FILE = re.compile(r"mpd\.slice\.(\d+)-(\d+)\.json")


@dataclass
class FileResult:
    path: Path
    batch: CatalogBatch
    playlists: int = 0
    rows: int = 0
    skipped: list[str] = field(default_factory=list)  # messages of bad records passed over


def mpd_files(paths: list[Path]) -> list[Path]:
    """Expand folders to their *.json files, in a stable order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.json")))
        elif p.exists():
            files.append(p)
        else:
            raise IngestError(p, "", "no such file or folder")
    return files


def parse_file(
    path: Path, *, source: str | None = None, limit: int | None = None, skip_bad: bool = False
) -> FileResult:
    """Parse one MPD slice file into a batch. Raises IngestError naming the file and record;
    with skip_bad, bad records (and a truncated tail) are passed over and listed instead.
    Without `source`, each playlist's is derived from the content (module docstring)."""
    result = FileResult(path=path, batch=CatalogBatch())
    dataset = _Dataset(path, source)
    index = -1
    try:
        for index, raw in enumerate(_stream_playlists(path)):
            if limit is not None and result.playlists >= limit:
                break
            try:
                _add_playlist(result.batch, raw, dataset.source_of(index, raw))
            except BadRecord as exc:
                error = IngestError(path, _record_name(index, raw), str(exc))
                if not skip_bad:
                    raise error from exc
                result.skipped.append(str(error))
                continue
            result.playlists += 1
            result.rows += len(raw["tracks"])
    except ijson.JSONError as exc:
        where = f"invalid JSON after playlist #{index}" if index >= 0 else "invalid JSON"
        error = IngestError(path, where, _first_line(exc))
        if not skip_bad:
            raise error from exc
        result.skipped.append(str(error))
    except OSError as exc:
        raise IngestError(path, "", exc.strerror or str(exc)) from exc
    return result


def parse_file_or_error(
    path: Path, source: str | None, skip_bad: bool, limit: int | None = None
) -> FileResult | str:
    """parse_file with an error returned as its one-line message, to be reported and passed."""
    try:
        return parse_file(path, source=source, limit=limit, skip_bad=skip_bad)
    except IngestError as exc:
        return str(exc)


class _Dataset:
    """The source of a file's playlists: the explicit one, or derived from each playlist."""

    def __init__(self, path: Path, source: str | None) -> None:
        self.path = path
        self.source = source
        self._slice: tuple[int, int] | None = None
        self._slice_read = False

    def source_of(self, index: int, raw: Any) -> str:
        if self.source:
            return self.source
        if not isinstance(raw, dict) or "modified_at" not in raw:
            return REDUCED_SOURCE  # (a record that is not an object fails as a bad record)
        pid = raw.get("pid")
        span = self.slice()
        if span is None:
            raise IngestError(
                self.path,
                _record_name(index, raw),
                "cannot tell which MPD slice this is (no info.slice, and the name is not "
                "mpd.slice.<first>-<last>.json), so not whether its pids are the MPD's: "
                "pass --source NAME",
            )
        if isinstance(pid, int) and not span[0] <= pid <= span[1]:
            raise IngestError(
                self.path,
                _record_name(index, raw),
                f"pid {pid} is outside the file's slice {span[0]}-{span[1]}, so it is not the "
                "MPD's own pid (renumbered data): pass --source NAME",
            )
        return MPD_SOURCE

    def slice(self) -> tuple[int, int] | None:
        """The pid range of the file: its info.slice, else its name; None when neither."""
        if not self._slice_read:
            self._slice_read = True
            self._slice = _slice_of(self.path)
        return self._slice


def _slice_of(path: Path) -> tuple[int, int] | None:
    info: Any = None
    try:
        with path.open("rb") as f:  # "info" comes first in MPD files: this stops right there
            info = next(ijson.items(f, "info"), None)
    except (ijson.JSONError, OSError):
        pass  # the playlists' own parse reports it
    slice_text = info.get("slice") if isinstance(info, dict) else None
    match = _SLICE.fullmatch(slice_text) if isinstance(slice_text, str) else None
    match = match or _SLICE_FILE.fullmatch(path.name)
    return (int(match[1]), int(match[2])) if match else None


def _stream_playlists(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        yield from ijson.items(f, "playlists.item", use_float=True)


def _record_name(index: int, raw: Any) -> str:
    pid = raw.get("pid") if isinstance(raw, dict) else None
    return f"playlist #{index} (pid {pid})" if pid is not None else f"playlist #{index}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _require(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BadRecord(f"{what} has no valid '{key}' (got {value!r:.40})")
    return value


def _optional_int(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"'{key}' is not a number (got {value!r:.40})")
    return int(value)


def _add_playlist(batch: CatalogBatch, raw: Any, source: str) -> None:
    if not isinstance(raw, dict):
        raise BadRecord("playlist is not an object")
    pid = _require(raw, "pid", int, "playlist")
    name = _require(raw, "name", str, "playlist")
    tracks = _require(raw, "tracks", list, "playlist")
    modified_at = _optional_int(raw, "modified_at")
    num_tracks = _optional_int(raw, "num_tracks")
    total_ms = _optional_int(raw, "duration_ms")

    parsed: list[TrackRecord] = []
    for pos, t in enumerate(tracks):
        if not isinstance(t, dict):
            raise BadRecord(f"track {pos} is not an object")
        uri = _require(t, "track_uri", str, f"track {pos}")
        if not uri.startswith(SPOTIFY_TRACK_PREFIX) or len(uri) <= len(SPOTIFY_TRACK_PREFIX):
            raise BadRecord(f"track {pos} has a malformed track_uri {uri!r:.60}")
        parsed.append(
            TrackRecord(
                uri=uri,
                name=_require(t, "track_name", str, f"track {pos}"),
                artist_name=_require(t, "artist_name", str, f"track {pos}"),
                artist_uri=t.get("artist_uri"),
                album_name=t.get("album_name"),
                album_uri=t.get("album_uri"),
                duration_ms=_optional_int(t, "duration_ms"),
            )
        )

    collaborative = raw.get("collaborative")
    user = f"mpd:{source}:{pid}"
    batch.users.setdefault(user, name)
    batch.playlists.append(
        PlaylistRecord(
            source=source,
            pid=pid,
            name=name,
            user_external_id=user,
            track_uris=[t.uri for t in parsed],
            collaborative=None if collaborative is None else str(collaborative).lower() == "true",
            modified_at=datetime.fromtimestamp(modified_at, UTC) if modified_at else None,
            num_followers=_optional_int(raw, "num_followers"),
            num_edits=_optional_int(raw, "num_edits"),
            plays=_plays(source, pid, parsed, modified_at, total_ms, num_tracks),
        )
    )
    for t in parsed:
        batch.tracks.setdefault(t.uri, t)


def _plays(
    source: str,
    pid: int,
    tracks: list[TrackRecord],
    modified_at: int | None,
    total_ms: int | None,
    num_tracks: int | None,
) -> PlaylistPlays:
    if modified_at:
        end_ms = modified_at * 1000
    else:
        offset = zlib.crc32(f"{source}:{pid}".encode()) % REDUCED_SPREAD_SECONDS
        end_ms = int(MPD_SNAPSHOT.timestamp() - offset) * 1000
    mean_ms = total_ms // num_tracks if total_ms and num_tracks else DEFAULT_TRACK_MS
    durations = [t.duration_ms or mean_ms for t in tracks]
    starts = []
    start = end_ms - sum(durations)
    for ms in durations:
        starts.append(start)
        start += ms
    session = f"mpd:{source}:{pid}"
    return PlaylistPlays(
        session_id=session,
        event_id_base=uuid.uuid5(EVENT_NAMESPACE, session),
        starts_ms=starts,
        ms_played=durations,
    )
