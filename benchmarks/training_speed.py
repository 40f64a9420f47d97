"""Training-speed benchmark: seconds per SASRec training epoch, ours against RecBole's SASRec,
on the paper's Amazon Games data and configuration, in the same run. Prints JSON.

    python -m benchmarks.training_speed [--data ../shared/data/sasrec_games/Video.txt] [--epochs 3]

`make bench-training` runs it in the benchmark environment .venv-recbole, which has RecBole
1.2.1 (RecBole is never installed into the project's .venv). Where `recbole` does not import,
only our model is measured and RecBole is reported as unavailable.

An epoch is training only: forward, backward and optimizer step over the whole training set,
with the per-batch work each library does inside its epoch (batch assembly, negative sampling);
data loading, splitting and evaluation are set up before and excluded. Both use the paper's
configuration (max length 50, dimension 50, 2 blocks, 1 head, dropout 0.5, Adam lr 0.001,
batch 128, one uniform negative per target, leave-one-out) on 2 threads. The epochs alternate
(ours, RecBole's, ours, ...) so that load from other processes falls on both; the first epoch
of each is a warm-up and not counted.

The two libraries cover the same training targets per epoch differently: ours feeds each
user's training sequence once (in windows of max_seq_len steps) and scores every position, as
the authors' code does; RecBole turns every prefix of every sequence into an example of its own
and scores only its last position. Both see each training transition once per epoch (the JSON
gives our targets and RecBole's examples per epoch), so RecBole runs the encoder over about
six times as many sequences.

On a loaded machine two threads spin-wait for each other (OpenMP) and every epoch gets several
times slower (measured: one batch of ours 0.13 s on 1 thread, 0.7 s on 2, with two other
busy processes): the JSON records the load averages before and after, and OMP_WAIT_POLICY
(PASSIVE tempers it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import emit
from ml_pipeline.data.sequences import SequenceData, TrainBatches, load_interaction_file
from ml_pipeline.models.sasrec import SASRecConfig
from ml_pipeline.training.train_transformer import train_sasrec
from musicrec.config import get_settings

TARGET_RATIO = 0.7  # ours / RecBole's seconds per epoch
THREADS = 2  # the project's machines have 2 cores
SEED = 42
# The paper's configuration (n_items is set from the data).
PAPER = SASRecConfig(
    n_items=0,
    max_seq_len=50,
    embedding_dim=50,
    num_heads=1,
    num_layers=2,
    dropout=0.5,
    lr=0.001,
    beta2=0.98,
)
BATCH_SIZE = 128


def recbole_config(data_dir: Path, work_dir: Path) -> dict[str, Any]:
    """RecBole's settings for the paper's configuration on the converted data."""
    return {
        "data_path": str(data_dir),
        "checkpoint_dir": str(work_dir / "saved"),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": PAPER.max_seq_len,
        "hidden_size": PAPER.embedding_dim,
        # The paper's point-wise feed-forward keeps the dimension and uses ReLU (RecBole's
        # defaults are 256 and GELU); LayerNorm epsilon as in the authors' code.
        "inner_size": PAPER.embedding_dim,
        "hidden_act": "relu",
        "layer_norm_eps": 1e-8,
        "n_layers": PAPER.num_layers,
        "n_heads": PAPER.num_heads,
        "hidden_dropout_prob": PAPER.dropout,
        "attn_dropout_prob": PAPER.dropout,
        # RecBole's SASRec has only BPR and CE losses: BPR on one uniform negative is the
        # paper's BCE with one negative at the same cost (two dot products per target).
        "loss_type": "BPR",
        "train_neg_sample_args": {
            "distribution": "uniform",
            "sample_num": 1,
            "alpha": 1.0,
            "dynamic": False,
            "candidate_num": 0,
        },
        # RecBole's Adam takes lr and weight decay only: β2 stays 0.999 (no effect on speed).
        "learner": "adam",
        "learning_rate": PAPER.lr,
        "weight_decay": 0.0,
        "train_batch_size": BATCH_SIZE,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "epochs": 1,
        "eval_step": 10**9,
        "use_gpu": False,
        "gpu_id": "",
        "worker": 0,
        "seed": SEED,
        "reproducibility": True,
        "show_progress": False,
        "state": "WARNING",
    }


def write_atomic(source: Path, dataset_dir: Path) -> int:
    """The `user item` file as RecBole's atomic `<name>.inter`. The timestamp is the line
    number, so ordering by time keeps each user's file order."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    lines = 0
    with (
        source.open() as f,
        (dataset_dir / f"{dataset_dir.name}.inter").open("w") as out,
    ):
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for lines, line in enumerate(f, 1):
            user, item = line.split()
            out.write(f"{user}\t{item}\t{lines}\n")
    return lines


