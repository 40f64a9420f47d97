"""docs/results.md's playlist-continuation tables, from results/continuation/*.json: one table per
seed count (every system, its metrics with 95% intervals, its ratio to tuned ALS), and the
peers' tuning grids with their validation scores."""

from __future__ import annotations

from typing import Any

SEED_ORDER = (
    "seeds_5",
    "seeds_1",
    "seeds_5_untitled",
    "seeds_1_untitled",
    "seeds_0",
    "seeds_10",
    "seeds_25",
)
REFERENCE = "als"
# Peers first, then the product and its ablations.
ORDER = (
    "popularity",
    "item_knn",
    "playlist_knn",
    "als",
    "sasrec",
    "two_stage",
    "two_stage-no_ranker",
)


def _rank(model: str) -> tuple[int, str]:
    return (ORDER.index(model) if model in ORDER else len(ORDER), model)


def _with_interval(metrics: dict[str, Any], name: str) -> str:
    low, high = metrics[f"{name}_ci95"]
    return f"{metrics[name]:.4f} [{low:.3f}, {high:.3f}]"


def _ratio(metrics: dict[str, Any], reference: dict[str, Any] | None, name: str) -> str:
    if not reference or not reference.get(name):
        return "—"
    return f"{metrics[name] / reference[name]:.2f}×"


