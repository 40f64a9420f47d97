"""A small serving setup: the styled catalog (9 artists, 3 styles as genres) in a database,
listeners who played it, their features materialized, and the styled hybrid model exported for
serving — embedded (SQLite + Feast's SQLite online store) or services (Postgres + Redis)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from apps.api.tenancy import stored_user_id
from feature_store.store import materialize
from ml_pipeline.training.training_record import write_training_record
from musicrec.config import Settings
from musicrec.db.bulk import write_batch
from musicrec.db.migrate import upgrade
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord, PlaylistRecord, TrackRecord
from tests.ml_pipeline.styled_data import (
    styled_catalog,
    styled_tracks,
    trained_hybrid,
    training_curve,
)

AS_OF = datetime(2026, 11, 20, 12, tzinfo=UTC)
LISTENERS = 40
ADMIN_TOKEN = "admin-token-for-tests"
METRICS_TOKEN = "metrics-token-for-tests"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
# The app the serving setup's listeners belong to: stored as "tests:u0", seen as "u0" by a key
# of this app (apps/api/tenancy.py).
APP = "tests"
STYLE = {f"spotify:track:t{i}": style for i, (style, _, _) in enumerate(styled_tracks())}


def uri(i: int) -> str:
    return f"spotify:track:t{i}"


@dataclass
class ServingEnv:
    settings: Settings
    engine: Engine
    model: Path

    def stored(self, user: str) -> str:
        """The stored id of the setup's listener `user` ("u0" -> "tests:u0")."""
        return stored_user_id(APP, user)

    def history(self, user: str) -> list[str]:
        data, _ = styled_catalog()
        return [data.vocabulary[i] for i in data.sequences[data.users.index(user)]]


def catalog_batch(app: str | None = None, playlists: bool = False) -> CatalogBatch:
    """The 36 tracks, and the first LISTENERS listeners of the styled catalog's plays over the
    last days before AS_OF; their ids "u0", ... are stored as "<app>:u0", ... when `app` is
    given (the API's keys of that app see them as "u0"). With `playlists`, each listener's
    plays are also a playlist named by their first track's style (what the two-stage
    recommender trains on)."""
    batch = CatalogBatch()
    for i, (style, artist, title) in enumerate(styled_tracks()):
        batch.tracks[uri(i)] = TrackRecord(
            uri=uri(i), name=title, artist_name=artist, genre=style, duration_ms=200_000
        )
    data, _ = styled_catalog()
    start = AS_OF - timedelta(days=3)
    for u, (name, items) in enumerate(zip(data.users[:LISTENERS], data.sequences, strict=False)):
        user = name if app is None else stored_user_id(app, name)
        batch.users[user] = None
        for position, item in enumerate(items):
            batch.events.append(
                EventRecord(
                    event_id=uuid.UUID(int=u * 1000 + position + 1),
                    user_external_id=user,
                    track_uri=data.vocabulary[item],
                    event_type=EventType.PLAY,
                    occurred_at=start + timedelta(hours=u, minutes=4 * position),
                    ms_played=190_000,
                )
            )
        if playlists:
            uris = [data.vocabulary[item] for item in items]
            name = f"{STYLE[uris[0]]} favourites"
            batch.playlists.append(PlaylistRecord("tests", u, name, user, uris))
    return batch


@lru_cache(maxsize=1)
def exported_model(folder: Path) -> Path:
    """The styled hybrid saved with its serving model and ONNX graphs (once per session)."""
    from ml_pipeline.data.splits import leave_one_out
    from ml_pipeline.export.serving import export_serving
    from ml_pipeline.training.train_transformer import evaluate

    model, data = trained_hybrid()
    path = folder / "hybrid.pt"
    model.save(path, data.vocabulary)
    export_serving(model, path, data.vocabulary)
    # As the demo and the retraining job write it.
    test = evaluate(model, data, leave_one_out(data.sequences), "test", "full_ranking")
    write_training_record(path, model="hybrid", epochs=training_curve(), metrics=test)
    return path


def require_redis() -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is required at 127.0.0.1:6379: {exc}", pytrace=False)


def build_env(
    mode: str, tmp_path: Path, model: Path, pg_engine: Engine | None, **extra: object
) -> ServingEnv:
    common: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "feast_project": f"t{uuid.uuid4().hex[:10]}",
        "sequential_model_path": model,
        "model_poll_seconds": 0,
        "admin_token": ADMIN_TOKEN,
        "metrics_token": METRICS_TOKEN,
        "api_key_cache_seconds": 0,
        **extra,
    }
    if mode == "embedded":
        settings = Settings(**common)  # type: ignore[arg-type]
        from musicrec.db.engine import make_engine

        engine = make_engine(settings=settings)
    else:
        require_redis()
        assert pg_engine is not None
        engine = pg_engine
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            feast_redis_host="127.0.0.1",
            **common,  # type: ignore[arg-type]
        )
    upgrade(engine)
    write_batch(engine, catalog_batch(APP))
    materialize(settings, engine, AS_OF)
    return ServingEnv(settings, engine, model)
