"""A slice of the real shared data, loaded into the real Postgres, checked against an
independent count of the JSON (json module, not the ingest parser)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine

from ml_pipeline.ingest.audio_features import join_audio_features
from ml_pipeline.ingest.loader import load_mpd
from ml_pipeline.ingest.lyrics import join_lyrics
from musicrec.db.stats import catalog_counts
from tests.conftest import backends


def _independent_count(files: list[Path]) -> tuple[int, int, int]:
    playlists = rows = 0
    uris: set[str] = set()
    for f in files:
        for p in json.loads(f.read_text())["playlists"]:
            playlists += 1
            rows += len(p["tracks"])
            uris.update(t["track_uri"] for t in p["tracks"])
    return playlists, rows, len(uris)


@backends
def test_real_mpd_slice_loads_exactly(engine: Engine, shared_data: Path) -> None:
    files = sorted((shared_data / "mpd_reduced").glob("*.json"))[:25]
    files.append(shared_data / "mpd" / "mpd.slice.0-999.json")
    playlists, rows, tracks = _independent_count(files)

    report = load_mpd(engine, files)
    counts = catalog_counts(engine)
    assert report.ok
    assert (counts["playlists"], counts["playlist_tracks"], counts["tracks"]) == (
        playlists,
        rows,
        tracks,
    )
    assert counts["listening_events"] == rows
    assert load_mpd(engine, files).written.playlist_tracks == 0
    assert catalog_counts(engine) == counts


def test_real_side_data_joins(engine: Engine, shared_data: Path) -> None:
    load_mpd(engine, sorted((shared_data / "mpd_reduced").glob("*.json"))[:150])
    hits = join_audio_features(
        engine, shared_data / "audio_features" / "spotify_hit_predictor" / "dataset-of-10s.csv"
    )
    assert hits.rows == 6398 and hits.matched_by_uri > 50 and hits.tracks_updated > 50
    top = join_audio_features(engine, shared_data / "audio_features" / "songs_normalize.csv")
    assert top.matched_by_uri == 0 and top.matched_by_name > 50  # that file has no ids
    lyrics = join_lyrics(engine, shared_data / "lyrics" / "spotify_millsongdata_truncated.csv")
    assert lyrics.rows == 2894 and lyrics.matched_by_name > 0
    counts = catalog_counts(engine)
    assert counts["tracks_with_audio_features"] >= hits.matched_by_uri
    assert counts["tracks_with_lyrics"] == lyrics.tracks_updated
