"""The training command end to end: MPD or `user item` data in, a checkpoint that loads on its
own, a results file, TensorBoard events and a registered MLflow model version out; bad input is
one line and exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_pipeline.data.sequences import load_mpd, load_sequences
from ml_pipeline.models.sasrec import SASRec
from ml_pipeline.training.train_transformer import app
from musicrec.config import get_settings
from tests.ml_pipeline.chain_data import chain_data

runner = CliRunner()
SEEDS = ("seeds_1", "seeds_3", "seeds_5")  # new listeners: the last 1, 3, 5 tracks only


def _interaction_file(path: Path) -> Path:
    data = chain_data(users=120, length=12)
    lines = [f"{u} {i}" for u, seq in enumerate(data.sequences) for i in seq]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_evaluate_track_and_register(
    tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env(tensorboard_dir=str(tmp_path / "runs"))
    data = _interaction_file(tmp_path / "chain.txt")
    model, results = tmp_path / "model.pt", tmp_path / "result.json"
    args = ["--data", str(data), "--epochs", "4", "--eval-every", "2", "--max-seq-len", "10"]
    args += ["--embedding-dim", "16", "--loss", "sampled_softmax", "--num-negatives", "20"]
    result = runner.invoke(app, [*args, "--output", str(model), "--results", str(results)])
    assert result.exit_code == 0, result.output

    document = json.loads(results.read_text())
    assert document["dataset"] == "chain" and document["split"] == "leave-one-out"
    # 60 items: too few to sample 100 negatives, enough for LLaRA's 20 candidates.
    assert set(document["metrics"]) == {"full_ranking", "candidates_20", *SEEDS}
    assert document["metrics"]["seeds_1"]["users"] == 120
    assert document["metrics"]["full_ranking"]["users"] == 120
    assert [row["epoch"] for row in document["epochs"]] == [1, 2, 3, 4]
    assert "valid_ndcg@10" in document["epochs"][1] and document["commit"]

    loaded, vocabulary, _ = SASRec.load(model)
    assert loaded.config.loss == "sampled_softmax" and len(vocabulary) == 61

    assert list((tmp_path / "runs").glob("sasrec-chain-*/events.out.tfevents.*"))
    import mlflow

    settings = get_settings()
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    version = client.get_model_version(settings.registered_model_name, "1")
    assert version.run_id == document["mlflow"]["run_id"]
    run = client.get_run(version.run_id)
    assert run.data.params["loss"] == "sampled_softmax"
    assert run.data.metrics["test_full_ranking_ndcg_10"] == pytest.approx(
        document["metrics"]["full_ranking"]["ndcg@10"]
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {
        "model/model.pt",
        "model/model.onnx",
        "model/model.int8.onnx",
        "model/model.items.npz",  # vocabulary and item vectors: serving loads no checkpoint
    }
    assert {str(tmp_path / name) for name in ("model.int8.onnx", "model.items.npz")} <= set(
        document["onnx"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/file.txt"], "No such file"),
        (["--loss", "hinge"], "loss must be one of"),
        (["--split", "random"], "--split must be one of"),
        (["--embedding-dim", "50", "--num-heads", "3"], "multiple of num_heads"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    args: list[str], message: str, tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env()
    data = _interaction_file(tmp_path / "chain.txt")
    full = ["--data", str(data), *args] if args[0] != "--data" else args
    result = runner.invoke(app, [*full, "--no-track", "--epochs", "1"])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_mpd_playlists_become_timed_sequences(shared_data: Path) -> None:
    data = load_mpd([shared_data / "mpd" / "mpd.slice.0-999.json"])
    assert len(data.sequences) == 37  # the slice's complete playlists
    assert sum(map(len, data.sequences)) == 2023
    assert data.timestamps is not None
    for times, items in zip(data.timestamps, data.sequences, strict=True):
        assert times == sorted(times) and len(times) == len(items)
    assert data.vocabulary[1].startswith("spotify:track:")
    assert load_sequences(shared_data / "mpd").sequences == data.sequences  # a folder too


def test_hybrid_from_the_database_with_a_serving_model(
    tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    """--model hybrid reads the tracks' texts from the database it trains from, and writes
    the serving model (item vectors baked into a plain SASRec) with its graphs."""
    from datetime import UTC, datetime

    from ml_pipeline.data.synthetic import SyntheticConfig, generate
    from ml_pipeline.models.hybrid import HybridSASRec
    from musicrec.db.bulk import write_batch
    from musicrec.db.engine import make_engine
    from musicrec.db.migrate import upgrade

    settings_env()
    engine = make_engine()
    upgrade(engine)
    config = SyntheticConfig(n_users=60, n_artists=40, n_tracks=300)
    write_batch(engine, generate(config, datetime(2026, 1, 1, tzinfo=UTC)))
    model, results = tmp_path / "hybrid.pt", tmp_path / "hybrid.json"
    args = ["--model", "hybrid", "--epochs", "2", "--eval-every", "1", "--embedding-dim", "16"]
    args += [
        "--num-negatives",
        "50",
        "--no-track",
        "--output",
        str(model),
        "--results",
        str(results),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(results.read_text())
    assert document["model"] == "hybrid" and document["dataset"] == "database"
    assert (
        document["config"]["curriculum_epochs"] == 10
        and document["config"]["loss"] == "sampled_softmax"
    )
    hybrid, vocabulary, _ = HybridSASRec.load(model)
    assert hybrid.config.text_dim == 384 and vocabulary[1].startswith("spotify:track:")
    serving, baked_vocabulary, _ = SASRec.load(tmp_path / "hybrid.serving.pt")
    assert baked_vocabulary == vocabulary
    assert str(tmp_path / "hybrid.serving.int8.onnx") in document["onnx"]
    assert str(tmp_path / "hybrid.seed_scores.onnx") in document["onnx"]  # the text path
