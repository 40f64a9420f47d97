"""Audio-feature layouts and lyrics joined onto the catalog: parsing, match precedence, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from ml_pipeline.ingest.audio_features import (
    join_audio_feature_files,
    join_audio_features,
    parse_features,
)
from ml_pipeline.ingest.errors import IngestError
from ml_pipeline.ingest.loader import load_mpd
from ml_pipeline.ingest.lyrics import join_lyrics
from musicrec.db.models import Track
from tests.conftest import backends
from tests.ml_pipeline.ingest.mpd_files import playlist, write_slice

ID1, ID2 = f"{1:022d}", f"{2:022d}"

HIT_PREDICTOR = (
    "track,artist,uri,danceability,energy,key,loudness,mode,speechiness,acousticness,"
    "instrumentalness,liveness,valence,tempo,duration_ms,time_signature,chorus_hit,sections,"
    "target,decade\n"
    f"Song 1,Artist 1,spotify:track:{ID1},0.5,0.6,4,-7.2,1,0.03,0.3,0,0.15,0.5,133.0,196707,4,"
    "30.8,13,1,2000\n"
)
SPOTIFY_FEATURES = (
    "\ufeffgenre,artist_name,track_name,track_id,popularity,acousticness,danceability,"
    "duration_ms,energy,instrumentalness,key,liveness,loudness,mode,speechiness,tempo,"
    "time_signature,valence\n"
    f"Dance,Artist 2,Song 2,{ID2},61,0.2,0.8,200000,0.9,0,C#,0.3,-5.1,Minor,0.05,120.0,"
    "03-Apr,0.7\n"
)
TOP_HITS = (
    "artist,song,duration_ms,explicit,year,popularity,danceability,energy,key,loudness,mode,"
    "speechiness,acousticness,instrumentalness,liveness,valence,tempo,genre\n"
    # Matches track 1 by name but must not override its exact (URI) match.
    "ARTIST 1,Song 1 (feat. Someone),1,False,2001,70,0.1,0.1,1,-3,0,0.1,0.1,0,0.1,0.1,99,"
    '"rock, pop"\n'
    # Matches track 3 by name only.
    'Artist 0,Song 3,1,False,2001,70,0.2,0.2,1,-3,0,0.1,0.1,0,0.1,0.1,99,"pop, R&B"\n'
    "Nobody,Nothing,1,False,2001,70,0.2,0.2,1,-3,0,0.1,0.1,0,0.1,0.1,99,pop\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _track(engine: Engine, n: int) -> Track:
    with engine.connect() as conn:
        row = conn.execute(select(Track).where(Track.spotify_uri == f"spotify:track:{n:022d}"))
        return row.one()  # type: ignore[return-value]


@pytest.fixture
def catalog(engine: Engine, tmp_path: Path) -> Engine:
    load_mpd(
        engine, [write_slice(tmp_path / "mpd" / "s.json", [playlist(0, [1, 2, 3], full=False)])]
    )
    return engine


def test_layouts_normalize_to_one_shape(tmp_path: Path) -> None:
    (hit,), _ = parse_features(_write(tmp_path, "hit.csv", HIT_PREDICTOR))
    (sf,), _ = parse_features(_write(tmp_path, "sf.csv", SPOTIFY_FEATURES))
    top, _ = parse_features(_write(tmp_path, "top.csv", TOP_HITS))
    assert hit.uri == f"spotify:track:{ID1}" and hit.features["key"] == 4
    assert sf.uri == f"spotify:track:{ID2}" and sf.features["key"] == 1  # C#
    assert sf.features["mode"] == 0 and sf.features["time_signature"] == 3  # Minor, "03-Apr"
    assert sf.genre == "dance" and sf.popularity == 61
    assert top[0].uri is None and top[0].genre == "rock"
    assert set(hit.features) == set(sf.features) == set(top[0].features)


@backends
def test_uri_match_wins_over_name_match(catalog: Engine, tmp_path: Path) -> None:
    for name, text in (("hit.csv", HIT_PREDICTOR), ("sf.csv", SPOTIFY_FEATURES)):
        report = join_audio_features(catalog, _write(tmp_path, name, text))
        assert (report.matched_by_uri, report.tracks_updated) == (1, 1)
    top = join_audio_features(catalog, _write(tmp_path, "top.csv", TOP_HITS))
    assert (top.rows, top.matched_by_name, top.unmatched, top.tracks_updated) == (3, 2, 1, 1)

    t1, t2, t3 = (_track(catalog, n) for n in (1, 2, 3))
    assert (t1.danceability, t1.audio_features_source, t1.genre) == (0.5, "hit.csv", None)
    assert (t2.danceability, t2.key, t2.genre, t2.duration_ms) == (0.8, 1, "dance", 200000)
    assert (t3.danceability, t3.genre) == (0.2, "pop")

    again = join_audio_features(catalog, _write(tmp_path, "top.csv", TOP_HITS))
    assert again.tracks_updated == 0  # name matches never overwrite


@backends
def test_bad_feature_value_names_the_line_and_changes_nothing(
    catalog: Engine, tmp_path: Path
) -> None:
    bad = _write(
        tmp_path,
        "bad.csv",
        HIT_PREDICTOR + HIT_PREDICTOR.splitlines()[1].replace("0.6", "loud") + "\n",
    )
    with pytest.raises(IngestError, match=r"bad\.csv: line 3: energy is not a number"):
        join_audio_features(catalog, bad)
    assert _track(catalog, 1).danceability is None
    report = join_audio_features(catalog, bad, skip_bad=True)
    assert report.rows == 1 and len(report.skipped) == 1


def test_unknown_layout_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not a known audio-feature layout"):
        parse_features(_write(tmp_path, "x.csv", "a,b\n1,2\n"))


@backends
def test_lyrics_join_by_normalized_name(catalog: Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "lyrics.csv",
        'artist,song,link,text\nartist 2,SONG 2,/a,"First line\nSecond line"\nX,Y,/b,"la"\n',
    )
    report = join_lyrics(catalog, path)
    assert (report.rows, report.matched_by_name, report.tracks_updated) == (2, 1, 1)
    assert _track(catalog, 2).lyrics == "First line\nSecond line"
    updated_at = _track(catalog, 2).updated_at
    assert join_lyrics(catalog, path).tracks_updated == 0  # re-running changes nothing
    assert _track(catalog, 2).updated_at == updated_at


@backends
def test_rerunning_feature_files_changes_nothing(catalog: Engine, tmp_path: Path) -> None:
    # Track 2 in two files: SpotifyFeatures (genre, popularity), then a hit-predictor file
    # with other values and no genre. The later file's features win, the genre stays.
    later = HIT_PREDICTOR.replace(ID1, ID2).replace("Song 1,Artist 1,", "Song 2,Artist 2,")
    files = [
        _write(tmp_path, "sf.csv", SPOTIFY_FEATURES),
        _write(tmp_path, "hit.csv", later.replace(",0.5,0.6,", ",0.4,0.6,")),
        _write(tmp_path, "top.csv", TOP_HITS),
    ]
    first = join_audio_feature_files(catalog, files)
    assert [r.tracks_updated for r in first] == [1, 1, 2]
    t2 = _track(catalog, 2)
    assert (t2.danceability, t2.audio_features_source, t2.genre, t2.popularity) == (
        0.4,
        "hit.csv",
        "dance",
        61,
    )
    state = [_track(catalog, n).updated_at for n in (1, 2, 3)]
    again = join_audio_feature_files(catalog, files)
    assert [r.tracks_updated for r in again] == [0, 0, 0]
    assert [_track(catalog, n).updated_at for n in (1, 2, 3)] == state
    assert [r.tracks_updated for r in (join_audio_features(catalog, f) for f in files[1:])] == [
        0,
        0,
    ]
