"""`musicrec train-recommender`: train the two-stage recommender (candidate sources + LightGBM
ranker) on MPD playlists, with the source parameters tuned on the validation files
(results/continuation/tuning.json, written by `python -m ml_pipeline.experiments.continuation
tune`), and write it where serving loads it (RECOMMENDER_PATH, default var/models/recommender).

Every playlist given is used: the held-out files are for measuring, not for the model a
product serves.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from musicrec.console import cli_errors, console
from musicrec.errors import UserError

if TYPE_CHECKING:
    from ml_pipeline.data.playlists import PlaylistData

TUNING = Path("results/continuation/tuning.json")


def tuned(path: Path) -> Any:
    from inference.recommender.artifact import SourceParams

    if not path.is_file():
        console.print(f"no tuning file at {path}: default source parameters")
        return SourceParams()
    try:
        best = json.loads(path.read_text())["best_params"]
        return replace(SourceParams(), **best)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a tuning file ({exc})") from exc


def train(
    data: Path, out: Path, params: Any, ranker: bool = True, limit: int | None = None
) -> dict[str, Any]:
    from ml_pipeline.data.playlists import load_playlists

    started = time.perf_counter()
    playlists = load_playlists([data], limit)
    return train_on(playlists, str(data), out, params, ranker, started)


def train_on(
    playlists: PlaylistData,
    data: str,
    out: Path,
    params: Any,
    ranker: bool = True,
    started: float | None = None,
) -> dict[str, Any]:
    """Train on these playlists (`data` says where they came from) and save to `out`; the
    record's seconds count from `started` (default: now)."""
    from inference.recommender import artifact
    from ml_pipeline.evaluation.results import git_commit
    from ml_pipeline.training.recommender import train_two_stage

    started = time.perf_counter() if started is None else started
    fitted, trained_ranker, record = train_two_stage(
        playlists.playlists, playlists.tracks, params, with_ranker=ranker
    )
    record.update(
        version=datetime.now(UTC).strftime("recommender-%Y%m%dT%H%M%SZ"),
        data=data,
        commit=git_commit(),
        seconds=round(time.perf_counter() - started, 1),
        items=len(fitted.items),
        params=asdict(params),
    )
    artifact.save(out, fitted, trained_ranker, record)
    return record


def command(
    data: Annotated[
        Path | None,
        typer.Option(help="MPD folder or slice; default MPD_PATH or ../shared/data/mpd_reduced"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="model directory; default RECOMMENDER_PATH")
    ] = None,
    tuning: Annotated[Path, typer.Option(help="tuned source parameters (JSON)")] = TUNING,
    ranker: Annotated[bool, typer.Option(help="train the LightGBM ranker (else fusion)")] = True,
) -> None:
    """Train the two-stage recommender (candidate sources + LightGBM ranker) on MPD playlists."""
    from musicrec.config import get_settings

    with cli_errors():
        settings = get_settings()
        source = data or settings.default_mpd_path
        if source is None:
            raise UserError("no MPD data: pass --data or set MPD_PATH")
        if not source.exists():
            raise UserError(f"{source}: no such file or folder")
        target = out or settings.recommender_dir
        record = train(source, target, tuned(tuning), ranker)
    console.print(
        f"trained {record['version']} on {record['playlists']:,} playlists "
        f"({record['items']:,} tracks) in {record['seconds']:.0f} s: {target}"
    )
