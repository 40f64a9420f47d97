"""Canary: a stable share of listeners served by the canary model; promotion or rollback by
their feedback against the others'."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from apps.ml.schemas import UserQuery
from apps.ml.service import MLService
from feature_store.store import materialize
from inference.model import in_canary
from ml_pipeline.jobs.promote import GroupStats, judge, promote
from ml_pipeline.jobs.retrain import retrain
from musicrec.config import Settings
from musicrec.db.bulk import write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord
from tests.apps.serving_env import AS_OF, LISTENERS, catalog_batch


def test_the_canary_share_is_stable_and_about_right() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    share = sum(in_canary(u, 0.1) for u in users) / len(users)
    assert 0.09 < share < 0.11
    assert [in_canary(u, 0.1) for u in users[:50]] == [in_canary(u, 0.1) for u in users[:50]]
    assert not any(in_canary(u, 0.0) for u in users[:100])


def test_judge() -> None:
    same = GroupStats(listeners=100, events=5000, skips=1000, clicks=500)
    assert judge(same, same, 1000)[0] == "promote"
    skippy = GroupStats(listeners=100, events=5000, skips=1300, clicks=500)
    action, why = judge(skippy, same, 1000)
    assert action == "rollback" and "skip rate 0.2600 vs 0.2000" in why
    fewer_clicks = GroupStats(listeners=100, events=5000, skips=1000, clicks=350)
    assert judge(fewer_clicks, same, 1000)[0] == "rollback"
    assert judge(same, same, 10_000)[0] == "wait"


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Settings, Engine]:
    """Production v1 and canary v2 of the styled model, half the listeners on the canary."""
    settings = Settings(var_dir=tmp_path / "var", canary_share=0.5, model_poll_seconds=0)
    engine = make_engine(settings=settings)
    upgrade(engine)
    write_batch(engine, catalog_batch())
    assert retrain(engine, settings, epochs=2, margin=0.02).alias == "production"
    assert retrain(engine, settings, epochs=2, margin=-1.0).alias == "canary"
    materialize(settings, engine, AS_OF)
    return settings, engine


def _feedback(engine: Engine, skip_share: dict[bool, float], per_user: int = 40) -> None:
    batch = CatalogBatch()
    now = datetime.now(UTC) + timedelta(seconds=1)
    for u in range(LISTENERS):
        user = f"u{u}"
        skips = round(per_user * skip_share[in_canary(user, 0.5)])
        for n in range(per_user):
            batch.events.append(
                EventRecord(
                    event_id=uuid.uuid4(),
                    user_external_id=user,
                    track_uri=f"spotify:track:t{n % 36}",
                    event_type=EventType.SKIP if n < skips else EventType.PLAY,
                    occurred_at=now + timedelta(seconds=n),
                )
            )
    write_batch(engine, batch)


def test_the_service_routes_the_canary_share(registry: tuple[Settings, Engine]) -> None:
    settings, engine = registry
    service = MLService(settings, engine)
    status = service.status()
    assert status.version == "musicrec-sasrec@v1" and status.canary_version == "musicrec-sasrec@v2"
    for u in range(10):
        user = f"u{u}"
        served = service.recommend_user(UserQuery(user_id=user)).model_version
        expected = "musicrec-sasrec@v2" if in_canary(user, 0.5) else "musicrec-sasrec@v1"
        assert served == expected


@pytest.mark.parametrize(("canary_skips", "action"), [(0.2, "promote"), (0.6, "rollback")])
def test_promotion_by_feedback(
    registry: tuple[Settings, Engine], canary_skips: float, action: str
) -> None:
    settings, engine = registry
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    assert promote(engine, settings, min_events=100).action == "wait"  # no feedback yet
    _feedback(engine, {True: canary_skips, False: 0.2})
    decision = promote(engine, settings, min_events=100)
    assert decision.action == action, decision.reason
    production = client.get_model_version_by_alias(name, "production").version
    assert int(production) == (2 if action == "promote" else 1)
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(name, "canary")
    logged = json.loads(client.get_model_version(name, "2").tags["promotion"])
    assert logged["action"] == action and logged["canary"]["events"] > 100
    assert promote(engine, settings, min_events=100).action == "none"
