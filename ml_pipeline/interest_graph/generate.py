"""The monthly interest-graph job: for each listener, a summary of their listening goes to a
provider, and the validated graph is upserted into user_interest_graph (and the listener's
profile pushed to the online store, where ranking reads it).

    python -m ml_pipeline.interest_graph.generate --all-users --provider local
    python -m ml_pipeline.interest_graph.generate --user-id 42 --provider anthropic

A run over all listeners is resumable: listeners with a valid graph from the same provider
since the month began are skipped (--force regenerates them), and results are stored batch by
batch, so a stopped run loses at most the batch in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Engine, func, select

from ml_pipeline.interest_graph.generator import Outcome, generate_graph
from ml_pipeline.interest_graph.local import LocalProvider
from ml_pipeline.interest_graph.providers import GraphProvider, ProviderUnavailable, Usage
from ml_pipeline.interest_graph.storage import (
    GraphRow,
    load_facets,
    load_listens,
    pending_users,
    period_start,
    save_graphs,
)
from ml_pipeline.interest_graph.summary import summarize
from musicrec.config import Settings
from musicrec.db.models import ListeningEvent, User
from musicrec.errors import UserError

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)
PROVIDERS = ("local", "anthropic", "openai")


class ProviderNotReady(UserError):
    exit_code = 3  # the environment, not the input: a key or an endpoint


def make_provider(name: str, settings: Settings) -> GraphProvider:
    if name not in PROVIDERS:
        raise UserError(f"--provider must be one of {', '.join(PROVIDERS)}, got {name!r}")
    if name == "local":
        return LocalProvider()
    from ml_pipeline.interest_graph.llm import AnthropicProvider, OpenAIProvider  # the SDKs

    try:
        return AnthropicProvider(settings) if name == "anthropic" else OpenAIProvider(settings)
    except ProviderUnavailable as exc:
        raise ProviderNotReady(str(exc)) from exc


@dataclass
class RunReport:
    provider: str
    model: str
    done: int = 0
    failed: int = 0
    skipped: int = 0
    usage: Usage = Usage()
    seconds: float = 0.0
    # Profiles stored but not pushed to the online store (unreachable): the daily
    # materialization carries them there.
    not_pushed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


def generate_interest_graphs(
    engine: Engine,
    settings: Settings,
    provider: GraphProvider,
    *,
    user_id: int | None = None,
    batch_size: int = 50,
    force: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Graphs for one listener (`user_id`) or all listeners with events. `on_batch(done,
    total)` is called after each stored batch (the progress bar)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    # --force: everything generated before this run counts as not done.
    since = now + timedelta(seconds=1) if force else period_start(now)
    candidates = _listeners_with_events(engine, user_id)
    pending = pending_users(engine, provider.name, since, user_id)
    report = RunReport(provider.name, provider.model, skipped=candidates - len(pending))
    if not pending:
        report.seconds = time.perf_counter() - started
        return report
    facets = load_facets(engine)
    store = _online_store(settings, engine)
    with ThreadPoolExecutor(max_workers=settings.llm_concurrency) as pool:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            listens = load_listens(engine, batch)
            summaries = [summarize(str(u), listens[u], facets) for u in batch]
            try:
                outcomes: list[Outcome] = list(
                    pool.map(lambda s: generate_graph(provider, s), summaries)
                )
            except ProviderUnavailable as exc:
                raise ProviderNotReady(
                    f"{provider.name}: {exc} ({report.done + report.failed} listeners stored "
                    "before it; the next run resumes)"
                ) from exc
            rows = [GraphRow(u, o.graph, o.error) for u, o in zip(batch, outcomes, strict=True)]
            profiles = save_graphs(engine, rows, provider.name, provider.model, now)
            not_pushed = push_profiles(store, profiles, now)
            if not_pushed:
                store = None  # unreachable: the next batches do not wait on it again
            report.not_pushed += not_pushed
            for row, outcome in zip(rows, outcomes, strict=True):
                report.usage += outcome.usage
                if row.graph is None:
                    report.failed += 1
                    report.failures.append((row.user_id, row.error or ""))
                else:
                    report.done += 1
            log.info("stored %d graphs; tokens so far %s", len(rows), report.usage)
            if on_batch is not None:
                on_batch(start + len(batch), len(pending))
    report.seconds = time.perf_counter() - started
    return report


def _online_store(settings: Settings, engine: Engine) -> FeatureStore | None:
    """The feature store with the current definitions applied; None when it cannot be reached:
    the graphs are still worth storing, and materialization carries the profiles online."""
    from feature_store import store as feature_store  # Feast: imported when the job runs

    try:
        return feature_store.apply(settings, engine)
    except Exception as exc:  # noqa: BLE001 — Redis, the registry: any of them may be down
        log.warning("feature store unavailable (%s): profiles will not be pushed online", exc)
        return None


def push_profiles(store: FeatureStore | None, profiles: dict[str, str], when: datetime) -> int:
    """Push the profiles online at once; returns how many could not be pushed."""
    if not profiles:
        return 0
    if store is None:
        return len(profiles)
    import pandas as pd

    rows = [
        {"user_id": k, "profile": p, "event_timestamp": when, "created": when}
        for k, p in profiles.items()
    ]
    try:
        store.push("user_interest_graph_push", pd.DataFrame(rows))
    except Exception as exc:  # noqa: BLE001 — stored offline already; materialization catches up
        log.warning("interest profiles not pushed online (%s); materialization will", exc)
        return len(profiles)
    return 0


def _listeners_with_events(engine: Engine, user_id: int | None) -> int:
    e, u = ListeningEvent.__table__.c, User.__table__.c
    with engine.connect() as conn:
        if user_id is not None:
            if conn.execute(select(u.id).where(u.id == user_id)).first() is None:
                raise UserError(f"no listener with id {user_id}")
            events = conn.execute(select(func.count()).where(e.user_id == user_id)).scalar_one()
            if not events:
                raise UserError(f"listener {user_id} has no listening events to summarize")
            return 1
        return int(conn.execute(select(func.count(func.distinct(e.user_id)))).scalar_one())


def command(
    user_id: Annotated[int | None, typer.Option("--user-id", help="One listener's id.")] = None,
    all_users: Annotated[
        bool, typer.Option("--all-users", help="Every listener with listening events.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Listeners stored at once.")
    ] = 50,
    provider: Annotated[
        str | None,
        typer.Option(help="local (offline), anthropic or openai; default INTEREST_GRAPH_PROVIDER."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Regenerate listeners already done this month.")
    ] = False,
) -> None:
    """Build listeners' interest graphs with a language model (or offline) and store them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from musicrec.config import get_settings
    from musicrec.console import cli_errors, console, err_console, fail
    from musicrec.db.engine import make_engine
    from musicrec.joblock import job_lock

    if (user_id is None) == (not all_users):
        fail("give exactly one of --user-id ID and --all-users", 2)
    settings = get_settings()
    with cli_errors():
        chosen = make_provider(provider or settings.interest_graph_provider, settings)
        engine = make_engine(settings=settings)
        progress = Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        with job_lock("interest-graph", engine, settings), progress:
            task = progress.add_task(f"interest graphs ({chosen.name})", total=None)
            report = generate_interest_graphs(
                engine,
                settings,
                chosen,
                user_id=user_id,
                batch_size=batch_size,
                force=force,
                on_batch=lambda done, total: progress.update(task, completed=done, total=total),
            )
    console.print(
        f"{report.provider} ({report.model}): {report.done:,} done, {report.failed:,} failed, "
        f"{report.skipped:,} skipped (done this month); tokens {report.usage.input_tokens:,} in "
        f"/ {report.usage.output_tokens:,} out; {report.seconds:.1f} s"
    )
    if report.not_pushed:
        console.print(
            f"  {report.not_pushed:,} profiles not pushed online (store unreachable): "
            "`musicrec features materialize` carries them there"
        )
    for failed_user, reason in report.failures[:10]:
        console.print(f"  failed: listener {failed_user}: {reason}", highlight=False)
    if report.failed and not report.done:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(command)
