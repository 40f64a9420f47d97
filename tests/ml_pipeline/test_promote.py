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
from sqlalchemy import Engine, select

from apps.ml.exposures import EXPOSURES
from apps.ml.schemas import UserQuery
from apps.ml.service import MLService
from feature_store.store import materialize
from inference.model import in_canary
from ml_pipeline.jobs.promote import GroupStats, judge, promote, served_stats
from ml_pipeline.jobs.retrain import retrain
from musicrec.config import Settings
from musicrec.db.bulk import EVENTS, write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord
from tests.apps.serving_env import AS_OF, LISTENERS, catalog_batch, uri
from tests.conftest import backends


def test_the_canary_share_is_stable_and_about_right() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    share = sum(in_canary(u, 0.1) for u in users) / len(users)
    assert 0.09 < share < 0.11
    assert [in_canary(u, 0.1) for u in users[:50]] == [in_canary(u, 0.1) for u in users[:50]]
    assert not any(in_canary(u, 0.0) for u in users[:100])


def test_judge() -> None:
    def group(events: int, skips: int, clicks: int) -> GroupStats:
        return GroupStats(listeners=100, exposures=1000, events=events, skips=skips, clicks=clicks)

    same = group(5000, 1000, 500)
    assert judge(same, same, 1000)[0] == "promote"
    action, why = judge(group(5000, 1300, 500), same, 1000)
    assert action == "rollback" and "skip rate 0.2600 vs 0.2000" in why
    assert judge(group(5000, 1000, 350), same, 1000)[0] == "rollback"  # fewer clicks
    # 5% more skips, within the 10% margin: promoted once that is sure, not before.
    assert judge(group(200_000, 42_000, 20_000), group(200_000, 40_000, 20_000), 1000)[0] == (
        "promote"
    )
    action, why = judge(group(2000, 420, 200), group(2000, 400, 200), 1000)
    assert action == "wait" and why.startswith("not conclusive")
    assert judge(same, same, 10_000)[0] == "wait"
    nobody = GroupStats(listeners=0, exposures=0, events=0, skips=0, clicks=0)
    assert judge(nobody, same, 1)[0] == "wait"


@backends
def test_outcomes_count_for_the_version_that_showed_the_track_before(engine: Engine) -> None:
    """Only feedback on a track a version showed the listener, received after it did (the
    server's time, whatever the client's), counts for that version."""
    write_batch(engine, catalog_batch())
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    shown = [("u1", "m@v2", [uri(1), uri(2)]), ("u2", "m@v1", [uri(1)]), ("u3", "m@v0", [uri(1)])]
    with engine.begin() as conn:
        conn.execute(
            EXPOSURES.insert(),
            [{"served_at": t0, "user_id": u, "model_version": v, "tracks": t} for u, v, t in shown],
        )
    received = {
        ("u1", 1, EventType.CLICK): t0 + timedelta(minutes=1),  # counts for v2
        ("u1", 2, EventType.SKIP): t0 - timedelta(minutes=1),  # before it was shown
        ("u1", 3, EventType.SKIP): t0 + timedelta(minutes=1),  # a track v2 did not show
        ("u2", 1, EventType.SKIP): t0 + timedelta(minutes=1),  # counts for v1
        ("u4", 1, EventType.SKIP): t0 + timedelta(minutes=1),  # a listener nobody served
    }
    batch = CatalogBatch()
    ids = {}
    for user, track, kind in received:
        ids[user, track, kind] = uuid.uuid4()
        # The client says it happened long ago: only the server's time counts.
        batch.events.append(EventRecord(ids[user, track, kind], user, uri(track), kind, AS_OF))
    write_batch(engine, batch)
    with engine.begin() as conn:
        for key, at in received.items():
            conn.execute(EVENTS.update().where(EVENTS.c.event_id == ids[key]).values(created_at=at))

    stats = served_stats(engine, t0 - timedelta(hours=1), ["m@v2", "m@v1"])
    assert stats["m@v2"] == GroupStats(listeners=1, exposures=1, events=1, skips=0, clicks=1)
    assert stats["m@v1"] == GroupStats(listeners=1, exposures=1, events=1, skips=1, clicks=0)