def _patch_for_recbole() -> None:
    """RecBole 1.2.1's Config.compatibility_settings aliases np.float = np.float_ (and
    complex_, unicode_), names NumPy 2 removed: put them back so that Config() does not
    raise AttributeError (the rest of what this benchmark uses runs unchanged on NumPy 2).
    Nothing else is patched: torch.load (whose weights_only default changed in torch 2.6) is
    only reached when resuming or evaluating a saved model, which this benchmark never does."""
    import warnings

    import numpy as np

    # Its dataset code warns about pandas 3's copy-on-write on every load: not ours to fix.
    warnings.filterwarnings("ignore", category=FutureWarning, module="recbole")
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, value)


class RecBoleRun:
    """RecBole's SASRec, its training data loader and Trainer, set up once; `epoch()` is one
    call of the Trainer's own training epoch (`Trainer._train_epoch`, what `fit` runs)."""

    def __init__(self, source: Path, work_dir: Path) -> None:
        _patch_for_recbole()
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.sequential_recommender import SASRec
        from recbole.trainer import Trainer
        from recbole.utils import init_logger, init_seed

        self.interactions = write_atomic(source, work_dir / "data" / source.stem)
        # RecBole's Config also reads `--key=value` from sys.argv: hide this script's flags.
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            config = Config(
                model="SASRec",
                dataset=source.stem,
                config_dict=recbole_config(work_dir / "data", work_dir),
            )
        finally:
            sys.argv = argv
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)  # log files go under the working directory (see main)
        dataset = create_dataset(config)
        self.train_data, _, _ = data_preparation(config, dataset)
        init_seed(config["seed"], config["reproducibility"])
        self.model = SASRec(config, self.train_data._dataset).to(config["device"])
        self.trainer = Trainer(config, self.model)
        self.users = dataset.user_num - 1
        self.items = dataset.item_num - 1
        self.examples = len(self.train_data._dataset)
        self.batches = len(self.train_data)
        self.losses: list[float] = []
        self._epoch = 0

    def epoch(self) -> float:
        started = time.perf_counter()
        total = self.trainer._train_epoch(self.train_data, self._epoch, show_progress=False)
        seconds = time.perf_counter() - started
        self._epoch += 1
        self.losses.append(float(total) / max(self.batches, 1))
        return seconds


def recbole_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("recbole")
    except Exception:
        return None


def measure(
    data: SequenceData, epochs: int, recbole: RecBoleRun | None
) -> tuple[list[float], list[float], list[float], list[list[int]]]:
    """Our seconds per epoch, RecBole's, our mean loss per epoch (each after the warm-up) and
    our training sequences.

    Our epochs run in `train_sasrec` itself (evaluation off); its per-epoch callback ends the
    timing of our epoch, runs one RecBole epoch (timed on its own), and restarts our clock.
    The first interval of ours also holds train_sasrec's set-up: it is the warm-up."""
    config = replace(PAPER, n_items=data.n_items)
    ours: list[float] = []
    theirs: list[float] = []
    losses: list[float] = []
    clock = [time.perf_counter()]

    def after_epoch(row: dict[str, float]) -> None:
        ours.append(time.perf_counter() - clock[0])
        losses.append(row["loss"])
        if recbole is not None:
            theirs.append(recbole.epoch())
        progress = f"epoch {len(ours)}/{epochs + 1}: ours {ours[-1]:.1f} s"
        if theirs:
            progress += f", RecBole {theirs[-1]:.1f} s"
        print(progress, file=sys.stderr, flush=True)
        clock[0] = time.perf_counter()

    result = train_sasrec(
        data,
        config,
        epochs=epochs + 1,
        batch_size=BATCH_SIZE,
        seed=SEED,
        eval_every=0,
        log=after_epoch,
    )
    return ours[1:], theirs[1:], losses[1:], result.split.train


