"""The main job as a pipeline of named steps: migrate → ingest → summary → features. Later
stages (train → serve → recommend) append their steps to STEPS."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from musicrec.config import Settings, get_settings
from musicrec.console import console, counts_table
from musicrec.db.engine import make_engine


@dataclass(frozen=True)
class DemoOptions:
    limit: int = 1000  # playlists of real data
    synthetic: bool = False  # generated data even when real data is present


@dataclass
class PipelineContext:
    settings: Settings
    engine: Engine
    options: DemoOptions
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict[str, Any] = field(default_factory=dict)  # what steps hand to later steps


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    run: Callable[[PipelineContext], None]


def _migrate(ctx: PipelineContext) -> None:
    from musicrec.db.migrate import upgrade

    upgrade(ctx.engine)


def _ingest(ctx: PipelineContext) -> None:
    from ml_pipeline.ingest.cli import run_joins, run_mpd
    from musicrec.errors import UserError

    mpd_path = None if ctx.options.synthetic else ctx.settings.default_mpd_path
    if mpd_path is None:
        _ingest_synthetic(ctx)
        return
    console.print(f"real data: {mpd_path} (first {ctx.options.limit:,} playlists)")
    report = run_mpd(ctx.engine, [mpd_path], limit=ctx.options.limit)
    if not report.ok:
        raise UserError("; ".join(report.failed_files))
    ctx.results["dataset"] = "mpd"
    for kind, path in (
        ("audio features", ctx.settings.default_audio_features_path),
        ("lyrics", ctx.settings.default_lyrics_path),
    ):
        if path is not None:
            run_joins(ctx.engine, kind, [path], skip_bad=False)


def _ingest_synthetic(ctx: PipelineContext) -> None:
    from ml_pipeline.synthetic import SyntheticConfig, generate
    from musicrec.db.bulk import write_batch

    console.print("no real data found (set MPD_PATH): generating the synthetic demo dataset")
    counts = write_batch(ctx.engine, generate(SyntheticConfig(), ctx.as_of))
    console.print(counts_table("synthetic data: new rows", counts.as_dict()))
    ctx.results["dataset"] = "synthetic"


def _summary(ctx: PipelineContext) -> None:
    from musicrec.db.stats import catalog_counts

    ctx.results["counts"] = counts = catalog_counts(ctx.engine)
    console.print(counts_table("catalog", counts))


def _features(ctx: PipelineContext) -> None:
    from sqlalchemy import select

    from feature_store.online import OnlineFeatures
    from feature_store.store import materialize, resolve_as_of
    from musicrec.db.models import ListeningEvent, User

    # As of the newest event: real data such as the MPD is historical.
    as_of = resolve_as_of(ctx.engine, "latest")
    report = materialize(ctx.settings, ctx.engine, as_of)
    console.print(
        counts_table(
            f"feature rows written (as of {as_of:%Y-%m-%d %H:%M} UTC)", report.computed.rows
        )
    )
    with ctx.engine.connect() as conn:
        user = conn.execute(
            select(User.external_id)
            .join(ListeningEvent, ListeningEvent.user_id == User.id)
            .order_by(ListeningEvent.occurred_at.desc())
            .limit(1)
        ).scalar_one()
    values = OnlineFeatures.for_settings(ctx.settings).user_features(user, request_time=as_of)
    ctx.results["user_features"] = {"user_id": user, **values}
    console.print(f"online features of listener [bold]{user}[/] ({ctx.settings.online_store}):")
    for name, value in values.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        console.print(f"  {name} = {shown}", highlight=False)


STEPS: list[Step] = [
    Step("migrate", "create or upgrade the database schema", _migrate),
    Step("ingest", "load playlists, audio features and lyrics", _ingest),
    Step("summary", "count what the database holds", _summary),
    Step("features", "compute features, load the online store, read one listener", _features),
]


def run_demo(options: DemoOptions, settings: Settings | None = None) -> PipelineContext:
    settings = settings or get_settings()
    ctx = PipelineContext(settings=settings, engine=make_engine(settings=settings), options=options)
    console.print(
        f"[bold]musicrec demo[/] — database {ctx.engine.url.render_as_string(hide_password=True)}"
    )
    for number, step in enumerate(STEPS, 1):
        console.rule(f"[{number}/{len(STEPS)}] {step.name}: {step.description}")
        started = time.perf_counter()
        step.run(ctx)
        console.print(f"[green]✓[/] {step.name} ({time.perf_counter() - started:.1f}s)")
    return ctx
