"""The weekly retraining job: candidate vs production on the same holdout, registered under
MLflow aliases by the decision, logged with its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from apps.api.main import create_app
from apps.ml.service import MLService
from inference.model import ServingModel, locate_model
from ml_pipeline.data.playlists import TrackInfo, playlists_from_database
from ml_pipeline.jobs.retrain import decide, retrain
from musicrec.config import Settings
from musicrec.db.bulk import write_batch
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade
from tests.apps.serving_env import LISTENERS, catalog_batch


def test_decision_rule() -> None:
    assert decide({"ndcg@10": 0.1}, None, 0.02)[0] == "production"
    assert decide({"ndcg@10": 0.103}, {"ndcg@10": 0.1}, 0.02)[0] == "canary"
    alias, why = decide({"ndcg@10": 0.101}, {"ndcg@10": 0.1}, 0.02)
    assert alias == "staging" and "0.1010 < 0.1000" in why


@pytest.mark.timeout(600)
def test_retrain_registers_and_aliases_by_the_decision(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    engine = make_engine(settings=settings)
    upgrade(engine)
    write_batch(engine, catalog_batch())
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name

    first = retrain(engine, settings, epochs=3, margin=0.02)
    assert first.alias == "production" and first.production is None
    assert int(client.get_model_version_by_alias(name, "production").version) == (
        first.candidate_version
    )
    assert first.candidate["ndcg@10"] > 0.05  # the styled listeners are easy to predict
    # The registered version carries every file serving reads (downloaded from the registry).
    source = locate_model(settings)
    assert source is not None and source.registered == first.candidate_version
    served = ServingModel.load(source, engine)
    assert served.text_path is not None and served.n_items > 0

    # The same data and seed again: as good as production, not better by 1000%.
    second = retrain(engine, settings, epochs=3, margin=10.0)
    assert second.alias == "staging"
    assert second.production_version == f"{name}@v{first.candidate_version}"
    assert second.production is not None
    assert second.production["ndcg@10"] == pytest.approx(second.candidate["ndcg@10"], abs=0.05)
    version = {
        a: int(client.get_model_version_by_alias(name, a).version)
        for a in ("staging", "production")
    }
    assert version == {"staging": second.candidate_version, "production": first.candidate_version}
    with pytest.raises(MlflowException):  # no canary
        client.get_model_version_by_alias(name, "canary")
    logged = client.get_model_version(name, str(second.candidate_version)).tags
    decision = json.loads(logged["retrain_decision"])
    assert decision["alias"] == "staging" and decision["production"]["ndcg@10"] > 0


@pytest.mark.timeout(600)
def test_the_version_carries_its_recommender_and_serving_loads_it(tmp_path: Path) -> None:
    """A database with playlists: the version registers the two-stage recommender trained on
    them beside the sequential model, and a service on the registry serves /predict from it."""
    settings = Settings(var_dir=tmp_path / "var", model_poll_seconds=0)
    engine = make_engine(settings=settings)
    upgrade(engine)
    write_batch(engine, catalog_batch(playlists=True))
    playlists = playlists_from_database(engine)
    assert len(playlists.playlists) == LISTENERS and len(playlists.tracks) == 36
    assert playlists.tracks["spotify:track:t0"] == TrackInfo("Thunder of Steel", "Metallica")

    decision = retrain(engine, settings, epochs=2, margin=0.02)
    assert decision.alias == "production" and decision.recommender is not None
    client = MlflowClient(settings.mlflow_tracking_uri)
    version = client.get_model_version(settings.registered_model_name, "1")
    assert version.run_id is not None
    logged = {f.path for f in client.list_artifacts(version.run_id, "model/recommender")}
    assert "model/recommender/recommender.json" in logged

    service = MLService(settings, engine)
    try:
        loaded = service.recommender
        assert loaded is not None and loaded.version == "musicrec-sasrec@v1"
        assert loaded.path.parent == service.model.source.checkpoint.parent  # type: ignore[union-attr]
    finally:
        service.close()
    with TestClient(create_app(settings)) as http:
        seeds = [{"track_name": "Raining Blood", "artist_name": "Slayer"}]
        reply = http.post("/predict", params={"k": 5}, json={"tracks": seeds})
    assert reply.status_code == 200, reply.text
    assert reply.headers["X-Model-Version"] == "musicrec-sasrec@v1"
    assert reply.headers["X-Recommendation-Source"] == "model"
    assert len(reply.json()["recommended_tracks"]) == 5
