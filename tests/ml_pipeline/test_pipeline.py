"""The demo pipeline end to end on the embedded default, with and without real data."""

import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, func, select

from apps.api.security import SCOPES, ApiKeys
from apps.demo import STEPS, DemoOptions, PipelineContext, run_demo
from feature_store.definitions import VIEWS
from inference.training_record import read_training_record
from musicrec.config import Settings
from musicrec.db.engine import make_engine


def test_step_order_is_the_documented_pipeline() -> None:
    assert [s.name for s in STEPS][:7] == [
        "migrate", "ingest", "summary", "features", "train", "train-recommender", "recommend"
    ]  # fmt: skip


def test_demo_without_real_data_uses_the_generator(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", shared_data_dir=tmp_path / "no-data")
    ctx = run_demo(DemoOptions(), settings)
    counts = ctx.results["counts"]
    assert ctx.results["dataset"] == "synthetic"
    assert (tmp_path / "var" / "musicrec.db").exists()
    assert counts["users"] == 300 and counts["tracks"] == 3000
    assert counts["events_skip"] > 0 and counts["tracks_with_audio_features"] == 3000
    features = ctx.results["user_features"]
    assert features["user_listening_stats__plays"] + features["user_listening_stats__skips"] > 0
    # Trained on the generated history, the model beats popularity on each listener's last play.
    ndcg = ctx.results["test_ndcg@10"]
    assert ndcg["hybrid"] > 1.3 * ndcg["most_popular"]
    assert (tmp_path / "var" / "models" / "hybrid.serving.int8.onnx").exists()
    recommended = ctx.results["recommendations"]
    assert len(recommended["listener"]) == len(set(recommended["new_listener"])) == 5
    # The model's training record (per-epoch curve, test metrics) for the operations view.
    record = read_training_record(tmp_path / "var" / "models" / "hybrid.pt")
    assert record is not None and len(record["epochs"]) == 10
    assert record["metrics"]["ndcg@10"] == ndcg["hybrid"]
    # The web page's address carries a working client key in its fragment.
    page, key = ctx.results["webapp_url"].split("#key=")
    info = ApiKeys(ctx.engine, 0).verify(key)
    assert page.endswith("/app") and info is not None
    # It sees the generated listeners (demo:user:<n>) and may do what the page does.
    assert info.app == "demo" and info.scopes == SCOPES
    # Running it again is safe and adds nothing; the earlier page key is revoked.
    assert run_demo(DemoOptions(epochs=1), settings).results["counts"] == counts
    assert ApiKeys(ctx.engine, 0).verify(key) is None


def test_demo_with_real_data_joins_features(tmp_path: Path, shared_data: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", shared_data_dir=shared_data)
    ctx = run_demo(DemoOptions(limit=60, epochs=2, recommender_playlists=300), settings)
    counts = ctx.results["counts"]
    assert ctx.results["dataset"] == "mpd"
    assert counts["playlists"] == 60 and counts["listening_events"] == counts["playlist_tracks"]
    assert counts["tracks_with_audio_features"] > 0
    # /predict was answered by the two-stage recommender trained on the MPD folder's playlists.
    assert (ctx.results["recommender"] / "ranker.txt").is_file()
    assert ctx.results["predict"]["unmatched_seeds"] == []
    # The page's key is the app mpd's, whose listeners the ingest stored as mpd:<source>:<pid>.
    _, key = ctx.results["webapp_url"].split("#key=")
    info = ApiKeys(ctx.engine, 0).verify(key)
    assert info is not None and info.app == "mpd" and info.scopes == SCOPES


def test_rerunning_the_writing_steps_on_the_same_postgres_schema_adds_nothing(
    pg_schema_engine: Callable[[], Engine], tmp_path: Path, shared_data: Path
) -> None:
    """`make demo` twice on one Postgres database (the tester's duplicate key in the feature
    tables): ingest, features and materialization again, with real data, add no rows and fail
    nowhere. (SQLite: the job's re-runs are in tests/feature_store/test_compute.py, ingest's in
    tests/ml_pipeline/ingest; the whole demo re-runs above.)"""
    settings = Settings(
        var_dir=tmp_path / "var",
        shared_data_dir=shared_data,
        # One feature file with Spotify ids (a join that updates tracks), to keep it short.
        audio_features_path=shared_data / "audio_features/spotify_hit_predictor/dataset-of-10s.csv",
        database_url=pg_schema_engine().url.render_as_string(hide_password=False),
        feast_project=f"t{uuid.uuid4().hex[:10]}",
    )
    writing = [s for s in STEPS if s.name in ("migrate", "ingest", "summary", "features")]

    def run() -> dict[str, int]:
        engine = make_engine(settings=settings)
        ctx = PipelineContext(settings=settings, engine=engine, options=DemoOptions(limit=8))
        for step in writing:
            step.run(ctx)
        with engine.connect() as conn:
            rows = {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table, *_ in VIEWS.values()
            }
        engine.dispose()
        assert ctx.results["dataset"] == "mpd"
        return {**ctx.results["counts"], **rows}

    first = run()
    assert first["playlists"] == 8 and first["tracks_with_audio_features"] > 0
    assert run() == first