def training_set(train: list[list[int]], n_items: int) -> dict[str, int]:
    """What one epoch of ours covers: TrainBatches' rows and batches, and the targets (the
    non-padding next-item positions) in them."""
    batches = TrainBatches(train, n_items, PAPER.max_seq_len, SEED)
    return {
        "training_rows": len(batches),
        "batches_per_epoch": -(-len(batches) // BATCH_SIZE),
        "targets_per_epoch": int((batches.positives != 0).sum()),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=get_settings().shared_data_dir / "sasrec_games" / "Video.txt",
        help="`user item` file (the SASRec authors' format)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs each, after 1 warm-up")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads, both models")
    parser.add_argument("--no-recbole", action="store_true", help="measure ours only")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data}: no such file (pass --data)")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    source = args.data.resolve()

    torch.set_num_threads(args.threads)
    load_before = load_average()
    data = load_interaction_file(source)
    recbole: RecBoleRun | None = None
    recbole_note = "not run (--no-recbole)"
    setup_seconds: float | None = None
    with tempfile.TemporaryDirectory(prefix="bench-recbole-") as tmp:
        if not args.no_recbole:
            version = recbole_version()
            if version is None:
                recbole_note = "unavailable: recbole is not installed (make bench-training)"
            else:
                # RecBole writes its logs and TensorBoard files under the working directory.
                cwd = Path.cwd()
                os.chdir(tmp)
                try:
                    started = time.perf_counter()
                    recbole = RecBoleRun(source, Path(tmp))
                    setup_seconds = time.perf_counter() - started
                    recbole_note = f"recbole {version}"
                except ImportError as exc:
                    recbole_note = f"unavailable: recbole {version} does not import ({exc})"
                finally:
                    os.chdir(cwd)
        torch.set_num_threads(args.threads)  # after RecBole's set-up, in case it changed it
        ours, theirs, losses, train = measure(data, args.epochs, recbole)
    load_after = load_average()

    ours_median = statistics.median(ours)
    result: dict[str, Any] = {
        "benchmark": "training_speed",
        "dataset": str(args.data),
        "users": len(data.sequences),
        "items": data.n_items,
        "config": {k: v for k, v in asdict(PAPER).items() if k != "n_items"}
        | {"batch_size": BATCH_SIZE, "negatives": 1, "split": "leave-one-out"},
        "threads": args.threads,
        "epochs_timed": args.epochs,
        "warmup_epochs": 1,
        "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "ours": {
            "seconds_per_epoch": round(ours_median, 3),
            "epochs_s": [round(s, 3) for s in ours],
            **training_set(train, data.n_items),
            "mean_loss": [round(x, 4) for x in losses],
        },
    }
    if recbole is None:
        result["recbole"] = {"available": False, "note": recbole_note}
        result["ratio"] = None
        result["met"] = None
    else:
        theirs_median = statistics.median(theirs)
        ratio = ours_median / theirs_median
        result["recbole"] = {
            "available": True,
            "version": recbole_note,
            "seconds_per_epoch": round(theirs_median, 3),
            "epochs_s": [round(s, 3) for s in theirs],
            "setup_seconds": round(setup_seconds or 0.0, 1),
            "users": recbole.users,
            "items": recbole.items,
            "interactions": recbole.interactions,
            "training_examples": recbole.examples,
            "batches_per_epoch": recbole.batches,
            "mean_loss": [round(x, 4) for x in recbole.losses[1:]],
            "differences": [
                "loss BPR (RecBole's SASRec has BPR or CE only) on 1 uniform negative",
                "Adam beta2 0.999 (not exposed)",
                "every prefix is an example; loss on its last position only",
            ],
        }
        result["ratio"] = round(ratio, 3)
        result["met"] = ratio <= TARGET_RATIO
    result["target"] = {"ratio_at_most": TARGET_RATIO}
    emit(result)


if __name__ == "__main__":
    main()