@pytest.fixture(params=["sequential", "two_stage"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Settings, Engine]:
    """Production v1 and canary v2 of the styled model, half the listeners on the canary; for
    "two_stage", each version carries a recommender trained on the listeners' playlists."""
    settings = Settings(var_dir=tmp_path / "var", canary_share=0.5, model_poll_seconds=0)
    engine = make_engine(settings=settings)
    upgrade(engine)
    write_batch(engine, catalog_batch(playlists=request.param == "two_stage"))
    assert retrain(engine, settings, epochs=2, margin=0.02).alias == "production"
    assert retrain(engine, settings, epochs=2, margin=-1.0).alias == "canary"
    materialize(settings, engine, AS_OF)
    return settings, engine


def _serve(settings: Settings, engine: Engine, users: list[str]) -> dict[str, list[str]]:
    """Each listener's answer (its track URIs), the exposures written."""
    service = MLService(settings, engine)
    try:
        return {
            user: [t.track_uri for t in service.recommend_user(UserQuery(user_id=user)).tracks]
            for user in users
        }
    finally:
        service.close()


def _feedback(
    engine: Engine, shown: dict[str, list[str]], skip_share: dict[bool, float], per_user: int = 40
) -> None:
    """Plays and skips of each listener on the tracks in `shown` (client times long past)."""
    batch = CatalogBatch()
    for user, tracks in shown.items():
        skips = round(per_user * skip_share[in_canary(user, 0.5)])
        for n in range(per_user):
            kind = EventType.SKIP if n < skips else EventType.PLAY
            batch.events.append(
                EventRecord(uuid.uuid4(), user, tracks[n % len(tracks)], kind, AS_OF)
            )
    write_batch(engine, batch)


def test_the_service_routes_the_canary_share_and_logs_exposures(
    registry: tuple[Settings, Engine], request: pytest.FixtureRequest
) -> None:
    settings, engine = registry
    service = MLService(settings, engine)
    status = service.status()
    assert status.version == "musicrec-sasrec@v1" and status.canary_version == "musicrec-sasrec@v2"
    two_stage = request.node.callspec.params["registry"] == "two_stage"
    assert (service.recommender is not None) == two_stage
    before = datetime.now(UTC)
    answers = {}
    for u in range(10):
        user = f"u{u}"
        expected = "musicrec-sasrec@v2" if in_canary(user, 0.5) else "musicrec-sasrec@v1"
        recommender = service.recommender_for(user)
        if recommender is not None:  # the version's own recommender answers
            assert recommender.version == expected and f"-v{expected[-1]}" in str(recommender.path)
        answer = service.recommend_user(UserQuery(user_id=user, request_id=f"r{u}"))
        assert answer.model_version == expected
        answers[user] = (expected, [t.track_uri for t in answer.tracks], f"r{u}")
    service.close()  # writes the exposures left
    with engine.connect() as conn:
        rows = conn.execute(select(EXPOSURES)).all()
    assert {r.user_id: (r.model_version, r.tracks, r.request_id) for r in rows} == answers
    served = [r.served_at if r.served_at.tzinfo else r.served_at.replace(tzinfo=UTC) for r in rows]
    assert all(before <= t <= datetime.now(UTC) for t in served)


@pytest.mark.parametrize(("canary_skips", "action"), [(0.2, "promote"), (0.6, "rollback")])
@pytest.mark.parametrize("registry", ["two_stage"], indirect=True)
def test_promotion_by_what_each_version_served(
    registry: tuple[Settings, Engine], canary_skips: float, action: str
) -> None:
    settings, engine = registry
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    served = _serve(settings, engine, [f"u{u}" for u in range(30)])
    assert promote(engine, settings, min_events=100).action == "wait"  # no feedback yet
    _feedback(engine, served, {True: canary_skips, False: 0.2})
    # Listeners the service never answered skip everything: it counts for neither version.
    unserved = {f"u{u}": [uri(n) for n in range(36)] for u in range(30, LISTENERS)}
    _feedback(engine, unserved, {True: 1.0, False: 1.0})
    decision = promote(engine, settings, min_events=100, margin=0.5)
    assert decision.action == action, decision.reason
    production = client.get_model_version_by_alias(name, "production").version
    assert int(production) == (2 if action == "promote" else 1)
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(name, "canary")
    logged = json.loads(client.get_model_version(name, "2").tags["promotion"])
    canary = logged["canary"]
    assert logged["action"] == action and canary["events"] > 100
    assert canary["listeners"] == sum(in_canary(u, 0.5) for u in served)
    assert promote(engine, settings, min_events=100).action == "none"


@pytest.mark.parametrize("registry", ["sequential"], indirect=True)
def test_a_canary_that_served_nobody_is_not_promoted(registry: tuple[Settings, Engine]) -> None:
    """Its listeners' good feedback is not its own: the canary never answered them."""
    settings, engine = registry
    control = [f"u{u}" for u in range(LISTENERS) if not in_canary(f"u{u}", 0.5)]
    served = _serve(settings, engine, control)
    everyone = {f"u{u}": [uri(n) for n in range(36)] for u in range(LISTENERS)}
    _feedback(engine, everyone, {True: 0.0, False: 0.2})
    decision = promote(engine, settings, min_events=100)
    assert decision.action == "wait" and decision.canary is not None
    assert decision.canary.listeners == 0 and decision.canary.events == 0
    assert decision.control is not None and decision.control.listeners == len(served)
    version = MlflowClient(settings.mlflow_tracking_uri).get_model_version_by_alias(
        settings.registered_model_name, "canary"
    )
    assert int(version.version) == 2
