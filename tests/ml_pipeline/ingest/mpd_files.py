"""Small MPD slice files written by tests, in the full and the reduced format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def track(n: int, *, full: bool, duration_ms: int = 200_000) -> dict[str, Any]:
    t: dict[str, Any] = {
        "artist_name": f"Artist {n % 3}",
        "track_uri": f"spotify:track:{n:022d}",
        "track_name": f"Song {n}",
    }
    if full:
        t |= {
            "artist_uri": f"spotify:artist:{n % 3:022d}",
            "album_uri": f"spotify:album:{n:022d}",
            "album_name": f"Album {n}",
            "duration_ms": duration_ms,
        }
    return t


def playlist(pid: int, track_ids: list[int], *, full: bool) -> dict[str, Any]:
    tracks = [track(n, full=full) for n in track_ids]
    p: dict[str, Any] = {
        "name": f"Playlist {pid}",
        "pid": pid,
        "num_tracks": len(tracks),
        "num_followers": 1,
        "num_edits": 2,
        "duration_ms": 180_000 * len(tracks),
        "num_artists": 3,
        "tracks": tracks,
    }
    if full:
        p |= {"collaborative": "false", "modified_at": 1_500_000_000, "num_albums": len(tracks)}
        for pos, t in enumerate(tracks):
            t["pos"] = pos
    return p


def write_slice(path: Path, playlists: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"info": {"slice": "0-999", "version": "v1"}, "playlists": playlists}
    path.write_text(json.dumps(doc, indent=2))
    return path
