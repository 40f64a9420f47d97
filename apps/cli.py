"""The `musicrec` command: one entry point for every job (the composition root).

It only wires commands, and starts fast: the commands whose modules are heavy (Feast, torch,
pandas, the ingest pipeline) are named in LAZY_COMMANDS and LAZY_GROUPS with their one-line help,
which `musicrec --help` lists; a module is imported when its command runs (or shows its own
--help). The commands defined here import what they use inside their function."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import Command, Context  # Typer's own copy of Click: what its groups are made of
from typer.core import TyperCommand, TyperGroup

from musicrec.console import cli_errors, console, counts_table

# name → ("module:function", its help line): listed before the commands defined here.
LAZY_COMMANDS = {
    "train-recommender": (
        "ml_pipeline.jobs.train_recommender:command",
        "Train the two-stage recommender (candidate sources + LightGBM ranker) on MPD playlists.",
    ),
    "embed-new-tracks": (
        "ml_pipeline.jobs.embed_new_tracks:command",
        "Add catalog tracks that arrived after training to the hybrid model, from their text.",
    ),
    "interest-graph": (
        "ml_pipeline.interest_graph.generate:command",
        "Build listeners' interest graphs with a language model (or offline) and store them.",
    ),
}
# name → ("module:typer_app", its help line): listed after the groups defined here.
LAZY_GROUPS = {
    "ingest": ("ml_pipeline.ingest.cli:app", "Load data into the database (idempotent)."),
    "features": ("feature_store.cli:app", "The Feast feature store (apply, materialize)."),
    "api-keys": ("apps.api.keys_cli:app", "Client API keys of the public API (X-API-Key)."),
}


class _Placeholder(TyperCommand):
    """A lazy command in help listings: its name and help line, nothing imported."""


class LazyGroup(TyperGroup):
    """The root group: Click's lazy-subcommand pattern, with the help listing served from the
    tables so that `--help` imports nothing either. A placeholder is replaced by the real command
    when it is resolved: to run, to show its own help, or for shell completion."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # The order `app.command` and `app.add_typer` would have given: commands, then groups.
        first = {name: _Placeholder(name, help=line) for name, (_, line) in LAZY_COMMANDS.items()}
        last = {name: _Placeholder(name, help=line) for name, (_, line) in LAZY_GROUPS.items()}
        self.commands = {**first, **self.commands, **last}

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        if args and isinstance(self.commands.get(args[0]), _Placeholder):
            self.commands[args[0]] = load_command(args[0])
        return super().resolve_command(ctx, args)


def load_command(name: str) -> Command:
    """Import a lazy command's module and build the command as `app.command(name)` or
    `app.add_typer(sub_app, name=name)` would have."""
    if name in LAZY_COMMANDS:
        single = typer.Typer(add_completion=False)
        single.command(name)(_attribute(LAZY_COMMANDS[name][0]))
        return typer.main.get_command(single)
    group = typer.main.get_group(_attribute(LAZY_GROUPS[name][0]))
    group.name = name
    return group


