import json
from pathlib import Path
from typing import Any

import pytest

from ml_pipeline.evaluation.report import main, replace_block

RESULT = {
    "dataset": "Video",
    "model": "sasrec",
    "seconds_per_epoch": 13.5,
    "metrics": {
        "sampled_100": {"hr@10": 0.75, "ndcg@10": 0.5, "users": 3},
        "full_ranking": {
            "recall@10": 0.1,
            "precision@10": 0.01,
            "mrr@10": 0.05,
            "ndcg@10": 0.06,
            "hit_rate@20": 0.2,
            "users": 3,
        },
    },
}


BLOCKS = "".join(
    f"<!-- generated:{name} -->\n<!-- end:{name} -->\n"
    for name in (
        "continuation",
        "continuation-tuning",
        "recommender-served",
        "candidate-recall",
        "models",
        "cold-start",
        "onnx-parity",
        "inference",
        "training-speed",
        "interest-graph",
    )
)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "sasrec_Video.json").write_text(json.dumps(RESULT))
    return tmp_path / "results"


def test_tables_come_from_the_result_files(tmp_path: Path, results: Path) -> None:
    doc = tmp_path / "results.md"
    doc.write_text(
        "intro\n<!-- generated:sequential -->\nold\n<!-- end:sequential -->\n" + BLOCKS + "outro\n"
    )
    main(doc, results)
    text = doc.read_text()
    assert "\nold\n" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert (
        "| Video | sasrec | 0.7500 | 0.5000 | 0.1000 | 0.0100 | 0.0500 | 0.0600 | 0.2000 |" in text
    )


def test_a_missing_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="no generated block 'x'"):
        replace_block("no markers here", "x", "body")


def test_an_empty_block_is_filled_and_regenerating_is_stable(tmp_path: Path, results: Path) -> None:
    doc = tmp_path / "results.md"
    doc.write_text("<!-- generated:sequential -->\n<!-- end:sequential -->\n" + BLOCKS)
    main(doc, results)
    once = doc.read_text()
    assert "| Video | sasrec |" in once
    main(doc, results)
    assert doc.read_text() == once


def test_one_table_per_dataset_with_the_ratio_to_the_best_baseline(
    tmp_path: Path, results: Path
) -> None:
    for model, ndcg in (("item_knn", 0.05), ("most_popular", 0.01)):
        baseline = {**RESULT, "model": model, "commit": "abc1234"}
        baseline["metrics"] = {
            "full_ranking": {**RESULT["metrics"]["full_ranking"], "ndcg@10": ndcg}
        }
        (results / f"{model}_Video.json").write_text(json.dumps(baseline))
    (results / "item_knn_Other.json").write_text(json.dumps({**RESULT, "dataset": "Other"}))
    doc = tmp_path / "results.md"
    doc.write_text("<!-- generated:sequential -->\n<!-- end:sequential -->\n" + BLOCKS)
    main(doc, results)
    text = doc.read_text()
    assert text.count("**Video**, leave-one-out split, 3 test users:") == 1
    assert "**Other**" in text
    # SASRec's 0.06 over item-kNN's 0.05; the most-popular row has no sampled protocol.
    assert (
        "| sasrec | 0.1000 | 0.0100 | 0.0500 | 0.0600 | 0.2000 | 0.7500 | 0.5000 | 1.20× |" in text
    )
    assert (
        "| most_popular | 0.1000 | 0.0100 | 0.0500 | 0.0100 | 0.2000 | — | — | 0.20× | abc1234 |"
        in text
    )
    models = text.split("<!-- generated:models -->")[1].split("<!-- end:models -->")[0]
    rows = [line.split(" | ")[0] for line in models.splitlines() if line.startswith("| ")]
    assert rows[-3:] == ["| most_popular", "| item_knn", "| sasrec"]  # weakest first


def test_benchmarks_not_run_yet_say_so(tmp_path: Path, results: Path) -> None:
    doc = tmp_path / "results.md"
    doc.write_text("<!-- generated:sequential -->\n<!-- end:sequential -->\n" + BLOCKS)
    main(doc, results)
    # cold start, inference, training speed, interest graph, and the continuation blocks
    assert doc.read_text().count("(not measured yet)") == 7


def _doc(model: str, split: str, **metrics: dict[str, float]) -> dict[str, object]:
    return {"dataset": "mpd", "model": model, "split": split, "commit": "abc1234",
            "config": {"epochs": 150}, "metrics": metrics}  # fmt: skip


