"""The continuation experiment end to end on a few real MPD files: tuning writes every grid
setting with its validation score, the test run writes one result file per system (the peers,
the product's SASRec, the two-stage recommender and its ablations) with every seed count, and
the report renders them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_pipeline.data.playlists import load_playlists, split_files
from ml_pipeline.evaluation.continuation_report import continuation_tables, tuning_tables
from ml_pipeline.experiments import continuation as experiment
from ml_pipeline.experiments.sasrec_peer import SASRecPeerParams


@pytest.fixture
def small(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> experiment.Experiment:
    files = sorted((shared_data / "mpd_reduced").glob("*.json"))[:60]
    data = load_playlists(files)
    monkeypatch.setattr(experiment, "OUT", tmp_path)
    monkeypatch.setattr(
        experiment,
        "GRIDS",
        {
            "als": {"als_factors": [8], "als_iterations": [2, 4]},
            "item_knn": {"knn_alpha": [0.3, 0.7]},
        },
    )
    # Half the files held out, so that each split has playlists.
    splits = split_files(data.files(), valid_share=0.25, test_share=0.25)
    return experiment.Experiment(data, splits, "mpd_small")


def test_tune_then_test_writes_every_system_and_the_report_renders(
    small: experiment.Experiment, tmp_path: Path
) -> None:
    best = experiment.tune(small)
    tuning = json.loads((tmp_path / "tuning.json").read_text())
    assert len(tuning["als"]["rows"]) == 2 and len(tuning["item_knn"]["rows"]) == 2
    assert best["knn_alpha"] == tuning["item_knn"]["best"]["knn_alpha"]
    assert all(0 <= row["objective"] <= 1 for row in tuning["als"]["rows"])

    tiny_sasrec = SASRecPeerParams(embedding_dim=16, epochs=2, eval_every=1)
    paths = experiment.test(small, "valid", tiny_sasrec)
    recall = json.loads((tmp_path / "candidate_recall.json").read_text())
    assert 0 < recall["seeds_5"]["als"] <= recall["seeds_5"]["union"] <= 1
    documents = [json.loads(p.read_text()) for p in paths if "metrics" in p.read_text()]
    models = {d["model"] for d in documents}
    assert {"popularity", "item_knn", "als", "sasrec", "two_stage", "two_stage-no_ranker"} <= models
    assert {"two_stage-no_als", "two_stage-no_title"} <= models
    for doc in documents:
        if doc["model"] != "sasrec":  # the sources' tuned value
            assert doc["config"]["params"]["knn_alpha"] == best["knn_alpha"]
        for key in ("0", "1", "5", "10", "25", "1_untitled", "5_untitled"):
            metrics = doc["metrics"][f"seeds_{key}"]
            low, high = metrics["ndcg@10_ci95"]
            assert low <= metrics["ndcg@10"] <= high
    two_stage = next(d for d in documents if d["model"] == "two_stage")
    assert two_stage["config"]["training"]["ranker"]["importance"]
    table = continuation_tables(documents, "valid")
    assert "**two-stage**" in table and "NDCG@10 / ALS" in table
    assert "5 seeds**, no title (the tracks alone)" in table
    assert "best knn_alpha" in tuning_tables(tuning)