def _attribute(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    help="Real-time music recommender.",
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database to a revision (default: newest)."""
    from musicrec.db import migrate
    from musicrec.db.engine import make_engine

    with cli_errors():
        migrate.upgrade(make_engine(), revision)
    console.print(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()] = "base") -> None:
    """Migrate the database down to a revision (default: empty)."""
    from musicrec.db import migrate
    from musicrec.db.engine import make_engine

    with cli_errors():
        migrate.downgrade(make_engine(), revision)
    console.print(f"database at {revision}")


@app.command()
def summary() -> None:
    """Print what the database holds."""
    from musicrec.db.engine import make_engine
    from musicrec.db.stats import catalog_counts

    with cli_errors():
        counts = catalog_counts(make_engine())
    console.print(counts_table("catalog", counts))


@app.command()
def demo(
    limit: Annotated[
        int, typer.Option(min=1, help="Playlists of real data to load (keeps the demo short).")
    ] = 1000,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Use generated data even when real data is there.")
    ] = False,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the model.")] = 10,
) -> None:
    """Run the main job end to end on the embedded default."""
    from apps.demo import DemoOptions, run_demo

    with cli_errors():
        run_demo(DemoOptions(limit=limit, synthetic=synthetic, epochs=epochs))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: API_PORT.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes (services mode only).")] = 1,
) -> None:
    """Serve the public API (with the ML service in-process unless ML_SERVICE_URL is set)."""
    from apps.serving import run_server
    from musicrec.config import get_settings

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    console.print(
        f"web page: http://{shown}:{port}/app (open the #key=… address `make demo` printed, or"
        " paste a key from `musicrec api-keys create NAME`); API docs at /docs",
        highlight=False,
        soft_wrap=True,
    )
    with cli_errors():
        run_server(
            "apps.api.main:create_app",
            host,
            port,
            workers,
            embedded_only_single=settings.event_transport == "in-process",
            worker_healthcheck_timeout_seconds=settings.worker_healthcheck_timeout_seconds,
        )


@app.command("serve-ml")
def serve_ml(
    host: Annotated[str | None, typer.Option(help="Default: ML_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: ML_PORT.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 1,
) -> None:
    """Serve the ML service on its own (services mode: point the API's ML_SERVICE_URL here)."""
    from apps.serving import run_server
    from musicrec.config import get_settings

    settings = get_settings()
    with cli_errors():
        run_server(
            "apps.ml.main:create_app",
            host or settings.ml_host,
            port or settings.ml_port,
            workers,
            worker_healthcheck_timeout_seconds=settings.worker_healthcheck_timeout_seconds,
        )


@app.command()
def retrain(
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the candidate.")] = 10,
    margin: Annotated[
        float, typer.Option(min=0.0, help="Relative NDCG@10 gain over production for canary.")
    ] = 0.02,
    tuning: Annotated[
        Path, typer.Option(help="Tuned source parameters of the two-stage recommender (JSON).")
    ] = Path("results/continuation/tuning.json"),
) -> None:
    """The weekly job: train a candidate, compare it with production on the same holdout,
    register it (staging), and canary it when it wins by the margin."""
    from ml_pipeline.jobs.retrain import metric_row
    from ml_pipeline.jobs.retrain import retrain as run_retrain
    from musicrec.config import get_settings
    from musicrec.db.engine import make_engine
    from musicrec.joblock import job_lock

    settings = get_settings()
    with cli_errors():
        engine = make_engine(settings=settings)
        with job_lock("retrain", engine, settings):
            decision = run_retrain(engine, settings, epochs, margin, tuning)
    console.print(f"candidate  v{decision.candidate_version}: {metric_row(decision.candidate)}")
    console.print(f"production {decision.production_version}: {metric_row(decision.production)}")
    console.print(f"recommender: {decision.recommender or 'none (no playlists)'}")
    console.print(f"→ {decision.alias}: {decision.reason}")


@app.command()
def promote(
    min_events: Annotated[
        int, typer.Option(min=1, help="Feedback events needed in each group to decide.")
    ] = 1000,
    margin: Annotated[
        float,
        typer.Option(
            min=0.0, help="How much worse than production's rates the canary may be (relative)."
        ),
    ] = 0.1,
) -> None:
    """Promote the canary model to production, or roll it back, by the skip and click rates of
    the listeners it served against production's since it started (non-inferiority)."""
    from ml_pipeline.jobs.promote import promote as run_promote
    from musicrec.config import get_settings
    from musicrec.db.engine import make_engine
    from musicrec.joblock import job_lock

    settings = get_settings()
    with cli_errors():
        engine = make_engine(settings=settings)
        with job_lock("promote", engine, settings):
            decision = run_promote(engine, settings, min_events, margin)
    version = f" v{decision.canary_version}" if decision.canary_version else ""
    console.print(f"{decision.action}{version}: {decision.reason}")


@app.command("consume-feedback")
def consume_feedback(
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(help="Touched after every poll, for a liveness probe (e.g. Kubernetes)."),
    ] = None,
) -> None:
    """Services mode: consume feedback events from Kafka into the database and the online
    features (run one or more; they share the topic's partitions)."""
    from apps.workers.feedback import FeedbackSink, KafkaConsumerLoop, stop_on_signals
    from feature_store.online import OnlineFeatures
    from musicrec.config import get_settings
    from musicrec.db.engine import make_engine
    from musicrec.errors import UserError

    settings = get_settings()
    with cli_errors():
        if settings.event_transport != "kafka":
            raise UserError("set KAFKA_BOOTSTRAP_SERVERS (embedded mode consumes in the API)")
        sink = FeedbackSink(make_engine(), OnlineFeatures.for_settings(settings))
        loop = KafkaConsumerLoop.from_settings(settings, sink, heartbeat_file)
        # SIGTERM (docker stop, systemd, Kubernetes) or Ctrl-C: the batch in hand is stored and
        # its offsets committed before exit; a second signal exits at once (nothing is lost
        # then either: the uncommitted batch is redelivered to the idempotent sink).
        stop_on_signals(loop.stop)
        console.print(f"consuming {settings.kafka_feedback_topic} (Ctrl-C to stop)")
        try:
            loop.run()
        finally:
            loop.close()
        console.print(f"stopped: {loop.totals}")


@app.command("relay-outbox")
def relay_outbox(
    poll_seconds: Annotated[float, typer.Option(help="Wait between empty polls.")] = 1.0,
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(help="Touched every round, for a liveness probe (e.g. Kubernetes)."),
    ] = None,
) -> None:
    """Services mode: publish the feedback events Kafka could not take (the event_outbox
    table) to Kafka, oldest first, deleting each once Kafka acknowledged it."""
    from apps.workers.feedback import stop_on_signals
    from apps.workers.outbox import OutboxRelay
    from apps.workers.transport import KafkaTransport
    from musicrec.config import get_settings
    from musicrec.db.engine import make_engine
    from musicrec.errors import UserError

    settings = get_settings()
    with cli_errors():
        if not settings.kafka_bootstrap_servers:
            raise UserError("set KAFKA_BOOTSTRAP_SERVERS: the outbox relay publishes to Kafka")
        kafka = KafkaTransport(
            settings.kafka_bootstrap_servers,
            settings.kafka_feedback_topic,
            timeout_seconds=settings.event_publish_timeout_seconds,
        )
        relay = OutboxRelay(make_engine(settings=settings), kafka)
        stop_on_signals(relay.stop)  # the batch in hand finishes (sent and deleted) first
        console.print(f"relaying the outbox to {settings.kafka_feedback_topic} (Ctrl-C to stop)")
        try:
            relay.run(poll_seconds, heartbeat_path=heartbeat_file)
        finally:
            kafka.close()
        console.print(f"stopped: {relay.sent} event(s) relayed")


if __name__ == "__main__":
    app()
