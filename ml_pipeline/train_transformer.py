"""Train SASRec and evaluate it (leave-one-out; full ranking and the paper's 100-negative
protocol). Writes the checkpoint and a results JSON.

    python -m ml_pipeline.train_transformer --data ../shared/data/sasrec_games/Video.txt \\
        --epochs 200 --max-seq-len 50 --embedding-dim 50 --num-layers 2 --num-heads 1 \\
        --output var/models/sasrec_games.pt

Without --data the listening histories come from the database in the settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer

from ml_pipeline.evaluation import evaluate_full_ranking, evaluate_sampled
from ml_pipeline.sasrec import SASRec, SASRecConfig
from ml_pipeline.sequences import LeaveOneOut, SequenceData, TrainBatches, pad_left
from musicrec.config import REPO_ROOT


@dataclass
class TrainResult:
    model: SASRec
    data: SequenceData
    split: LeaveOneOut
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0


def scorers(model: SASRec) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """The (full ranking, candidate) score functions the evaluation calls, in eval mode."""
    max_len = model.config.max_seq_len

    @torch.no_grad()
    def full(histories: list[list[int]]) -> torch.Tensor:
        return model.full_sort_scores(torch.from_numpy(pad_left(histories, max_len)))

    @torch.no_grad()
    def candidates(histories: list[list[int]], items: torch.Tensor) -> torch.Tensor:
        return model.candidate_scores(torch.from_numpy(pad_left(histories, max_len)), items)

    return full, candidates


def train_sasrec(
    data: SequenceData,
    config: SASRecConfig,
    *,
    epochs: int,
    batch_size: int = 128,
    seed: int = 42,
    eval_every: int = 20,
    log: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    torch.manual_seed(seed)
    split = LeaveOneOut.of(data.sequences)
    model = SASRec(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, config.beta2))
    batches = TrainBatches(split.train, data.n_items, config.max_seq_len, seed)
    result = TrainResult(model=model, data=data, split=split)
    user_items = [set(data.sequences[u]) for u in split.evaluated]
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for seqs, pos, neg in batches.epoch(batch_size):
            loss = model.calculate_loss(*(torch.from_numpy(a) for a in (seqs, pos, neg)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        row = {"epoch": float(epoch), "loss": total / max(count, 1)}
        if eval_every and (epoch % eval_every == 0 or epoch == epochs):
            model.eval()
            _, candidates = scorers(model)
            valid = evaluate_sampled(
                candidates,
                split.valid_histories,
                split.valid_targets,
                user_items,
                data.n_items,
                seed=seed,
            )
            row |= {f"valid_{k}": v for k, v in valid.items() if k != "users"}
        result.epochs.append(row)
        if log:
            log(row)
    result.seconds_per_epoch = (time.perf_counter() - started) / max(epochs, 1)
    model.eval()
    return result


def test_metrics(result: TrainResult, seed: int = 42) -> dict[str, dict[str, float]]:
    full, candidates = scorers(result.model)
    split, data = result.split, result.data
    user_items = [set(data.sequences[u]) for u in split.evaluated]
    return {
        "full_ranking": evaluate_full_ranking(
            full, split.test_histories, split.test_targets, data.n_items, exclude_seen=True
        ),
        "sampled_100": evaluate_sampled(
            candidates,
            split.test_histories,
            split.test_targets,
            user_items,
            data.n_items,
            seed=seed,
        ),
    }


def write_results(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


app = typer.Typer(add_completion=False)


@app.command()
def main(
    data: Annotated[
        Path | None, typer.Option(help="`user item` file; default: the database")
    ] = None,
    epochs: int = 200,
    batch_size: int = 128,
    max_seq_len: int = 50,
    embedding_dim: int = 50,
    num_heads: int = 1,
    num_layers: int = 2,
    dropout: float = 0.5,
    lr: float = 0.001,
    seed: int = 42,
    eval_every: int = 20,
    output: Path = Path("var/models/sasrec.pt"),
    results: Path | None = None,
) -> None:
    """Train SASRec with the paper's defaults and evaluate it on the held-out last items."""
    from ml_pipeline.sequences import load_from_database, load_interaction_file
    from musicrec.console import cli_errors, console
    from musicrec.db.engine import make_engine

    torch.set_num_threads(2)
    with cli_errors():
        sequences = load_interaction_file(data) if data else load_from_database(make_engine())
    dataset = data.stem if data else "database"
    config = SASRecConfig(
        n_items=sequences.n_items,
        max_seq_len=max_seq_len,
        embedding_dim=embedding_dim,
        num_heads=num_heads,
        num_layers=num_layers,
        dropout=dropout,
        lr=lr,
    )
    console.print(f"{dataset}: {len(sequences.sequences):,} users, {sequences.n_items:,} items")
    result = train_sasrec(
        sequences,
        config,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        eval_every=eval_every,
        log=lambda row: console.print(row, highlight=False),
    )
    metrics = test_metrics(result, seed)
    result.model.save(output, sequences.vocabulary, {"metrics": metrics, "dataset": dataset})
    document = {
        "dataset": dataset,
        "split": "leave-one-out",
        "model": "sasrec",
        "metrics": metrics,
        "config": asdict(config) | {"epochs": epochs, "batch_size": batch_size, "seed": seed},
        "seconds_per_epoch": round(result.seconds_per_epoch, 3),
        "epochs": result.epochs,
        "checkpoint": str(output),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    out = results or REPO_ROOT / "results" / f"sasrec_{dataset}.json"
    write_results(out, document)
    console.print(json.dumps(metrics, indent=2))
    console.print(f"checkpoint {output}; results {out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    app()
