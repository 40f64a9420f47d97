"""Audio-feature CSVs in the three layouts of the shared data, joined onto catalog tracks.

- Spotify Hit Predictor (``uri`` column, spotify:track:… URIs, numeric key/mode);
- Kaggle SpotifyFeatures (``track_id`` bare ids, ``genre``, ``popularity``, key as a note name,
  mode as Major/Minor, time_signature mangled to "04-Apr" by a spreadsheet);
- Top Hits Spotify 2000-2019 (no id: joined by normalized artist and title; genre lists).

A match by URI always sets the features; a match by name fills only tracks that have none yet,
so an exact match is never overwritten by a looser one. When several files of one load match a
track by URI, the last one's features win (join_audio_feature_files). Only tracks whose values
change are updated, so re-running changes nothing: not even ``tracks.updated_at``, by which the
feature job picks the tracks to write again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, func, or_, update

from ml_pipeline.ingest.catalog_join import CatalogIndex, JoinReport, read_csv
from ml_pipeline.ingest.errors import BadRecord, IngestError
from musicrec.db.models import AUDIO_FEATURES, Track
from musicrec.text import spotify_track_uri, track_key

NOTE_KEYS = {n: i for i, n in enumerate("C C# D D# E F F# G G# A A# B".split())}
UNIT_FEATURES = {
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
}
LAYOUTS = {
    "hit_predictor": {"uri", "track", "artist"},
    "spotify_features": {"track_id", "track_name", "artist_name"},
    "top_hits": {"song", "artist"},
}
_LEADING_INT = re.compile(r"^\s*0*(\d+)")


@dataclass(slots=True)
class FeatureRow:
    line: int
    uri: str | None
    artist: str
    title: str
    features: dict[str, Any]
    genre: str | None
    popularity: int | None
    duration_ms: int | None


def detect_layout(path: Path, header: list[str]) -> str:
    columns = set(header)
    for name, required in LAYOUTS.items():
        if required <= columns and {"danceability", "energy"} <= columns:
            return name
    raise IngestError(path, "header", f"not a known audio-feature layout: {', '.join(header)}")


def parse_features(path: Path, *, skip_bad: bool = False) -> tuple[list[FeatureRow], list[str]]:
    header, rows = read_csv(path)
    layout = detect_layout(path, header)
    parsed: list[FeatureRow] = []
    skipped: list[str] = []
    for line, row in rows:
        try:
            parsed.append(_parse_row(layout, line, row))
        except BadRecord as exc:
            error = IngestError(path, f"line {line}", str(exc))
            if not skip_bad:
                raise error from exc
            skipped.append(str(error))
    return parsed, skipped


def _parse_row(layout: str, line: int, row: dict[str, str]) -> FeatureRow:
    if layout == "hit_predictor":
        uri, artist, title = row["uri"], row["artist"], row["track"]
    elif layout == "spotify_features":
        uri, artist, title = (
            spotify_track_uri(row["track_id"]),
            row["artist_name"],
            row["track_name"],
        )
    else:
        uri, artist, title = None, row["artist"], row["song"]
    if not (artist or "").strip() or not (title or "").strip():
        raise BadRecord("missing artist or title")
    features = {name: _feature(name, row.get(name)) for name in AUDIO_FEATURES}
    genre = (row.get("genre") or "").split(",")[0].strip().casefold() or None
    popularity = row.get("popularity")
    duration = row.get("duration_ms")
    return FeatureRow(
        line=line,
        uri=uri or None,
        artist=artist,
        title=title,
        features=features,
        genre=genre,
        popularity=int(_number("popularity", popularity)) if popularity else None,
        duration_ms=int(_number("duration_ms", duration)) if duration else None,
    )


def _number(name: str, value: str | None) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRecord(f"{name} is not a number: {value!r:.40}") from None


def _feature(name: str, value: str | None) -> float | int | None:
    if value is None or value.strip() == "":
        return None
    if name == "key" and value.strip() in NOTE_KEYS:
        return NOTE_KEYS[value.strip()]
    if name == "mode" and value.strip().casefold() in ("major", "minor"):
        return 1 if value.strip().casefold() == "major" else 0
    if name == "time_signature" and (m := _LEADING_INT.match(value)):
        return int(m.group(1))  # "04-Apr" is what a spreadsheet made of 4/4
    number = _number(name, value)
    if name in UNIT_FEATURES and not 0.0 <= number <= 1.0:
        raise BadRecord(f"{name} {number} is outside 0..1")
    return int(number) if name in ("key", "mode") else number


def join_audio_feature_files(
    engine: Engine, paths: list[Path], *, skip_bad: bool = False, index: CatalogIndex | None = None
) -> list[JoinReport]:
    """Join several files in order, each in its own transaction, like join_audio_features one
    after the other, except that a track that a later file matches by URI gets its audio
    features from that file only (the last file wins, as before): otherwise every run would
    set them back and forth, and re-running the same files would change tracks each time.
    Such a track still gets a genre, popularity or duration it lacks. Files are parsed first."""
    parsed = [(path, *parse_features(path, skip_bad=skip_bad)) for path in paths]
    later: set[str] = set()
    superseded: list[frozenset[str]] = []
    for _, rows, _ in reversed(parsed):
        superseded.append(frozenset(later))
        later.update(row.uri for row in rows if row.uri)
    return [
        _join(engine, path, rows, skipped, index, skip)
        for (path, rows, skipped), skip in zip(parsed, reversed(superseded), strict=True)
    ]


def join_audio_features(
    engine: Engine, path: Path, *, skip_bad: bool = False, index: CatalogIndex | None = None
) -> JoinReport:
    """Parse one file completely, then update matching tracks in one transaction."""
    rows, skipped = parse_features(path, skip_bad=skip_bad)
    return _join(engine, path, rows, skipped, index, frozenset())


def _join(
    engine: Engine,
    path: Path,
    rows: list[FeatureRow],
    skipped: list[str],
    index: CatalogIndex | None,
    superseded: frozenset[str],
) -> JoinReport:
    """Update the tracks `rows` match; those a URI in `superseded` matches get side data only.
    Tracks whose values would not change are not updated (an update moves updated_at, which
    makes the feature job write the track again)."""
    report = JoinReport(path=path, rows=len(rows), skipped=skipped)
    # (only tracks without audio features, side data only) -> track id -> values
    updates: dict[tuple[bool, bool], dict[int, dict[str, Any]]] = {
        (only_unset, side_only): {} for side_only in (False, True) for only_unset in (False, True)
    }
    with engine.begin() as conn:
        index = index or CatalogIndex.load(conn)
        later = {index.by_uri[uri] for uri in superseded if uri in index.by_uri}
        for row in rows:
            values = {
                **{f"v_{k}": v for k, v in row.features.items()},
                "v_genre": row.genre,
                "v_popularity": row.popularity,
                "v_duration_ms": row.duration_ms,
                "v_source": path.name,
            }
            if row.uri and row.uri in index.by_uri:
                report.matched_by_uri += 1
                track_id = index.by_uri[row.uri]
                updates[False, track_id in later][track_id] = values
            elif ids := index.by_key.get(track_key(row.artist, row.title)):
                report.matched_by_name += 1
                for track_id in ids:
                    updates[True, track_id in later][track_id] = values
        for (only_unset, side_only), by_track in updates.items():
            if by_track:
                stmt = _update_statement(only_unset, side_only)
                params = [{"b_id": tid, **vals} for tid, vals in by_track.items()]
                report.tracks_updated += conn.execute(stmt, params).rowcount or 0
    return report


def _update_statement(only_unset: bool, side_only: bool) -> Any:
    values: dict[str, Any]
    if side_only:  # a later file sets the features, and keeps what it has no value for
        values = {
            name: func.coalesce(getattr(Track, name), bindparam(f"v_{name}"))
            for name in ("genre", "popularity", "duration_ms")
        }
    else:
        values = {
            **{name: bindparam(f"v_{name}") for name in AUDIO_FEATURES},
            "audio_features_source": bindparam("v_source"),
            # Keep a genre or popularity another file gave when this one has none.
            "genre": func.coalesce(bindparam("v_genre"), Track.genre),
            "popularity": func.coalesce(bindparam("v_popularity"), Track.popularity),
            # The reduced MPD has no durations; feature files do.
            "duration_ms": func.coalesce(Track.duration_ms, bindparam("v_duration_ms")),
        }
    changes = or_(*[getattr(Track, name).is_distinct_from(v) for name, v in values.items()])
    stmt = update(Track).where(Track.id == bindparam("b_id"), changes).values(**values)
    return stmt.where(Track.danceability.is_(None)) if only_unset else stmt
