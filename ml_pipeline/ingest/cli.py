"""`musicrec ingest …`: load real data (MPD JSON, audio features, lyrics) or the synthetic set."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from ml_pipeline.ingest.audio_features import join_audio_feature_files
from ml_pipeline.ingest.catalog_join import CatalogIndex, JoinReport
from ml_pipeline.ingest.loader import MpdReport, load_mpd
from ml_pipeline.ingest.lyrics import join_lyrics
from ml_pipeline.ingest.mpd import mpd_files
from musicrec.console import cli_errors, console, counts_table, err_console, fail
from musicrec.db.bulk import write_batch
from musicrec.db.migrate import migrated_engine

app = typer.Typer(no_args_is_help=True, help="Load data into the database (idempotent).")

SkipBad = Annotated[
    bool,
    typer.Option("--skip-bad", help="Pass over bad records and count them instead of failing."),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def run_mpd(
    engine: Engine,
    paths: list[Path],
    *,
    source: str | None = None,
    limit: int | None = None,
    skip_bad: bool = False,
) -> MpdReport:
    files = mpd_files(paths)
    with _progress() as progress:
        task = progress.add_task("MPD files", total=len(files))
        report = load_mpd(
            engine,
            files,
            source=source,
            limit=limit,
            skip_bad=skip_bad,
            on_file=lambda _: progress.advance(task),
        )
    console.print(
        counts_table(
            "MPD ingest",
            {
                "files loaded": report.files,
                "playlists read": report.playlists_read,
                "playlist-track rows read": report.rows_read,
                **{f"new {k}": v for k, v in report.written.as_dict().items()},
                "bad records skipped": len(report.skipped_records),
            },
        )
    )
    for line in report.skipped_records[:20]:
        err_console.print(f"skipped: {line}", highlight=False, soft_wrap=True)
    return report


def run_joins(engine: Engine, kind: str, paths: list[Path], skip_bad: bool) -> list[JoinReport]:
    files = [f for p in paths for f in (sorted(p.rglob("*.csv")) if p.is_dir() else [p])]
    with engine.connect() as conn:
        index = CatalogIndex.load(conn)
    if kind == "audio features":
        reports = join_audio_feature_files(engine, files, skip_bad=skip_bad, index=index)
    else:
        reports = [join_lyrics(engine, path, skip_bad=skip_bad, index=index) for path in files]
    for path, report in zip(files, reports, strict=True):
        console.print(
            f"{kind}: {path.name}: {report.rows:,} rows, matched {report.matched_by_uri:,} by "
            f"Spotify id and {report.matched_by_name:,} by artist+title, "
            f"{report.unmatched:,} unmatched; {report.tracks_updated:,} tracks updated",
            highlight=False,
        )
    return reports


@app.command("mpd")
def mpd_command(
    paths: Annotated[list[Path], typer.Argument(help="MPD slice files or folders of them.")],
    source: Annotated[
        str | None,
        typer.Option(
            help="Dataset the pids belong to (default: from the content: 'mpd' for the full "
            "format's own MPD pids, 'mpd_reduced' for the reduced format)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Load at most this many playlists.")
    ] = None,
    skip_bad: SkipBad = False,
) -> None:
    """Load Spotify Million Playlist Dataset JSON (full or reduced format)."""
    with cli_errors():
        report = run_mpd(migrated_engine(), paths, source=source, limit=limit, skip_bad=skip_bad)
    if not report.ok:
        for line in report.failed_files:
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        fail(f"{len(report.failed_files)} file(s) not loaded; nothing from them was written")


@app.command("audio-features")
def audio_features_command(
    paths: Annotated[list[Path], typer.Argument(help="Audio-feature CSV files or folders.")],
    skip_bad: SkipBad = False,
) -> None:
    """Join audio-feature CSVs onto catalog tracks."""
    with cli_errors():
        run_joins(migrated_engine(), "audio features", paths, skip_bad)


@app.command("lyrics")
def lyrics_command(
    paths: Annotated[list[Path], typer.Argument(help="Lyrics CSV files or folders.")],
    skip_bad: SkipBad = False,
) -> None:
    """Join lyrics onto catalog tracks by artist and title."""
    with cli_errors():
        run_joins(migrated_engine(), "lyrics", paths, skip_bad)


@app.command("synthetic")
def synthetic_command(
    users: Annotated[int, typer.Option(min=1)] = 300,
    tracks: Annotated[int, typer.Option(min=10)] = 3000,
    seed: int = 7,
) -> None:
    """Generate and load the synthetic demo dataset (events up to now)."""
    from ml_pipeline.data.synthetic import SyntheticConfig, generate

    with cli_errors():
        engine = migrated_engine()
        batch = generate(
            SyntheticConfig(n_users=users, n_tracks=tracks, seed=seed), datetime.now(UTC)
        )
        counts = write_batch(engine, batch)
    console.print(counts_table("synthetic data: new rows", counts.as_dict()))
