"""The weekly retraining job: train a candidate hybrid model on the listening history up to now,
evaluate it and the current production model on the same holdout (each listener's last track),
log both to MLflow, register the candidate under the alias `staging`, and move it to `canary`
when it beats production by the margin (to `production` when there is none yet). Every decision
is logged with its numbers (MLflow tags of the version, and the command's output).

    musicrec retrain [--epochs 10] [--margin 0.02] [--tuning results/continuation/tuning.json]

The two-stage recommender is trained in the same run on the database's playlists (with the tuned
source parameters, as `musicrec train-recommender`) and registered in the same model version, as
its `recommender/` folder: one version number is the pair, and serving loads the recommender of
the version it serves (inference/model.py). A database without playlists gives a version
without one (serving then falls back to RECOMMENDER_PATH's). The decision compares the
sequential models only.

The holdout is each listener's last track, which last week's production model may have trained
on: that favours production, so the comparison errs on the side of keeping it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from sqlalchemy import Engine

from ml_pipeline.data.sequences import SequenceData, pad_left
from ml_pipeline.data.splits import Split
from ml_pipeline.evaluation.metrics import evaluate_full_ranking
from ml_pipeline.jobs.train_recommender import TUNING
from ml_pipeline.models.hybrid import HybridConfig, HybridSASRec
from ml_pipeline.training.training_record import write_training_record
from musicrec.config import Settings

if TYPE_CHECKING:
    from inference.model import ModelSource

log = logging.getLogger(__name__)

METRIC = "ndcg@10"


def train_candidate(
    engine: Engine, settings: Settings, epochs: int
) -> tuple[HybridSASRec, SequenceData, Split, list[dict[str, float]]]:
    """The hybrid model of the demo's configuration, trained on the database's history (all but
    each listener's last two tracks), with its untrained tracks lent IDs; and its training
    curve for the training record: each epoch's loss, validated every tenth of the run."""
    from ml_pipeline.data.sequences import load_from_database
    from ml_pipeline.data.splits import leave_one_out
    from ml_pipeline.training.train_transformer import build_model, train_sasrec

    data = load_from_database(engine)
    split = leave_one_out(data.sequences)
    config = HybridConfig(
        n_items=data.n_items,
        embedding_dim=64,
        dropout=0.2,
        num_negatives=min(256, data.n_items),
        sparse_items=True,
        curriculum_epochs=max(1, epochs // 3),
    )
    torch.manual_seed(42)
    model = build_model(config, data, split, None, settings)
    assert isinstance(model, HybridSASRec)
    eval_every = max(1, epochs // 10)
    result = train_sasrec(
        data, model.config, epochs=epochs, eval_every=eval_every, split=split, model=model
    )
    model.impute_ids()
    return model, data, split, result.epochs


def evaluate_checkpoint(checkpoint: Path, data: SequenceData, split: Split) -> dict[str, float]:
    """A served model's test metrics in `data`'s item space: its vocabulary is mapped by URI
    (history tracks it does not know are left out; targets it does not know are misses)."""
    from inference.model import serving_files
    from ml_pipeline.export.onnx import load_checkpoint

    model, vocabulary, _ = load_checkpoint(serving_files(checkpoint)[0])
    model.eval()
    theirs = {uri: i for i, uri in enumerate(vocabulary) if i}
    ours = [i for i in range(1, data.n_items + 1) if data.vocabulary[i] in theirs]
    mapped = torch.tensor([theirs[data.vocabulary[i]] for i in ours], dtype=torch.long)
    ours_t = torch.tensor(ours, dtype=torch.long)
    length = model.config.max_seq_len

    def scores(histories: list[list[int]]) -> torch.Tensor:
        seqs = [
            [theirs[u] for u in (data.vocabulary[i] for i in h) if u in theirs] for h in histories
        ]
        with torch.no_grad():
            theirs_scores = model.full_sort_scores(torch.from_numpy(pad_left(seqs, length)))
        out = torch.full((len(histories), data.n_items + 1), -torch.inf)
        out[:, ours_t] = theirs_scores[:, mapped]
        return out

    return evaluate_full_ranking(scores, split.test_histories, split.test_targets, data.n_items)


@dataclass(frozen=True)
class Decision:
    candidate_version: int
    alias: str  # staging, canary or production
    candidate: dict[str, float]
    production: dict[str, float] | None
    production_version: str | None
    margin: float
    reason: str
    recommender: str | None = None  # the version's two-stage recommender (None: it has none)


def decide(
    candidate: dict[str, float], production: dict[str, float] | None, margin: float
) -> tuple[str, str]:
    """(alias, why) for a candidate with these metrics."""
    if production is None:
        return "production", "no production model yet"
    ours, theirs = candidate[METRIC], production[METRIC]
    if ours >= theirs * (1 + margin):
        return "canary", f"{METRIC} {ours:.4f} >= {theirs:.4f} x (1 + {margin})"
    return "staging", f"{METRIC} {ours:.4f} < {theirs:.4f} x (1 + {margin}): stays in staging"


def train_recommender(engine: Engine, settings: Settings, tuning: Path, stamp: str) -> Path | None:
    """The two-stage recommender trained on the database's playlists, saved as a candidate
    folder; None when the database holds no playlists."""
    from ml_pipeline.data.playlists import playlists_from_database
    from ml_pipeline.jobs.train_recommender import train_on, tuned
    from ml_pipeline.training.recommender import ranker_split

    playlists = playlists_from_database(engine)
    if not playlists.playlists:
        log.warning("no playlists in the database: the version gets no recommender")
        return None
    # The ranker learns on playlists the sources never saw: with too few playlists for both
    # sides (one block of pids), the sources' scores are fused instead.
    sources, ranked = ranker_split(playlists.playlists)
    path = settings.var_dir / "models" / "candidates" / f"recommender-{stamp}"
    train_on(playlists, "database", path, tuned(tuning), ranker=bool(sources and ranked))
    return path


def retrain(
    engine: Engine, settings: Settings, epochs: int, margin: float, tuning: Path = TUNING
) -> Decision:
    from mlflow import MlflowClient

    from inference.model import RECOMMENDER_DIR
    from ml_pipeline.export.serving import export_serving
    from ml_pipeline.training.tracking import TrainingRun
    from ml_pipeline.training.train_transformer import evaluate

    model, data, split, curve = train_candidate(engine, settings, epochs)
    candidate = evaluate(model, data, split, "test", "full_ranking")
    current = _production_source(settings)
    production = evaluate_checkpoint(current.checkpoint, data, split) if current else None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = settings.var_dir / "models" / "candidates" / f"hybrid-{stamp}.pt"
    model.save(path, data.vocabulary, {"dataset": "database", "trained_at": stamp})
    exported = export_serving(model, path, data.vocabulary)
    record = write_training_record(path, model="hybrid", epochs=curve, metrics=candidate)
    recommender = train_recommender(engine, settings, tuning, stamp)
    params = {
        "model": "hybrid",
        "epochs": epochs,
        "margin": margin,
        "recommender": recommender is not None,
        **asdict(model.config),
    }
    with TrainingRun(f"retrain-{stamp}", params, settings) as run:
        run.log_metrics({"full_ranking": candidate}, prefix="candidate_")
        if production is not None:
            run.log_metrics({"full_ranking": production}, prefix="production_")
        for row in curve:
            run.log_epoch(row, model.config.lr)
        folders = {RECOMMENDER_DIR: recommender} if recommender else {}
        version = run.register(path, [*exported, record], folders)
    alias, reason = decide(candidate, production, margin)
    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    client.set_registered_model_alias(name, "staging", str(version))
    if alias != "staging":
        client.set_registered_model_alias(name, alias, str(version))
    decision = Decision(
        version,
        alias,
        candidate,
        production,
        current.version if current else None,
        margin,
        reason,
        recommender.name if recommender else None,
    )
    client.set_model_version_tag(
        name, str(version), "retrain_decision", json.dumps(asdict(decision))
    )
    if alias == "canary":
        client.set_model_version_tag(
            name, str(version), "canary_since", datetime.now(UTC).isoformat()
        )
    log.info("retrain decision: %s", json.dumps(asdict(decision)))
    return decision


def _production_source(settings: Settings) -> ModelSource | None:
    """The model production serves now (None when there is none)."""
    from inference.model import locate_model

    try:
        return locate_model(settings)
    except Exception as exc:  # a broken production model: the candidate is compared to none
        log.warning("production model not loadable, compared to none: %s", exc)
        return None


def metric_row(metrics: dict[str, float] | None) -> str:
    if metrics is None:
        return "-"
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.endswith(("@10", "@20")))