def continuation_tables(documents: list[dict[str, Any]], split: str = "test") -> str:
    docs = sorted(
        (d for d in documents if d.get("split") == split), key=lambda d: _rank(d["model"])
    )
    if not docs:
        return "(not measured yet)"
    first = docs[0]
    out = [
        f"{first['dataset']}, split by whole file ({first['files']['train']} training, "
        f"{first['files']['valid']} validation, {first['files'][split]} {split} files); "
        f"commit {first['commit']}."
    ]
    for seeds in SEED_ORDER:
        if seeds not in first["metrics"]:  # measured before it was added
            continue
        reference = next((d["metrics"][seeds] for d in docs if d["model"] == REFERENCE), None)
        n = seeds.split("_")[1]
        cases = first["metrics"][seeds]["cases"]
        out += [
            "",
            f"**{n} seed{'s' if n != '1' else ''}**"
            + (" (the title alone)" if n == "0" else "")
            + (", no title (the tracks alone)" if seeds.endswith("untitled") else "")
            + f", {cases:,} playlists:",
            "",
            "| system | NDCG@10 [95% CI] | HR@10 | Recall@10 | R-precision [95% CI] | NDCG@500 "
            "| NDCG@10 / ALS | R-prec. / ALS | cold share of correct top 10 | ms/query |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for doc in docs:
            if seeds not in doc["metrics"]:
                continue
            m = doc["metrics"][seeds]
            cells = [
                doc["model"].replace("two_stage", "**two-stage**"),
                _with_interval(m, "ndcg@10"),
                f"{m['hr@10']:.4f}",
                f"{m['recall@10']:.4f}",
                _with_interval(m, "r_precision"),
                f"{m['ndcg@500']:.4f}",
                _ratio(m, reference, "ndcg@10"),
                _ratio(m, reference, "r_precision"),
                f"{m['cold_share_of_correct_top10']:.3f}",
                f"{m['ms_per_query']:.1f}",
            ]
            out.append("| " + " | ".join(cells) + " |")
    two_stage = next((d for d in docs if d["model"] == "two_stage"), None)
    importance = (two_stage or {}).get("config", {}).get("training", {}).get("ranker", {})
    if importance.get("importance"):
        ranked = sorted(importance["importance"].items(), key=lambda kv: -kv[1])
        out += [
            "",
            "The ranker's features by share of split gain: "
            + ", ".join(f"{name} {share:.1%}" for name, share in ranked if share > 0)
            + ".",
        ]
    return "\n".join(out)


def tuning_tables(tuning: dict[str, Any] | None) -> str:
    if not tuning:
        return "(not tuned yet)"
    out = [f"Objective: {tuning['objective']}, validation files; commit {tuning['commit']}."]
    for peer, search in tuning.items():
        if not isinstance(search, dict) or "grid" not in search:
            continue
        names = list(search["grid"])
        best = search["best"]
        out += [
            "",
            f"**{peer}**: {len(search['rows'])} settings; best "
            + ", ".join(f"{k} = {best[k]}" for k in names)
            + f" (validation NDCG@10 {best['objective']:.4f})",
            "",
            "<details><summary>every setting</summary>",
            "",
            "| " + " | ".join(names) + " | NDCG@10, 1 seed | NDCG@10, 5 seeds | mean |",
            "|" + "---:|" * (len(names) + 3),
        ]
        for row in sorted(search["rows"], key=lambda r: -r["objective"]):
            cells = [str(row[k]) for k in names]
            cells += [
                f"{row['ndcg@10_1']:.4f}",
                f"{row['ndcg@10_5']:.4f}",
                f"{row['objective']:.4f}",
            ]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", "</details>"]
    return "\n".join(out)


def served_table(doc: dict[str, Any] | None) -> str:
    """benchmarks/recommender.py's run: quality through /predict, latency per stage and over
    HTTP."""
    if not doc:
        return "(not measured yet)"
    out = [
        f"{doc['test_playlists']:,} test playlists, {doc['items']:,} tracks; answers through "
        f"/predict equal to the offline evaluation: **{doc['served_equals_offline']}**; "
        f"commit {doc['commit']}, load average before {doc['load_average_before']} "
        f"({doc['cpus']} cores).",
        "",
        "| query | NDCG@10 | R-precision | in process p50 / p99 ms (candidates, features, ranker)"
        " | /predict?k=10 closed loop p50 / p99 ms | open loop p99 ms | /healthz p99 ms |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    http = doc["http_predict_k10"]
    health = http["healthz"]
    rate_key = next(k for k in health if k.startswith("open_loop"))
    for name, stages in doc["in_process_k10"].items():
        quality = doc["quality_through_predict_k500"][name]
        total = stages["total"]
        parts = ", ".join(
            f"{stages[s]['p50_ms']:.1f}" for s in ("candidates", "features", "ranker")
        )
        closed, opened = http[name]["closed_loop"], http[name][rate_key]
        out.append(
            f"| {name} | {quality['ndcg@10']:.4f} | {quality['r_precision']:.4f} "
            f"| {total['p50_ms']:.1f} / {total['p99_ms']:.1f} ({parts}) "
            f"| {closed['p50_ms']:.1f} / {closed['p99_ms']:.1f} | {opened.get('p99_ms', '—')} "
            f"| {health[rate_key].get('p99_ms', '—')} |"
        )
    out.append(f"\nOpen loop: {rate_key.split('_')[2]} requests/s, fixed arrival times.")
    return "\n".join(out)


def candidate_recall_table(doc: dict[str, Any] | None) -> str:
    """Each source's recall over its own candidates, and the union's (validation files)."""
    if not doc:
        return "(not measured yet)"
    rows = [k for k in SEED_ORDER if k in doc]
    sources = [k for k in doc[rows[0]] if k not in ("union", "union_size_mean")]
    quotas = doc["quotas"]
    out = [
        "| seeds | "
        + " | ".join(f"{s} ({quotas.get(s, 0)})" for s in sources)
        + " | **union** | candidates |",
        "|---|" + "---:|" * (len(sources) + 2),
    ]
    for key in rows:
        r = doc[key]
        cells = [key.split("_")[1], *[f"{r[s]:.3f}" for s in sources], f"**{r['union']:.3f}**"]
        out.append("| " + " | ".join(cells) + f" | {r['union_size_mean']:.0f} |")
    return "\n".join(out) + f"\n\nValidation files; commit {doc['commit']}."
