"""The main job as a pipeline of named steps: migrate → ingest → summary → features → train →
recommend. Later stages (the API, the feedback loop) append their steps to STEPS."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from musicrec.config import Settings, get_settings
from musicrec.console import console, counts_table
from musicrec.db.engine import make_engine


@dataclass(frozen=True)
class DemoOptions:
    limit: int = 1000  # playlists of real data
    synthetic: bool = False  # generated data even when real data is present
    epochs: int = 10  # of the hybrid model
    # Playlists the two-stage recommender trains on: every one in the MPD folder by default
    # (the model /predict serves), fewer for a quick run.
    recommender_playlists: int | None = None


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
    from ml_pipeline.data.synthetic import SyntheticConfig, generate
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
        if name == "user_recent_tracks__track_ids":  # up to 50 URIs: the first and last
            tracks = str(value).split()
            shown = f"{tracks[0]} ... {tracks[-1]}" if len(tracks) > 2 else value
        console.print(f"  {name} = {shown}", highlight=False)


def _train(ctx: PipelineContext) -> None:
    from ml_pipeline.evaluation.metrics import evaluate_split
    from ml_pipeline.export.serving import export_serving
    from ml_pipeline.jobs.retrain import train_candidate
    from ml_pipeline.models.baselines import MostPopular
    from ml_pipeline.training.train_transformer import evaluate
    from ml_pipeline.training.training_record import write_training_record

    epochs = ctx.options.epochs
    model, data, split, curve = train_candidate(ctx.engine, ctx.settings, epochs)
    console.print(f"hybrid model: {len(data.users):,} listeners, {data.n_items:,} tracks")
    popular = MostPopular().fit(split.train, data.n_items)
    test = evaluate(model, data, split, "test", "full_ranking")
    ndcg = {
        "hybrid": test["ndcg@10"],
        "most_popular": evaluate_split(
            popular.full_sort_predict, popular.predict, data, split, "test", "full_ranking"
        )["ndcg@10"],
    }
    path = ctx.settings.var_dir / "models" / "hybrid.pt"
    model.save(path, data.vocabulary, {"dataset": "database"})
    written = export_serving(model, path, data.vocabulary)
    baselines = {"most_popular": {"ndcg@10": ndcg["most_popular"]}}
    write_training_record(path, model="hybrid", epochs=curve, metrics=test, baselines=baselines)
    ctx.results |= {"model": path, "test_ndcg@10": ndcg, "listening": data}
    console.print(
        f"{epochs} epochs; each listener's last track ranked among all: NDCG@10 "
        f"{ndcg['hybrid']:.3f} (most popular: {ndcg['most_popular']:.3f})"
    )
    console.print(f"wrote {path} and the serving model {written[0].name} with its ONNX graphs")


def _train_recommender(ctx: PipelineContext) -> None:
    """The two-stage recommender /predict serves, trained on every playlist of the MPD folder
    (what the README's `musicrec train-recommender` does)."""
    from ml_pipeline.jobs.train_recommender import TUNING, train, tuned

    data = None if ctx.options.synthetic else ctx.settings.default_mpd_path
    if data is None:
        console.print("no MPD playlists: /predict serves the hybrid model alone")
        return
    target = ctx.settings.recommender_dir
    record = train(data, target, tuned(TUNING), limit=ctx.options.recommender_playlists)
    ranker = record.get("ranker", {})
    top = sorted(ranker.get("importance", {}).items(), key=lambda kv: -kv[1])[:5]
    console.print(
        f"{record['version']}: {record['playlists']:,} playlists, {record['items']:,} tracks, "
        f"ranker on {ranker.get('groups', 0):,} cut playlists; most used features: "
        + ", ".join(f"{name} {share:.0%}" for name, share in top)
    )
    ctx.results["recommender"] = target


def _recommend(ctx: PipelineContext) -> None:
    from ml_pipeline.data.track_texts import track_names
    from ml_pipeline.jobs.recommend import SequentialRecommender
    from ml_pipeline.models.cold_start import ColdStartRecommender, SeedTrack

    def show(title: str, uris: list[str]) -> None:
        known = track_names(ctx.engine, uris)
        console.print(title)
        for rank, uri in enumerate(uris, 1):
            name, artist = known[uri]
            console.print(f"  {rank}. {name} — {artist}", highlight=False)

    # The listener's plays and likes as the train step loaded them (sequences.py's query).
    data = ctx.results["listening"]
    user = ctx.results["user_features"]["user_id"]
    items = data.sequences[data.users.index(user)] if user in data.users else []
    history = [data.vocabulary[i] for i in items]
    model: Path = ctx.results["model"]
    serving = SequentialRecommender(model.with_suffix(".serving.pt"))
    best = [uri for uri, _ in serving.recommend(history, k=5)]
    show(f"next for listener [bold]{user}[/] ({len(history)} plays; {serving.backend}):", best)

    # A new listener who names the two tracks this one played last, and one the catalog has
    # never seen by the same artist.
    last = track_names(ctx.engine, history[-2:])
    seeds = [SeedTrack(*last[uri]) for uri in history[-2:]]
    seeds.append(SeedTrack("A Song Released Today", seeds[-1].artist))
    cold = ColdStartRecommender(model, ctx.engine)
    picks = [r.uri for r in cold.recommend(seeds, k=5)]
    ctx.results["recommendations"] = {"listener": best, "new_listener": picks}
    label = "; ".join(f"{s.name} — {s.artist}" for s in seeds)
    show(f"for a new listener with seeds {label}:", picks)


def _serve(ctx: PipelineContext) -> None:
    """The API on API_PORT (or a free port), called over HTTP like an app would: /predict for
    a new listener naming the tracks the demo listener played last."""
    import json
    import shlex

    import httpx

    from apps.api.main import create_app
    from apps.serving import serve_in_background
    from ml_pipeline.data.track_texts import track_names

    data = ctx.results["listening"]
    user = ctx.results["user_features"]["user_id"]
    items = data.sequences[data.users.index(user)] if user in data.users else data.sequences[0]
    last = [data.vocabulary[i] for i in items[-3:]]
    names = track_names(ctx.engine, last)
    body = {"tracks": [{"track_name": names[u][0], "artist_name": names[u][1]} for u in last]}
    settings = ctx.settings
    with serve_in_background(create_app(settings), settings.api_host, settings.api_port) as api:
        url = f"{api.url}/predict?k=5"
        reply = httpx.post(url, json=body, timeout=60)
    payload = json.dumps(body)
    console.print("the API answered this request (start it with [bold]make serve[/]):")
    curl = f"curl -s -X POST {shlex.quote(url)} -H 'Content-Type: application/json' -d "
    console.print(curl + shlex.quote(payload), highlight=False, soft_wrap=True)
    console.print(f"HTTP {reply.status_code}, {reply.headers.get('X-Recommendation-Source')}:")
    console.print_json(reply.text)
    ctx.results["predict"] = reply.json()
    if reply.status_code != 200:
        raise RuntimeError(f"/predict answered {reply.status_code}: {reply.text}")
    page = f"http://{settings.api_host}:{settings.api_port}/app#key={_demo_key(ctx)}"
    ctx.results["webapp_url"] = page
    console.print("try it in a browser: start the API with [bold]make serve[/] and open")
    console.print(f"  {page}", highlight=False, soft_wrap=True)
    console.print("(the key is in the fragment, which the browser never sends; docs/webapp.md)")


DEMO_KEY_PREFIX = "demo-webapp-"


def _demo_key(ctx: PipelineContext) -> str:
    """A fresh client API key for the web page; the keys of earlier demo runs are revoked. It
    acts for the app whose listeners the demo loaded (mpd, or demo with --synthetic), with every
    scope: the page lists listeners, sends feedback and shows the operations view."""
    from apps.api.security import SCOPES, ApiKeys

    keys = ApiKeys(ctx.engine, 0)
    for key in keys.list():
        if key.active and key.name.startswith(DEMO_KEY_PREFIX):
            keys.revoke(key.name)
    name = f"{DEMO_KEY_PREFIX}{datetime.now(UTC):%Y%m%d-%H%M%S-%f}"
    # Ingested playlists are stored as mpd:<source>:<pid>, synthetic listeners as demo:user:<n>.
    app = "demo" if ctx.results.get("dataset") == "synthetic" else "mpd"
    return keys.create(name, app=app, scopes=SCOPES)


STEPS: list[Step] = [
    Step("migrate", "create or upgrade the database schema", _migrate),
    Step("ingest", "load playlists, audio features and lyrics", _ingest),
    Step("summary", "count what the database holds", _summary),
    Step("features", "compute features, load the online store, read one listener", _features),
    Step("train", "train the hybrid model on the listening history", _train),
    Step(
        "train-recommender",
        "train the two-stage recommender (candidate sources + LightGBM ranker)",
        _train_recommender,
    ),
    Step("recommend", "serve recommendations: a listener, and a new one from seeds", _recommend),
    Step("serve", "serve the API and call /predict over HTTP", _serve),
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
