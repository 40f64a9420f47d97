"""Tables in docs/results.md generated from the evaluation JSON files under results/, so that no
number there is typed by hand.

    python -m ml_pipeline.evaluation.report    # rewrites the generated blocks of docs/results.md

A generated block sits between `<!-- generated:NAME -->` and `<!-- end:NAME -->`; the text
around it is left alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from musicrec.config import REPO_ROOT

RESULTS = REPO_ROOT / "results"
DOC = REPO_ROOT / "docs" / "results.md"
FULL = ("recall@10", "precision@10", "mrr@10", "ndcg@10", "hit_rate@20")


def sequential_models_table(documents: list[dict[str, Any]]) -> str:
    """One row per (dataset, model) evaluation: the paper protocol and full ranking."""
    lines = [
        "| dataset | model | HR@10 (100 neg.) | NDCG@10 (100 neg.) | "
        + " | ".join(name.replace("_", " ") for name in FULL)
        + " | s/epoch | users |",
        "|---|---|---:|---:|" + "---:|" * len(FULL) + "---:|---:|",
    ]
    for doc in sorted(documents, key=lambda d: (d["dataset"], d["model"])):
        sampled, full = doc["metrics"]["sampled_100"], doc["metrics"]["full_ranking"]
        cells = [
            doc["dataset"],
            doc["model"],
            f"{sampled['hr@10']:.4f}",
            f"{sampled['ndcg@10']:.4f}",
            *[f"{full[name]:.4f}" for name in FULL],
            f"{doc.get('seconds_per_epoch', float('nan')):.1f}",
            f"{full['users']:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


BASELINES = ("most_popular", "item_knn", "als", "lightgcn", "text_knn", "lightgcn_text")


def _cell(metrics: dict[str, float] | None, name: str) -> str:
    return f"{metrics[name]:.4f}" if metrics and name in metrics else "—"


def model_tables(documents: list[dict[str, Any]]) -> str:
    """One table per (dataset, split): every model evaluated on it, full ranking and the
    paper's protocol, and each model's full-ranking NDCG@10 over the best baseline's."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for doc in documents:
        if "full_ranking" in doc.get("metrics", {}):
            groups.setdefault((doc["dataset"], doc.get("split", "leave-one-out")), []).append(doc)
    parts = []
    for (dataset, split), docs in sorted(groups.items()):
        baseline = max(
            (d["metrics"]["full_ranking"]["ndcg@10"] for d in docs if d["model"] in BASELINES),
            default=0.0,
        )
        lines = [
            f"**{dataset}**, {split} split, {docs[0]['metrics']['full_ranking']['users']:,} "
            "test users:",
            "",
            "| model | "
            + " | ".join(name.replace("_", " ") for name in FULL)
            + " | HR@10 (100 neg.) | NDCG@10 (100 neg.) | NDCG@10 / best baseline | commit |",
            "|---|" + "---:|" * (len(FULL) + 3) + "---|",
        ]
        for doc in sorted(docs, key=lambda d: d["metrics"]["full_ranking"]["ndcg@10"]):
            full, sampled = doc["metrics"]["full_ranking"], doc["metrics"].get("sampled_100")
            ratio = f"{full['ndcg@10'] / baseline:.2f}×" if baseline else "—"
            cells = [
                doc["model"],
                *[_cell(full, name) for name in FULL],
                _cell(sampled, "hr@10"),
                _cell(sampled, "ndcg@10"),
                ratio,
                doc.get("commit", "—"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _by(documents: list[dict[str, Any]], split: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["dataset"], d["model"]): d for d in documents if d.get("split") == split}


def cold_start_tables(documents: list[dict[str, Any]]) -> str:
    """Per dataset with a cold-track evaluation: ranking held-out (cold) tracks against the
    hybrid's warm recall (goal ≥ 0.5×), the hybrid against SASRec on warm tracks (goal: ≤ 2%
    NDCG@10 lost), new listeners with 1, 3 and 5 seed tracks, and LLaRA's HitRatio@1 of 20."""
    cold, warm = _by(documents, "cold-track"), _by(documents, "leave-one-out")
    parts = []
    for dataset in sorted({d for d, _ in cold}):
        models = sorted(
            (m for d, m in cold if d == dataset),
            key=lambda m: cold[dataset, m]["metrics"]["full_ranking"]["ndcg@10"],
        )
        first = cold[dataset, models[0]]["metrics"]["full_ranking"]
        lines = [
            f"**{dataset}**, cold tracks: {first['users']:,} test users whose next track is one "
            "of the 10% of tracks held out of training entirely (ranked among all tracks):",
            "",
            "| model | recall@10 | ndcg@10 | recall@20 | epochs | commit |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for m in models:
            doc = cold[dataset, m]
            full = doc["metrics"]["full_ranking"]
            epochs = doc.get("config", {}).get("epochs", "—")
            cells = [m, _cell(full, "recall@10"), _cell(full, "ndcg@10"), _cell(full, "recall@20")]
            lines.append("| " + " | ".join([*cells, str(epochs), doc.get("commit", "—")]) + " |")
        hybrid_cold, hybrid_warm = cold.get((dataset, "hybrid")), warm.get((dataset, "hybrid"))
        sasrec_warm = warm.get((dataset, "sasrec"))
        if hybrid_cold and hybrid_warm:
            c = hybrid_cold["metrics"]["full_ranking"]["recall@10"]
            w = hybrid_warm["metrics"]["full_ranking"]["recall@10"]
            lines += ["", f"Hybrid cold-track recall@10 / its leave-one-out recall@10 = "
                      f"{c:.4f} / {w:.4f} = **{c / w:.2f}×** (goal ≥ 0.5×)."]  # fmt: skip
        if hybrid_warm and sasrec_warm:
            h = hybrid_warm["metrics"]["full_ranking"]["ndcg@10"]
            s = sasrec_warm["metrics"]["full_ranking"]["ndcg@10"]
            lines += ["", f"Warm tracks (leave-one-out): hybrid NDCG@10 {h:.4f} vs SASRec "
                      f"{s:.4f}: **{h / s - 1:+.1%}** (goal: no worse than −2%)."]  # fmt: skip
        lines += ["", *_new_listener_table(warm, dataset)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "(not measured yet)"


def _new_listener_table(warm: dict[tuple[str, str], dict[str, Any]], dataset: str) -> list[str]:
    rows = [(m, d["metrics"]) for (ds, m), d in sorted(warm.items()) if ds == dataset]
    rows = [(m, metrics) for m, metrics in rows if "seeds_1" in metrics]
    if not rows:
        return []
    lines = [
        "New listeners (leave-one-out test targets from only the last n tracks before them), "
        "and LLaRA's protocol (the target among 20 candidates):",
        "",
        "| model | 1 seed R@10 | 1 seed NDCG@10 | 3 seeds R@10 | 3 seeds NDCG@10 | "
        "5 seeds R@10 | 5 seeds NDCG@10 | HitRatio@1 of 20 |",
        "|---|" + "---:|" * 7,
    ]
    for m, metrics in sorted(rows, key=lambda r: r[1]["seeds_5"]["ndcg@10"]):
        cells = [m]
        for n in (1, 3, 5):
            cells += [
                _cell(metrics[f"seeds_{n}"], "recall@10"),
                _cell(metrics[f"seeds_{n}"], "ndcg@10"),
            ]
        cells.append(_cell(metrics.get("candidates_20"), "hr@1"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parity_table(documents: list[dict[str, Any]]) -> str:
    """ONNX graphs against the torch model they were exported from (onnx_parity_*.json)."""
    lines = [
        "| dataset | graph | ndcg@10 | torch ndcg@10 | top-10 overlap | NDCG@10 loss | MB | users"
        " |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for doc in documents:
        torch_ndcg = doc["metrics"]["torch"]["ndcg@10"]
        for graph in ("fp32", "int8"):
            overlap = doc["overlap"][graph]
            cells = [
                doc["dataset"],
                graph,
                f"{doc['metrics'][graph]['ndcg@10']:.4f}",
                f"{torch_ndcg:.4f}",
                f"{overlap['top10']:.3f}",
                f"{overlap['ndcg@10_relative_loss']:+.2%}",
                f"{doc['files'][graph]['mb']:.1f}",
                f"{doc['users']:,}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def inference_table(doc: dict[str, Any]) -> str:
    """Batch-1 latency per path (results/benchmarks/inference.json)."""
    lines = [
        "| path | p50 ms | p99 ms | eager / path, p50 | eager / path, p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    eager = doc["latency"]["torch_eager"]
    for path, row in doc["latency"].items():
        cells = [
            path.replace("_", " "),
            f"{row['p50_ms']:.3f}",
            f"{row['p99_ms']:.3f}",
            f"{eager['p50_ms'] / row['p50_ms']:.2f}×",
            f"{eager['p99_ms'] / row['p99_ms']:.2f}×",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + _provenance(doc, doc["setup"])


def training_speed_table(doc: dict[str, Any]) -> str:
    """Seconds per epoch, ours and RecBole's (results/benchmarks/training_speed.json)."""
    lines = ["| implementation | s/epoch | epochs timed (s) |", "|---|---:|---|"]
    for name in ("ours", "recbole"):
        row = doc.get(name) or {}
        if row.get("seconds_per_epoch") is None:
            lines.append(f"| {name} | — | unavailable |")
            continue
        epochs = ", ".join(f"{s:.1f}" for s in row["epochs_s"])
        label = row.get("version", "musicrec SASRec") if name == "recbole" else "musicrec SASRec"
        lines.append(f"| {label} | {row['seconds_per_epoch']:.1f} | {epochs} |")
    ratio = doc.get("ratio")
    summary = (
        f"ours / RecBole's = **{ratio:.2f}** (target ≤ {doc['target']['ratio_at_most']})"
        if ratio
        else "no RecBole"
    )
    return "\n".join(lines) + f"\n\n{summary}." + _provenance(doc, doc)


def interest_graph_table(doc: dict[str, Any]) -> str:
    """Re-ranking SASRec's candidates by interest-graph affinity on unseen playlists: the test
    metrics without and with it, per part of the graph, with the weight chosen on validation."""
    lines = [
        "| affinity from | weight (chosen on validation) | NDCG@10 model alone | NDCG@10 "
        "re-ranked | Δ NDCG@10 (95% CI) | recall@10 alone → re-ranked | HR@20 alone → re-ranked |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"graph": "whole graph", "artists": "artist nodes", "labels": "genre/mood/era nodes"}
    for variant, found in doc["results"].items():
        alone, ranked = found["test_model_only"], found["test_reranked"]
        lines.append(
            f"| {names.get(variant, variant)} | {found['weight']} | {alone['ndcg@10']:.4f} | "
            f"{ranked['ndcg@10']:.4f} | {found['test_ndcg@10_delta']:+.4f} ± "
            f"{found['test_ndcg@10_delta_ci95']:.4f} | {alone['recall@10']:.4f} → "
            f"{ranked['recall@10']:.4f} | {alone['hit_rate@20']:.4f} → "
            f"{ranked['hit_rate@20']:.4f} |"
        )
    parts, evaluated = doc["playlists"], doc["evaluated"]
    lines.append(
        f"\n{parts['train']:,} training playlists, {evaluated['valid']:,} validation and "
        f"{evaluated['test']:,} test playlists evaluated; SASRec {doc['epochs']} epochs on "
        f"{doc['items']:,} tracks (heard ≥ {doc['min_item_count']} times), top "
        f"{doc['candidates']} candidates re-ranked; graphs from the `{doc['provider']}` "
        f"provider; {doc['seconds']:.0f} s."
    )
    return "\n".join(lines)


def _provenance(doc: dict[str, Any], setup: dict[str, Any]) -> str:
    average = setup.get("load_average_before", "—")
    return f"\n\nCommit {doc['commit']}; load average before the run {average} (2 cores)."


def load(pattern: str, results: Path = RESULTS) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob(pattern))]


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.DOTALL
    )
    if not pattern.search(text):
        raise ValueError(f"no generated block {name!r} in the document")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(doc: Path = DOC, results: Path = RESULTS) -> None:
    from ml_pipeline.evaluation.continuation_report import (
        candidate_recall_table,
        continuation_tables,
        served_table,
        tuning_tables,
    )

    text = doc.read_text()
    runs = [d for d in load("continuation/*.json", results) if "metrics" in d]
    text = replace_block(text, "continuation", continuation_tables(runs))
    tuning = load("continuation/tuning.json", results)
    text = replace_block(text, "continuation-tuning", tuning_tables(tuning[0] if tuning else None))
    recall = load("continuation/candidate_recall.json", results)
    text = replace_block(
        text, "candidate-recall", candidate_recall_table(recall[0] if recall else None)
    )
    served = load("benchmarks/recommender.json", results)
    text = replace_block(text, "recommender-served", served_table(served[0] if served else None))
    text = replace_block(
        text, "sequential", sequential_models_table(load("sasrec_Video.json", results))
    )
    text = replace_block(text, "models", model_tables(load("*.json", results)))
    text = replace_block(text, "cold-start", cold_start_tables(load("*.json", results)))
    text = replace_block(text, "onnx-parity", parity_table(load("onnx_parity_*.json", results)))
    for name, table in (("inference", inference_table), ("training-speed", training_speed_table)):
        found = load(f"benchmarks/{name.replace('-', '_')}.json", results)
        text = replace_block(text, name, table(found[0]) if found else "(not measured yet)")
    found = load("interest_graph_*.json", results)
    text = replace_block(
        text, "interest-graph", interest_graph_table(found[0]) if found else "(not measured yet)"
    )
    doc.write_text(text)


if __name__ == "__main__":
    main()
