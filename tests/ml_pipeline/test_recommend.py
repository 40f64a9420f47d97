"""A trained checkpoint recommends in a fresh process, through ONNX int8 or torch alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_pipeline.export.serving import export_serving
from ml_pipeline.models.sasrec import SASRecConfig
from ml_pipeline.training.train_transformer import train_sasrec
from tests.ml_pipeline.chain_data import N_ITEMS, chain_data


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = chain_data()
    config = SASRecConfig(n_items=N_ITEMS, max_seq_len=10, embedding_dim=32, dropout=0.1)
    result = train_sasrec(data, config, epochs=40, batch_size=64, eval_every=0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    result.model.save(path, data.vocabulary)
    export_serving(result.model, path, data.vocabulary)
    return path


def _recommend(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ml_pipeline.jobs.recommend", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_fresh_process_recommends_the_next_item(checkpoint: Path, backend: str) -> None:
    # The data walks the cycle 1 -> 2 -> ... -> 60 -> 1: after 3, 4, 5 comes 6.
    run = _recommend(str(checkpoint), "3", "4", "5", "-k", "3", "--backend", backend)
    assert run.returncode == 0, run.stderr
    keys = [line.split("\t")[0] for line in run.stdout.splitlines()]
    assert keys[0] == "6" and len(keys) == 3 and not {"3", "4", "5"} & set(keys)


def test_unknown_tracks_are_left_out_or_refused(checkpoint: Path) -> None:
    partly = _recommend(str(checkpoint), "nope", "4", "5", "-k", "1")
    assert partly.returncode == 0 and partly.stdout.startswith("6\t")
    assert "1 of 3 tracks unknown" in partly.stderr
    none = _recommend(str(checkpoint), "nope", "-k", "1")
    assert none.returncode == 1 and "Traceback" not in none.stderr
    assert "none of the tracks is in the model's vocabulary" in none.stderr
    missing = _recommend(str(checkpoint.with_name("absent.pt")), "4")
    assert missing.returncode == 1 and "no such checkpoint file" in missing.stderr
