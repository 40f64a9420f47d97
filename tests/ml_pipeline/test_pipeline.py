"""The demo pipeline end to end on the embedded default, with and without real data."""

from pathlib import Path

from apps.api.security import ApiKeys
from ml_pipeline.pipeline import STEPS, DemoOptions, run_demo
from ml_pipeline.training_record import read_training_record
from musicrec.config import Settings


def test_step_order_is_the_documented_pipeline() -> None:
    assert [s.name for s in STEPS][:6] == [
        "migrate", "ingest", "summary", "features", "train", "recommend"
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
    assert page.endswith("/app") and ApiKeys(ctx.engine, 0).verify(key) is not None
    # Running it again is safe and adds nothing; the earlier page key is revoked.
    assert run_demo(DemoOptions(epochs=1), settings).results["counts"] == counts
    assert ApiKeys(ctx.engine, 0).verify(key) is None


def test_demo_with_real_data_joins_features(tmp_path: Path, shared_data: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", shared_data_dir=shared_data)
    ctx = run_demo(DemoOptions(limit=60, epochs=2), settings)
    counts = ctx.results["counts"]
    assert ctx.results["dataset"] == "mpd"
    assert counts["playlists"] == 60 and counts["listening_events"] == counts["playlist_tracks"]
    assert counts["tracks_with_audio_features"] > 0
