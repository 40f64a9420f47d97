"""MPD ingest on both backends: exact counts, idempotence, the play mapping, bad input."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from ml_pipeline.ingest.errors import IngestError
from ml_pipeline.ingest.loader import load_mpd
from ml_pipeline.ingest.mpd import MPD_SNAPSHOT, MPD_SOURCE, REDUCED_SOURCE, parse_file
from musicrec.db.models import ListeningEvent, Playlist, Track, User
from musicrec.db.stats import catalog_counts
from tests.conftest import backends
from tests.ml_pipeline.ingest.mpd_files import playlist, write_slice


@pytest.fixture
def two_formats(tmp_path: Path) -> list[Path]:
    full = write_slice(
        tmp_path / "full" / "mpd.slice.0-999.json",
        [playlist(0, [1, 2, 3], full=True), playlist(1, [3, 4], full=True)],
    )
    reduced = write_slice(
        tmp_path / "reduced" / "mpd.slice.0-999.json",
        # pid 0 again, in the reduced format: the reduced dataset's numbering, so another
        # playlist (source mpd_reduced, not mpd). Tracks 3 and 4 are shared.
        [playlist(0, [3, 4, 5, 6], full=False), playlist(7, [6], full=False)],
    )
    return [full, reduced]


def _counts(engine: Engine) -> dict[str, int]:
    return catalog_counts(engine)


@backends
def test_loads_both_formats_exactly_and_idempotently(
    engine: Engine, two_formats: list[Path]
) -> None:
    report = load_mpd(engine, two_formats)
    assert report.ok and report.files == 2
    assert (report.playlists_read, report.rows_read) == (4, 10)
    counts = _counts(engine)
    assert counts["playlists"] == 4 and counts["users"] == 4
    assert counts["playlist_tracks"] == 10 and counts["listening_events"] == 10
    assert counts["tracks"] == 6  # deduplicated by URI across files
    assert counts["artists"] == 3

    again = load_mpd(engine, two_formats)
    assert again.written.as_dict() == dict.fromkeys(again.written.as_dict(), 0)
    assert _counts(engine) == counts


@backends
def test_plays_follow_playlist_order_and_end_at_modified_at(
    engine: Engine, two_formats: list[Path]
) -> None:
    load_mpd(engine, two_formats)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ListeningEvent.position, ListeningEvent.occurred_at, ListeningEvent.ms_played)
            .join(User, User.id == ListeningEvent.user_id)
            .where(User.external_id == "mpd:mpd:0")
            .order_by(ListeningEvent.position)
        ).all()
    assert [r.position for r in rows] == [0, 1, 2]
    assert [r.ms_played for r in rows] == [200_000] * 3
    end = datetime.fromtimestamp(1_500_000_000, UTC)
    starts = [r.occurred_at.replace(tzinfo=UTC) for r in rows]
    assert starts == [end - timedelta(seconds=600 - 200 * i) for i in range(3)]


def test_reduced_format_plays_use_mean_duration_and_a_stable_anchor(
    two_formats: list[Path],
) -> None:
    plays = [p.plays for p in parse_file(two_formats[1]).batch.playlists]
    assert plays[0] is not None and plays[0].ms_played == [180_000] * 4
    end_ms = plays[0].starts_ms[-1] + plays[0].ms_played[-1]
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    assert MPD_SNAPSHOT - timedelta(days=28) < end <= MPD_SNAPSHOT
    again = parse_file(two_formats[1]).batch.playlists[0].plays
    assert again is not None and again.starts_ms == plays[0].starts_ms
    assert again.event_id(3) == plays[0].event_id(3) != plays[0].event_id(2)


@backends
def test_truncated_file_names_the_file_and_writes_nothing_from_it(
    engine: Engine, two_formats: list[Path], tmp_path: Path
) -> None:
    text = two_formats[0].read_text()
    bad = tmp_path / "bad" / "mpd.slice.1000-1999.json"
    bad.parent.mkdir()
    bad.write_text(text[: len(text) * 2 // 3])  # cut inside the second playlist

    with pytest.raises(IngestError, match=r"mpd\.slice\.1000-1999\.json: invalid JSON after"):
        parse_file(bad)
    report = load_mpd(engine, [bad])
    assert not report.ok and "mpd.slice.1000-1999.json" in report.failed_files[0]
    assert _counts(engine)["playlists"] == 0 and _counts(engine)["tracks"] == 0

    # With other files, the good ones load and the bad one still adds nothing.
    report = load_mpd(engine, [*two_formats, bad])
    assert len(report.failed_files) == 1 and _counts(engine)["playlists"] == 4


def test_truncated_file_with_skip_bad_keeps_the_complete_playlists(
    two_formats: list[Path], tmp_path: Path
) -> None:
    text = two_formats[0].read_text()
    bad = tmp_path / "cut.json"
    bad.write_text(text[: len(text) * 2 // 3])
    result = parse_file(bad, skip_bad=True)
    assert result.playlists == 1 and len(result.skipped) == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["tracks"][1].pop("track_uri"), r"playlist #1 \(pid 1\): track 1 has no valid"),
        (lambda p: p["tracks"][0].update(track_uri="not-a-uri"), r"malformed track_uri"),
        (lambda p: p.update(pid="x"), r"playlist #1 \(pid x\): playlist has no valid 'pid'"),
        (lambda p: p.update(modified_at="yesterday"), r"'modified_at' is not a number"),
    ],
)
def test_malformed_record_is_named(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    playlists = [playlist(0, [1], full=True), playlist(1, [2, 3], full=True)]
    mutate(playlists[1])
    path = write_slice(tmp_path / "x.json", playlists)
    with pytest.raises(IngestError, match=message) as info:
        parse_file(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    skipped = parse_file(path, skip_bad=True)
    assert skipped.playlists == 1 and len(skipped.skipped) == 1


def test_limit_stops_after_n_playlists(engine: Engine, two_formats: list[Path]) -> None:
    report = load_mpd(engine, two_formats, limit=3)
    assert report.playlists_read == 3
    assert _counts(engine)["playlists"] == 3


@backends
def test_later_full_record_fills_durations_of_reduced_tracks(
    engine: Engine, two_formats: list[Path]
) -> None:
    load_mpd(engine, [two_formats[1]])  # reduced first: no durations
    with engine.connect() as conn:
        assert (
            conn.execute(select(Track.duration_ms).where(Track.spotify_uri.endswith("3"))).scalar()
            is None
        )
    load_mpd(engine, [two_formats[0]])
    with engine.connect() as conn:
        assert (
            conn.execute(select(Track.duration_ms).where(Track.spotify_uri.endswith("3"))).scalar()
            == 200_000
        )
        assert conn.execute(
            select(Playlist.collaborative).where(Playlist.source == "mpd")
        ).scalars().all() == [False, False]


# --- which dataset a playlist belongs to: from the content, not the folder -------------------


@backends
def test_same_files_from_another_folder_add_nothing(
    engine: Engine, shared_data: Path, tmp_path: Path
) -> None:
    real = [
        shared_data / "mpd" / "mpd.slice.0-999.json",  # full format, the MPD's own pids
        shared_data / "mpd_reduced" / "mpd.slice.1000-1999.json",  # reduced, renumbered pids
    ]
    folders = [tmp_path / "mpd", tmp_path / "a copy with another name"]
    for folder in folders:
        folder.mkdir()
        for f in real:
            shutil.copy(f, folder / f.name)

    first = load_mpd(engine, [folders[0]])
    assert first.ok and first.written.playlists == 37 + 7
    counts = _counts(engine)
    again = load_mpd(engine, [folders[1]])
    assert again.ok and again.playlists_read == first.playlists_read
    assert again.written.as_dict() == dict.fromkeys(again.written.as_dict(), 0)
    assert _counts(engine) == counts
    with engine.connect() as conn:
        users = set(conn.execute(select(User.external_id)).scalars())
    # The listener ids the shared data's folder names gave before.
    assert {"mpd:mpd:0", "mpd:mpd:36", "mpd:mpd_reduced:2776"} <= users
    assert all(u.startswith(("mpd:mpd:", "mpd:mpd_reduced:")) for u in users)


def test_source_is_derived_from_the_content(tmp_path: Path) -> None:
    full = [playlist(1000, [1], full=True), playlist(1999, [2], full=True)]
    reduced = [playlist(5, [3], full=False)]
    # info.slice names the range; the file's name does not matter.
    named_anyhow = _slice(tmp_path / "x" / "whatever.json", full + reduced, "1000-1999")
    sources = [p.source for p in parse_file(named_anyhow).batch.playlists]
    assert sources == [MPD_SOURCE, MPD_SOURCE, REDUCED_SOURCE]
    # Without an info block the slice file name gives the range.
    by_name = _slice(tmp_path / "y" / "mpd.slice.1000-1999.json", full, None)
    assert [p.user_external_id for p in parse_file(by_name).batch.playlists] == [
        "mpd:mpd:1000",
        "mpd:mpd:1999",
    ]
    assert parse_file(by_name, source="mine").batch.playlists[0].user_external_id == (
        "mpd:mine:1000"
    )


@pytest.mark.parametrize(
    ("name", "slice_", "message"),
    [
        ("mpd.slice.0-999.json", "0-999", r"pid 1000 is outside the file's slice 0-999"),
        ("export.json", None, r"cannot tell which MPD slice this is"),
    ],
)
def test_full_format_pids_that_may_not_be_the_mpds_need_a_source(
    engine: Engine, tmp_path: Path, name: str, slice_: str | None, message: str
) -> None:
    path = _slice(tmp_path / name, [playlist(1000, [1], full=True)], slice_)
    with pytest.raises(IngestError, match=message + r".*pass --source NAME"):
        parse_file(path)
    report = load_mpd(engine, [path])
    assert not report.ok and _counts(engine)["playlists"] == 0
    assert load_mpd(engine, [path], source="export").written.playlists == 1


def _slice(path: Path, playlists: list[dict[str, object]], slice_: str | None) -> Path:
    write_slice(path, playlists)
    if slice_ != "0-999":
        doc = json.loads(path.read_text())
        if slice_ is None:
            del doc["info"]
        else:
            doc["info"]["slice"] = slice_
        path.write_text(json.dumps(doc))
    return path
