"""`musicrec features …`: register the Feast definitions, run the batch job and materialize,
and show what the online store holds for a listener."""

from __future__ import annotations

from typing import Annotated

import typer

from musicrec.config import get_settings
from musicrec.console import cli_errors, console, counts_table

app = typer.Typer(no_args_is_help=True, help="The Feast feature store (apply, materialize).")

AsOf = Annotated[
    str,
    typer.Option(
        "--as-of",
        help="Compute features as of: 'now', 'latest' (newest event; for historical data such "
        "as the MPD) or an ISO timestamp.",
    ),
]


@app.command("apply")
def apply_command() -> None:
    """Register entities, views and services (idempotent); writes feature_store.yaml."""
    from feature_store.store import apply
    from musicrec.db.migrate import migrated_engine

    with cli_errors():
        settings = get_settings()
        store = apply(settings, migrated_engine())
        views = [v.name for v in store.list_feature_views()]
    console.print(f"applied project {settings.feast_project!r}: {', '.join(sorted(views))}")


@app.command("materialize")
def materialize_command(
    full: Annotated[
        bool, typer.Option("--all", help="Recompute every feature table and reload online.")
    ] = False,
    as_of: AsOf = "now",
) -> None:
    """Run the feature batch job and load the online store (incremental unless --all)."""
    from feature_store.store import materialize, resolve_as_of
    from musicrec.db.migrate import migrated_engine
    from musicrec.joblock import job_lock

    with cli_errors(), console.status("computing features") as status:
        settings, engine = get_settings(), migrated_engine()

        def progress(view: str) -> None:
            status.update(f"computing {view}")

        with job_lock("materialize", engine, settings):
            report = materialize(
                settings, engine, resolve_as_of(engine, as_of), full=full, on_view=progress
            )
    title = f"features as of {report.computed.as_of:%Y-%m-%d %H:%M:%S} UTC ({report.mode}): rows"
    console.print(counts_table(title, report.computed.rows))
    console.print(f"online store: {report.online_store}")


@app.command("show")
def show_command(
    user_id: Annotated[str, typer.Argument(help="Listener id, e.g. mpd:mpd_reduced:2776")],
    track: Annotated[
        list[str] | None, typer.Option("--track", help="Track URI(s) to show too.")
    ] = None,
    device: str = "mobile",
) -> None:
    """Print a listener's online features (and tracks' with --track)."""
    from feature_store.online import OnlineFeatures

    with cli_errors():
        features = OnlineFeatures.for_settings(get_settings())
        user = features.user_features(user_id, device=device)
        tracks = features.track_features(track or [])
    console.print(f"[bold]{user_id}[/]")
    for name, value in user.items():
        console.print(f"  {name} = {value}")
    for uri, values in zip(track or [], tracks, strict=True):
        console.print(f"[bold]{uri}[/]")
        for name, value in values.items():
            console.print(f"  {name} = {value}")
