"""Evaluate the baselines on the same data, split and protocols as SASRec; one results JSON per
model (results/<model>_<dataset>.json). Each baseline's settings are tuned on the validation
pairs (full-ranking NDCG@10) over a small grid, then the best is measured once on the test pairs.

    python -m ml_pipeline.evaluation.evaluate_baselines --data ../shared/data/mpd_reduced
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ml_pipeline.data.sequences import DataOption, MinItemCountOption, SequenceData, is_mpd_source
from ml_pipeline.data.splits import SPLITS, Split, make_split
from ml_pipeline.data.track_texts import item_text_matrix
from ml_pipeline.evaluation.metrics import PROTOCOLS, evaluate_cold_listeners, evaluate_split
from ml_pipeline.evaluation.results import git_commit, result_document, write_result
from ml_pipeline.models.baselines import ALS, Baseline, ItemKNN, MostPopular, TextKNN
from ml_pipeline.models.matrix_factorization import LightGCN, TextAlignedLightGCN

# name -> (constructor, grid of settings). Small on purpose: a baseline tuned as carefully as
# the model it is compared with, not a search that overfits the validation users.
BASELINES: dict[str, tuple[Callable[..., Baseline], list[dict[str, Any]]]] = {
    "most_popular": (MostPopular, [{}]),
    "item_knn": (
        ItemKNN,
        [
            {"neighbours": n, "recency_decay": d}
            for n in (50, 200, 1000)
            for d in (1.0, 0.9, 0.8, 0.6)
        ],
    ),
    "als": (
        ALS,
        [
            {"factors": f, "regularization": r, "alpha": a}
            for f in (64, 128)
            for r in (0.01, 0.1)
            for a in (1.0, 10.0)
        ],
    ),
    "lightgcn": (LightGCN, [{"layers": n, "epochs": 40, "lr": 0.005} for n in (1, 3)]),
    # Need the tracks' texts (MPD data or the database): given as `text` to the constructor.
    "text_knn": (TextKNN, [{}]),
    "lightgcn_text": (TextAlignedLightGCN, [{"layers": 3, "epochs": 40, "lr": 0.005}]),
}
NEEDS_TEXT = {"text_knn", "lightgcn_text"}


def evaluate_baseline(
    name: str, data: SequenceData, split: Split, seed: int = 42, text: Any = None
) -> tuple[dict[str, Any], dict[str, dict[str, float]], list[dict[str, Any]]]:
    """(best settings, test metrics per protocol, validation NDCG@10 of every setting).
    `text`: the item text embeddings, for the models that read them."""
    make, grid = BASELINES[name]
    tried: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], Baseline] | None = None
    for settings in grid:
        inputs = {"text": text} if name in NEEDS_TEXT else {}
        model = make(**settings, **inputs).fit(split.train, data.n_items)
        valid = evaluate_split(
            model.full_sort_predict, model.predict, data, split, "valid", "full_ranking"
        )
        tried.append({**settings, "valid_ndcg@10": valid["ndcg@10"]})
        if best is None or valid["ndcg@10"] > best[0]:
            best = (valid["ndcg@10"], settings, model)
    assert best is not None  # every grid has a setting
    _, settings, model = best
    metrics: dict[str, dict[str, float]] = {
        protocol: evaluate_split(
            model.full_sort_predict, model.predict, data, split, "test", protocol, seed
        )
        for protocol in PROTOCOLS
    }
    if split.name == "leave-one-out":
        metrics |= evaluate_cold_listeners(model.full_sort_predict, data, split)
    return settings, metrics, tried


app = typer.Typer(add_completion=False)


@app.command()
def main(
    data: DataOption = None,
    min_item_count: MinItemCountOption = 1,
    models: Annotated[list[str] | None, typer.Option("--model", help="default: all")] = None,
    split: Annotated[
        str, typer.Option(help="leave-one-out, temporal or cold-track")
    ] = "leave-one-out",
    seed: int = 42,
) -> None:
    """Tune each baseline on validation, evaluate it on test and write its results file."""
    from ml_pipeline.data.sequences import load_dataset
    from musicrec.console import cli_errors, console
    from musicrec.errors import UserError

    with cli_errors():
        unknown = set(models or ()) - set(BASELINES)
        if unknown:
            raise UserError(
                f"unknown model {', '.join(sorted(unknown))}; know {', '.join(BASELINES)}"
            )
        if split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
        sequences, dataset = load_dataset(data, min_item_count)
        chosen = make_split(split, sequences)
        has_texts = data is None or is_mpd_source(data)  # a `user item` file has none
        names = models or [n for n in BASELINES if n not in NEEDS_TEXT or has_texts]
        text = item_text_matrix(sequences, data) if NEEDS_TEXT & set(names) else None
    commit = git_commit()
    for name in names:
        started = time.perf_counter()
        settings, metrics, tried = evaluate_baseline(name, sequences, chosen, seed, text)
        path = write_result(
            result_document(
                dataset=dataset,
                split=chosen.name,
                model=name,
                metrics=metrics,
                config=settings | {"seed": seed},
                seconds=time.perf_counter() - started,
                commit=commit,
                tuning=tried,
            )
        )
        full = metrics["full_ranking"]
        console.print(
            f"{name}: test NDCG@10 {full['ndcg@10']:.4f}, recall@10 {full['recall@10']:.4f} "
            f"({settings}) -> {path}"
        )


if __name__ == "__main__":
    app()