def test_cold_start_tables(tmp_path: Path) -> None:
    full = RESULT["metrics"]["full_ranking"]
    seeds = {f"seeds_{n}": {"recall@10": 0.01 * n, "ndcg@10": 0.005 * n} for n in (1, 3, 5)}
    documents = {
        "hybrid_mpd_cold-track": _doc(
            "hybrid", "cold-track", full_ranking={**full, "recall@10": 0.06}
        ),
        "text_knn_mpd_cold-track": _doc(
            "text_knn", "cold-track", full_ranking={**full, "ndcg@10": 0.02}
        ),
        "hybrid_mpd": _doc(
            "hybrid",
            "leave-one-out",
            full_ranking={**full, "recall@10": 0.1, "ndcg@10": 0.0588},
            candidates_20={"hr@1": 0.4, "users": 3},
            **seeds,
        ),
        "sasrec_mpd": _doc("sasrec", "leave-one-out", full_ranking={**full, "ndcg@10": 0.06}),
    }
    results = tmp_path / "results"
    results.mkdir()
    for name, document in documents.items():
        (results / f"{name}.json").write_text(json.dumps(document))
    doc = tmp_path / "results.md"
    doc.write_text("<!-- generated:sequential -->\n<!-- end:sequential -->\n" + BLOCKS)
    main(doc, results)
    block = doc.read_text().split("<!-- generated:cold-start -->")[1].split("<!-- end:")[0]
    rows = [
        line
        for line in block.splitlines()
        if line.startswith("| text_knn") or line.startswith("| hybrid")
    ]
    assert rows[:2] == [
        "| text_knn | 0.1000 | 0.0200 | — | 150 | abc1234 |",
        "| hybrid | 0.0600 | 0.0600 | — | 150 | abc1234 |",
    ]  # weakest first, by NDCG@10
    assert "0.0600 / 0.1000 = **0.60×** (goal ≥ 0.5×)" in block
    assert "hybrid NDCG@10 0.0588 vs SASRec 0.0600: **-2.0%**" in block
    assert "| hybrid | 0.0100 | 0.0050 | 0.0300 | 0.0150 | 0.0500 | 0.0250 | 0.4000 |" in block


def test_interest_graph_table() -> None:
    from ml_pipeline.evaluation.report import interest_graph_table

    metrics = {"ndcg@10": 0.1, "recall@10": 0.05, "hit_rate@20": 0.6}
    doc = {
        "playlists": {"train": 800, "valid": 100, "test": 100},
        "evaluated": {"valid": 90, "test": 95},
        "epochs": 40,
        "items": 5000,
        "min_item_count": 5,
        "candidates": 100,
        "provider": "local",
        "seconds": 12.3,
        "results": {
            "graph": {
                "weight": 2.0,
                "test_model_only": metrics,
                "test_reranked": {**metrics, "ndcg@10": 0.125},
                "test_ndcg@10_delta": 0.025,
                "test_ndcg@10_delta_ci95": 0.01,
            }
        },
    }
    table = interest_graph_table(doc)
    assert "| whole graph | 2.0 | 0.1000 | 0.1250 | +0.0250 ± 0.0100 |" in table
    assert "90 validation and 95 test playlists evaluated" in table


def test_continuation_tables_show_each_system_with_intervals_and_the_ratio_to_als() -> None:
    from ml_pipeline.evaluation.continuation_report import continuation_tables, tuning_tables

    def run(model: str, ndcg: float) -> dict[str, Any]:
        metrics = {
            "cases": 10,
            "ndcg@10": ndcg,
            "ndcg@10_ci95": [ndcg - 0.01, ndcg + 0.01],
            "hr@10": 0.5,
            "recall@10": 0.1,
            "r_precision": ndcg / 2,
            "r_precision_ci95": [0.0, 1.0],
            "ndcg@500": 0.3,
            "cold_share_of_correct_top10": 0.0,
            "ms_per_query": 2.0,
        }
        return {
            "dataset": "mpd",
            "split": "test",
            "model": model,
            "commit": "abc",
            "files": {"train": 8, "valid": 1, "test": 1},
            "metrics": {f"seeds_{n}": metrics for n in (0, 1, 5, 10, 25)},
        }

    text = continuation_tables([run("two_stage", 0.3), run("als", 0.2)])
    assert text.index("| als |") < text.index("**two-stage**")  # peers first
    assert "| 1.50× | 1.50× |" in text and "0.3000 [0.290, 0.310]" in text
    assert continuation_tables([]) == "(not measured yet)"
    tuning = {
        "objective": "mean",
        "commit": "abc",
        "als": {
            "grid": {"als_factors": [8, 16]},
            "rows": [
                {"als_factors": 8, "ndcg@10_1": 0.1, "ndcg@10_5": 0.2, "objective": 0.15},
                {"als_factors": 16, "ndcg@10_1": 0.2, "ndcg@10_5": 0.2, "objective": 0.2},
            ],
            "best": {"als_factors": 16, "objective": 0.2},
        },
    }
    table = tuning_tables(tuning)
    assert "best als_factors = 16" in table and table.index("| 16 |") < table.index("| 8 |")


def test_served_recommender_table() -> None:
    from ml_pipeline.evaluation.continuation_report import served_table

    ms = {"p50_ms": 5.0, "p99_ms": 9.0}
    stages = {s: ms for s in ("candidates", "features", "ranker", "total")}
    http = {"closed_loop": ms, "open_loop_50_rps": ms}
    doc = {
        "test_playlists": 3,
        "items": 10,
        "served_equals_offline": True,
        "commit": "abc",
        "load_average_before": [0.5, 0.5, 0.5],
        "cpus": 2,
        "in_process_k10": {"5 seeds": stages},
        "quality_through_predict_k500": {"5 seeds": {"ndcg@10": 0.3, "r_precision": 0.2}},
        "http_predict_k10": {"healthz": http, "5 seeds": http},
    }
    table = served_table(doc)
    assert (
        "| 5 seeds | 0.3000 | 0.2000 | 5.0 / 9.0 (5.0, 5.0, 5.0) | 5.0 / 9.0 | 9.0 | 9.0 |" in table
    )
    assert "**True**" in table and "50 requests/s" in table
