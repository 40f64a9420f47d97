"""Playlist continuation experiments: the peers tuned on the validation files, the two-stage
recommender and its ablations, each scored on the held-out files with the same code, one JSON
file per system under results/continuation/ (docs/results.md is generated from them).

    python -m ml_pipeline.experiments.continuation tune  --data ../shared/data/mpd_reduced
    python -m ml_pipeline.experiments.continuation test  --data ../shared/data/mpd_reduced

`tune` searches each peer's grid on the validation files (mean NDCG@10 over 1 and 5 seeds) and
writes the grid with every score; `test` reads the tuned parameters, trains each system on the
training files and scores it once on the test files.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from inference.recommender.artifact import Fitted, SourceParams
from inference.recommender.items import Seed
from inference.recommender.recommender import TwoStageRecommender
from ml_pipeline.data.playlists import PlaylistData, load_playlists, split_files
from ml_pipeline.evaluation.continuation import (
    SEED_COUNTS,
    UNTITLED_SEED_COUNTS,
    Recommend,
    cold_share,
    evaluate,
    make_cases,
)
from ml_pipeline.evaluation.results import RESULTS_DIR, git_commit, write_result
from ml_pipeline.experiments.sasrec_peer import SASRecPeerParams, train_peer
from ml_pipeline.training.recommender import fit_sources, refit, train_two_stage

log = logging.getLogger(__name__)

OUT = RESULTS_DIR / "continuation"
TUNING_SEEDS = (1, 5)
# Each peer's grid (a source alone, its candidates ranked by its own score).
GRIDS: dict[str, dict[str, list[Any]]] = {
    "als": {
        "als_factors": [64, 128, 256],
        "als_regularization": [0.01, 0.1, 1.0],
        "als_alpha": [2.0, 10.0, 40.0],
        "als_iterations": [15, 30],
    },
    "item_knn": {"knn_alpha": [0.1, 0.3, 0.5, 0.7, 0.9]},
    "playlist_knn": {"playlist_shrink": [0.0, 0.5, 1.0], "playlist_power": [1.0, 2.0, 3.0]},
}
PEERS = ("popularity", "item_knn", "als", "playlist_knn")


@dataclass
class Experiment:
    data: PlaylistData
    splits: dict[str, list[str]]
    name: str

    @classmethod
    def load(cls, path: Path) -> Experiment:
        data = load_playlists([path])
        return cls(data, split_files(data.files()), path.name)

    def playlists(self, split: str) -> list[Any]:
        return self.data.where(self.splits[split])


def as_recommend(recommender: TwoStageRecommender) -> Recommend:
    def recommend(seeds: Sequence[Seed], title: str, k: int) -> list[str]:
        items, _ = recommender.recommend(recommender.query(list(seeds), title), k)
        return [recommender.items.uris[i] for i in items.tolist()]

    return recommend


def peer(fitted: Fitted, name: str) -> TwoStageRecommender:
    """One source alone: its 500 best, in its own order. ALS as a peer ranks every track (the
    product's ALS source retrieves among the tracks of a few playlists only, for speed)."""
    everything = replace(fitted, params=replace(fitted.params, als_min_playlists=1))
    source = next(s for s in everything.sources() if s.name == name)
    return TwoStageRecommender(fitted.items, [source], {name: 500})


def validation_score(recommender: TwoStageRecommender, exp: Experiment) -> dict[str, float]:
    valid = exp.playlists("valid")
    scores: dict[str, float] = {}
    for n in TUNING_SEEDS:
        scored = evaluate(as_recommend(recommender), make_cases(valid, exp.data.tracks, n))
        scores[f"ndcg@10_{n}"] = round(float(scored.per_case["ndcg@10"].mean()), 5)
    scores["objective"] = sum(scores.values()) / len(scores)
    return scores


def tune(exp: Experiment) -> dict[str, Any]:
    """Every peer's grid on the validation files; each grid searched with the others at their
    defaults. Writes results/continuation/tuning.json and returns the best parameters."""
    train = exp.playlists("train")
    base = fit_sources(train, exp.data.tracks, SourceParams())
    report: dict[str, Any] = {"dataset": exp.name, "objective": "mean NDCG@10, 1 and 5 seeds"}
    best_params: dict[str, Any] = {}
    for name, grid in GRIDS.items():
        rows = []
        for values in itertools.product(*grid.values()):
            changes = dict(zip(grid, values, strict=True))
            started = time.perf_counter()
            fitted = refit(base, train, exp.data.tracks, **changes)
            row = {**changes, **validation_score(peer(fitted, name), exp)}
            row["seconds"] = round(time.perf_counter() - started, 1)
            log.info("%s %s", name, row)
            rows.append(row)
        best = max(rows, key=lambda r: r["objective"])
        best_params.update({k: best[k] for k in grid})
        report[name] = {"grid": grid, "rows": rows, "best": best}
    report["best_params"] = best_params
    report["commit"] = git_commit()
    write_result(report, OUT / "tuning.json")
    return best_params


def tuned_params(exp: Experiment) -> SourceParams:
    path = OUT / "tuning.json"
    if not path.is_file():
        return SourceParams()
    return replace(SourceParams(), **json.loads(path.read_text())["best_params"])


def score_system(
    recommend: Recommend,
    exp: Experiment,
    split: str,
    system: str,
    config: dict[str, Any],
    trained: set[str],
) -> Path:
    playlists = exp.playlists(split)
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    queries = [(n, True) for n in SEED_COUNTS] + [(n, False) for n in UNTITLED_SEED_COUNTS]
    for n, titled in queries:
        key = f"seeds_{n}" + ("" if titled else "_untitled")
        cases = make_cases(playlists, exp.data.tracks, n, titled)
        scored = evaluate(recommend, cases)
        metrics[key] = scored.summary()
        metrics[key].update(cold_share(scored, cases, trained))
        log.info("%s %s %s %s", system, split, key, metrics[key])
    document = {
        "dataset": exp.name,
        "split": split,
        "model": system,
        "metrics": metrics,
        "config": config,
        "seconds": round(time.perf_counter() - started, 1),
        "files": {s: len(f) for s, f in exp.splits.items()},
        "commit": git_commit(),
    }
    return write_result(document, OUT / f"{system}_{split}.json")


def candidate_recall(fitted: Fitted, exp: Experiment, split: str = "valid") -> dict[str, Any]:
    """Per seed count: the share of the targets among each source's candidates (its quota of
    them) and among their union, the candidates the ranker sees."""
    recommender = fitted.recommender()
    quotas = fitted.params.quotas
    out: dict[str, Any] = {"quotas": quotas}
    index = recommender.items.index
    for n in SEED_COUNTS:
        found = dict.fromkeys([*recommender.source_names, "union"], 0)
        total = size = 0
        cases = make_cases(exp.playlists(split), exp.data.tracks, n)
        for case in cases:
            query = recommender.query(list(case.seeds), case.title)
            targets = {index[u] for u in case.targets if u in index}
            for source in recommender.sources:
                best = source.scored(query).top(quotas.get(source.name, 0))
                found[source.name] += len(targets.intersection(best.tolist()))
            union = recommender.candidates(query).items
            found["union"] += len(targets.intersection(union.tolist()))
            total += len(case.targets)
            size += len(union)
        row: dict[str, float] = {
            name: round(hits / max(total, 1), 4) for name, hits in found.items()
        }
        row["union_size_mean"] = round(size / max(len(cases), 1), 1)
        out[f"seeds_{n}"] = row
    return out


def test(
    exp: Experiment, split: str = "test", sasrec_params: SASRecPeerParams | None = None
) -> list[Path]:
    """Every peer, the two-stage recommender and its ablations, trained on the training files
    and scored on `split`."""
    train = exp.playlists("train")
    params = tuned_params(exp)
    fitted, ranker, record = train_two_stage(train, exp.data.tracks, params)
    trained = set(fitted.items.uris)
    recall = {"split": "valid", "commit": git_commit(), **candidate_recall(fitted, exp)}
    paths = [write_result(recall, OUT / "candidate_recall.json")]
    config = {"params": asdict(params)}
    for name in PEERS:
        paths.append(
            score_system(as_recommend(peer(fitted, name)), exp, split, name, config, trained)
        )
    sasrec, sasrec_record = train_peer(
        train, exp.playlists("valid"), sasrec_params or SASRecPeerParams()
    )
    paths.append(score_system(sasrec, exp, split, "sasrec", {"training": sasrec_record}, trained))
    two_stage = as_recommend(fitted.recommender(ranker))
    paths.append(
        score_system(two_stage, exp, split, "two_stage", {**config, "training": record}, trained)
    )
    no_ranker = as_recommend(fitted.recommender())
    paths.append(score_system(no_ranker, exp, split, "two_stage-no_ranker", config, trained))
    for source in params.quotas:
        quotas = {**params.quotas, source: 0}
        ablated = TwoStageRecommender(fitted.items, fitted.sources(), quotas, ranker)
        name = f"two_stage-no_{source}"
        paths.append(score_system(as_recommend(ablated), exp, split, name, config, trained))
    return paths


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["tune", "test", "valid"])
    parser.add_argument("--data", type=Path, required=True, help="MPD folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    exp = Experiment.load(args.data)
    if args.command == "tune":
        print(json.dumps(tune(exp)))
    else:
        for path in test(exp, args.command):
            print(path)


if __name__ == "__main__":
    main()
