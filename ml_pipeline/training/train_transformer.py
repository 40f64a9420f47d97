"""Train SASRec and evaluate it on a split's test pairs (full ranking and the paper's
100-negative protocol).

    python -m ml_pipeline.training.train_transformer --data ../shared/data/sasrec_games/Video.txt \\
        --epochs 200 --max-seq-len 50 --embedding-dim 50 --num-layers 2 --num-heads 1 \\
        --output var/models/sasrec_games.pt

--data takes an MPD folder or slice, or a `user item` file; without it the listening histories
come from the database in the settings. Writes the checkpoint (weights, config, vocabulary), its
ONNX graphs (fp32, int8), results/sasrec_<dataset>[_<split>].json, TensorBoard curves and an
MLflow run with a registered model version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import typer

from ml_pipeline.data.sequences import (
    DataOption,
    MinItemCountOption,
    SequenceData,
    TrainBatches,
)
from ml_pipeline.data.splits import SPLITS, Split, leave_one_out, make_split
from ml_pipeline.evaluation.metrics import (
    PROTOCOLS,
    Protocol,
    evaluate_cold_listeners,
    evaluate_split,
)
from ml_pipeline.evaluation.results import git_commit, result_document, write_result
from ml_pipeline.evaluation.scorers import scorers
from ml_pipeline.models.hybrid import HybridConfig, HybridSASRec
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from ml_pipeline.training.tracking import TrainingRun
from musicrec.config import Settings, get_settings


@dataclass
class TrainResult:
    model: SASRec
    data: SequenceData
    split: Split
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0  # training only, validation excluded


def train_sasrec(
    data: SequenceData,
    config: SASRecConfig,
    *,
    epochs: int,
    batch_size: int = 128,
    seed: int = 42,
    eval_every: int = 20,
    split: Split | None = None,
    protocol: Protocol = "full_ranking",
    patience: int = 0,
    log: Callable[[dict[str, float]], None] | None = None,
    model: SASRec | None = None,
) -> TrainResult:
    """Train on the split's training part (default: leave-one-out); every `eval_every` epochs
    measure NDCG@10 on the validation pairs by `protocol`. With `patience`, stop after that many
    evaluations without improvement and keep the best weights (early stopping). `model` is a
    model built beforehand (a subclass such as the hybrid); by default a SASRec of `config`."""
    torch.manual_seed(seed)
    split = split or leave_one_out(data.sequences)
    model = model or SASRec(config)
    config = model.config
    optimizers = model.optimizers()
    batches = TrainBatches(split.train, data.n_items, config.max_seq_len, seed)
    result = TrainResult(model=model, data=data, split=split)
    best, best_state, stale = -1.0, None, 0
    training_seconds = 0.0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        model.start_epoch(epoch)
        total, count = 0.0, 0
        for seqs, pos, neg in batches.epoch(batch_size):
            loss = model.calculate_loss(*(torch.from_numpy(a) for a in (seqs, pos, neg)))
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            total, count = total + loss.item(), count + 1
        training_seconds += time.perf_counter() - started
        row = {"epoch": float(epoch), "loss": total / max(count, 1)}
        if eval_every and (epoch % eval_every == 0 or epoch == epochs):
            valid = evaluate(model, data, split, "valid", protocol, seed)
            row |= {f"valid_{k}": v for k, v in valid.items() if k != "users"}
            if valid["ndcg@10"] > best:
                best, stale = valid["ndcg@10"], 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        result.epochs.append(row)
        if log:
            log(row)
        if patience and stale >= patience:
            break
    result.seconds_per_epoch = training_seconds / max(len(result.epochs), 1)
    if patience and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


def evaluate(
    model: SASRec,
    data: SequenceData,
    split: Split,
    part: Literal["valid", "test"],
    protocol: Protocol,
    seed: int = 42,
) -> dict[str, float]:
    """The model's metrics on the validation or test pairs by one protocol, in eval mode,
    with its items as serving will have them (the hybrid's untrained tracks lent IDs)."""
    model.eval()
    with model.as_served():
        return evaluate_split(*scorers(model), data, split, part, protocol, seed)


def test_metrics(result: TrainResult, seed: int = 42) -> dict[str, dict[str, float]]:
    """Test metrics by every protocol that applies: the sampled ones need 100 (or 19) items
    outside each user's own, which a tiny catalog does not have."""
    data = result.data
    room = data.n_items - max((len(set(s)) for s in data.sequences), default=0)
    needs = {"sampled_100": 100, "candidates_20": 19}
    protocols = [p for p in PROTOCOLS if room > needs.get(p, 0)]
    return {
        protocol: evaluate(result.model, data, result.split, "test", protocol, seed)
        for protocol in protocols
    }


MODELS: dict[str, type[SASRecConfig]] = {"sasrec": SASRecConfig, "hybrid": HybridConfig}


def build_model(
    config: SASRecConfig,
    data: SequenceData,
    split: Split,
    source: Path | None,
    settings: Settings | None = None,
) -> SASRec:
    """The untrained model of `config`; the hybrid reads and embeds its tracks' texts (from
    `source`, or the database of the settings)."""
    if not isinstance(config, HybridConfig):
        return SASRec(config)
    from ml_pipeline.data.track_texts import item_text_matrix

    text = item_text_matrix(data, source, settings)
    trained = np.zeros(data.n_items + 1, dtype=bool)
    for items in split.train:
        trained[items] = True
    config = replace(config, text_dim=text.shape[1])
    return HybridSASRec(config, torch.from_numpy(text), torch.from_numpy(trained))


app = typer.Typer(add_completion=False)


@app.command()
def main(
    data: DataOption = None,
    min_item_count: MinItemCountOption = 1,
    epochs: int = 200,
    batch_size: int = 128,
    max_seq_len: int = 50,
    embedding_dim: int = 50,
    num_heads: int = 1,
    num_layers: int = 2,
    dropout: float = 0.5,
    lr: float = 0.001,
    model: Annotated[
        str, typer.Option(help="sasrec, or hybrid (text + ID items, for cold start)")
    ] = "sasrec",
    loss: Annotated[
        str | None,
        typer.Option(help="bce (the paper's) or sampled_softmax; default: the model's"),
    ] = None,
    num_negatives: Annotated[
        int, typer.Option(help="negatives per batch for sampled_softmax")
    ] = 256,
    sparse_items: Annotated[
        bool, typer.Option(help="sparse item gradients + lazy Adam (large catalogs)")
    ] = False,
    split: Annotated[
        str, typer.Option(help="leave-one-out, temporal or cold-track")
    ] = "leave-one-out",
    curriculum_epochs: Annotated[
        int, typer.Option(help="hybrid: epochs over which item IDs are mixed in")
    ] = 10,
    id_share_max: Annotated[
        float, typer.Option(help="hybrid: share of items with their ID part at the end")
    ] = 0.8,
    projector_hidden: Annotated[
        int, typer.Option(help="hybrid: hidden units of the text projector; 0: linear")
    ] = 0,
    protocol: Annotated[
        str, typer.Option(help="validation protocol: full_ranking or sampled_100")
    ] = "full_ranking",
    seed: int = 42,
    eval_every: int = 20,
    patience: Annotated[
        int, typer.Option(help="evaluations without improvement before stopping; 0: never")
    ] = 0,
    output: Annotated[Path | None, typer.Option(help="default: var/models/<model>.pt")] = None,
    results: Annotated[
        Path | None, typer.Option(help="default: results/<model>_<dataset>[_<split>].json")
    ] = None,
    track: Annotated[
        bool, typer.Option(help="log to TensorBoard and MLflow, register the model")
    ] = True,
    onnx: Annotated[
        bool, typer.Option(help="export the scoring graph to ONNX, fp32 and int8, beside it")
    ] = True,
) -> None:
    """Train SASRec (the paper's defaults) or the hybrid, evaluate on the held-out test items."""
    from ml_pipeline.data.sequences import load_dataset
    from musicrec.console import cli_errors, console
    from musicrec.errors import UserError

    started, commit = time.perf_counter(), git_commit()
    with cli_errors():
        if split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
        if protocol not in PROTOCOLS:
            raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if model not in MODELS:
            raise UserError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
        options: dict[str, Any] = {"loss": loss} if loss else {}
        if model == "hybrid":
            options |= {
                "curriculum_epochs": curriculum_epochs,
                "id_share_max": id_share_max,
                "projector_hidden": projector_hidden,
            }
        try:
            config = MODELS[model](
                n_items=1,
                max_seq_len=max_seq_len,
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                num_layers=num_layers,
                dropout=dropout,
                lr=lr,
                num_negatives=num_negatives,
                sparse_items=sparse_items,
                **options,
            )
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        sequences, dataset = load_dataset(data, min_item_count)
        chosen = make_split(split, sequences)
        output = output or Path(f"var/models/{model}.pt")
        config = replace(config, n_items=sequences.n_items)
        torch.manual_seed(seed)
        built = build_model(config, sequences, chosen, data)
    console.print(f"{dataset}: {len(sequences.sequences):,} users, {sequences.n_items:,} items")
    # The built model's config: the hybrid's text_dim is the encoder's, known once it is loaded.
    params = asdict(built.config) | {"epochs": epochs, "batch_size": batch_size, "seed": seed}
    params |= {"dataset": dataset, "split": split, "patience": patience}
    with TrainingRun(f"{model}-{dataset}", params) if track else nullcontext() as run:

        def log(row: dict[str, float]) -> None:
            console.print({k: round(v, 4) for k, v in row.items()}, highlight=False)
            if run:
                run.log_epoch(row, config.lr)

        result = train_sasrec(
            sequences,
            config,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            eval_every=eval_every,
            split=chosen,
            protocol=protocol,
            patience=patience,
            log=log,
            model=built,
        )
        if isinstance(result.model, HybridSASRec):
            result.model.impute_ids()  # items without training data (held out, or new)
        metrics = test_metrics(result, seed)
        if chosen.name == "leave-one-out":
            metrics |= evaluate_cold_listeners(scorers(result.model)[0], sequences, chosen)
        result.model.save(output, sequences.vocabulary, {"metrics": metrics, "dataset": dataset})
        document = result_document(
            dataset=dataset,
            split=chosen.name,
            model=model,
            metrics=metrics,
            config=params,
            seconds=time.perf_counter() - started,
            commit=commit,
            seconds_per_epoch=round(result.seconds_per_epoch, 3),
            epochs=result.epochs,
            checkpoint=str(output),
        )
        from ml_pipeline.export.serving import export_serving

        exported = export_serving(result.model, output, sequences.vocabulary) if onnx else []
        document["onnx"] = [str(path) for path in exported]
        if run:
            run.log_metrics(metrics)
            version = run.register(output, exported)
            document["mlflow"] = {"run_id": run.run_id, "model_version": version}
        out = write_result(document, results)
    console.print(json.dumps(metrics, indent=2))
    console.print(f"checkpoint {output}; results {out}")


if __name__ == "__main__":
    torch.set_num_threads(get_settings().torch_threads)
    np.seterr(all="ignore")
    app()
