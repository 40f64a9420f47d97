"""The serving benchmark's workload and the state it serves from: the synthetic catalog and
listeners (DATA, as of AS_OF), an untrained SASRec of serving size (MODEL) exported as the int8
graph, the embedded-mode state (SQLite and Feast's SQLite online store) built once and cached
under the temp dir, keyed by the code that shapes it, and the services-mode state (a Postgres
schema and a Redis project of its own, removed afterwards). Also the Settings the servers get."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import redis
import torch

from benchmarks.common import log, scratch_schema
from benchmarks.servers import SetupFailed
from feature_store.store import materialize, open_store
from ml_pipeline.data.synthetic import SyntheticConfig, generate
from ml_pipeline.export.serving import export_serving
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from musicrec.config import REPO_ROOT, Settings
from musicrec.db.bulk import write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from musicrec.events import EventType
from musicrec.records import CatalogBatch

DATA = SyntheticConfig(
    n_users=2_000, n_artists=5_000, n_tracks=50_000, sessions_per_user=2.0, days=14, seed=7
)  # about 33 events (plays, skips, clicks, likes) per listener
AS_OF = datetime(2026, 11, 20, 12, tzinfo=UTC)
MODEL = SASRecConfig(
    n_items=DATA.n_tracks, embedding_dim=64, max_seq_len=50, num_layers=2, num_heads=1
)
USER_K, PREDICT_K, SEEDS = 10, 20, 5
CACHE_ROOT = Path(tempfile.gettempdir()) / "musicrec-bench-serving"
# The feature batch job's modules (what the materialized features are computed by).
FEATURE_JOB = (
    "feature_store/compute.py",
    "feature_store/windowed_views.py",
    "feature_store/state_views.py",
    "feature_store/feature_sql.py",
)
SHAPING_CODE = (
    *(
        "ml_pipeline/data/synthetic.py",
        "ml_pipeline/models/sasrec.py",
        "ml_pipeline/export/onnx.py",
        "ml_pipeline/export/serving.py",
    ),
    *("feature_store/definitions.py", *FEATURE_JOB, "db/migrations"),
)
# The code the servers run: edited during a run, the modes measure different code.
SERVING_CODE = ("apps", "musicrec", "feature_store", "ml_pipeline/export/onnx.py")


@dataclass
class Workload:
    listeners: list[str]  # with plays, so the model path is taken
    seeds: list[tuple[str, str]]  # (title, artist) of catalog tracks


LISTENER_APP = "demo"  # ml_pipeline/data/synthetic.py stores its listeners as demo:user:<n>


@cache
def _batch() -> CatalogBatch:
    batch = generate(DATA, AS_OF)
    batch.playlists = []  # serving reads events and features, never playlists
    return batch


def _workload(batch: CatalogBatch) -> Workload:
    played = {e.user_external_id for e in batch.events if e.event_type == EventType.PLAY}
    seeds = [(t.name, t.artist_name) for t in batch.tracks.values()]
    return Workload(sorted(played), seeds)


def fingerprint(names: Sequence[str], salt: str = "") -> str:
    digest = hashlib.sha256(salt.encode())
    for name in names:
        path = REPO_ROOT / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _cache_key() -> str:
    return fingerprint(SHAPING_CODE, repr((DATA, AS_OF, MODEL)))


def bench_settings(var_dir: Path, model: Path, **extra: Any) -> Settings:
    return Settings(
        var_dir=var_dir,
        sequential_model_path=model,
        model_poll_seconds=0,
        rate_limit_per_second=1e9,
        rate_limit_burst=10**9,
        **extra,
    )


def _load(settings: Settings, batch: CatalogBatch) -> None:
    engine = make_engine(settings=settings)
    try:
        with redirect_stdout(sys.stderr):  # Feast prints progress; stdout is for the result
            upgrade(engine)
            write_batch(engine, batch)
            materialize(settings, engine, AS_OF)
    finally:
        engine.dispose()


def embedded_cache(fresh: bool) -> tuple[Path, Workload]:
    """The model and the embedded-mode state, built once (a marker file says it is complete)."""
    folder = CACHE_ROOT / _cache_key()
    done = folder / "complete.json"
    if fresh or not done.is_file():
        shutil.rmtree(CACHE_ROOT, ignore_errors=True)  # older keys too: 400 MB each
        log(f"building the setup in {folder} (cached for the next runs)")
        batch = _batch()
        model = folder / "model" / "sasrec.pt"
        model.parent.mkdir(parents=True)
        torch.manual_seed(0)
        sasrec = SASRec(MODEL).eval()
        vocabulary = ["<pad>", *batch.tracks]
        sasrec.save(model, vocabulary)
        export_serving(sasrec, model, vocabulary)  # the graphs and the items serving reads
        _load(bench_settings(folder / "var", model, feast_project="benchserving"), batch)
        workload = _workload(batch)
        done.write_text(json.dumps({"listeners": workload.listeners, "seeds": workload.seeds}))
    saved = json.loads(done.read_text())
    return folder, Workload(saved["listeners"], [(name, artist) for name, artist in saved["seeds"]])


@contextmanager
def services_settings(model: Path, var_dir: Path) -> Iterator[Settings]:
    """Postgres schema and Redis project of their own, loaded with the batch; removed after."""
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise SetupFailed(f"Redis is required at 127.0.0.1:6379 ({exc})") from exc
    with scratch_schema() as engine:
        settings = bench_settings(
            var_dir,
            model,
            database_url=engine.url.render_as_string(hide_password=False),
            feast_redis_host="127.0.0.1",
            feast_project=f"bench{uuid.uuid4().hex[:10]}",
        )
        try:
            _load(settings, _batch())
            yield settings
        finally:
            try:
                open_store(settings).teardown()
            except Exception as exc:  # never hide the error that got us here
                log(f"warning: Feast teardown of {settings.feast_project} failed: {exc}")
