"""SASRec: learns a real sequential signal (beats most-popular), checkpoints load on their own,
and the training data plumbing (padding, split, negatives) is right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ml_pipeline.data.sequences import TrainBatches, pad_left
from ml_pipeline.evaluation.metrics import evaluate_full_ranking
from ml_pipeline.evaluation.scorers import scorers
from ml_pipeline.models.baselines import MostPopular
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from ml_pipeline.training.train_transformer import train_sasrec
from tests.ml_pipeline.chain_data import N_ITEMS, chain_data


def test_sasrec_beats_most_popular_on_sequential_data() -> None:
    data = chain_data()
    config = SASRecConfig(n_items=N_ITEMS, max_seq_len=10, embedding_dim=32, dropout=0.1)
    result = train_sasrec(data, config, epochs=40, batch_size=64, eval_every=0)
    split = result.split
    full, _ = scorers(result.model)
    sasrec = evaluate_full_ranking(full, split.test_histories, split.test_targets, N_ITEMS)
    popular = MostPopular().fit(split.train, N_ITEMS)
    baseline = evaluate_full_ranking(
        popular.full_sort_predict, split.test_histories, split.test_targets, N_ITEMS
    )
    assert sasrec["ndcg@10"] > 0.5  # ~0.9 of next items follow the cycle
    assert sasrec["ndcg@10"] > 3 * baseline["ndcg@10"]
    assert result.epochs[-1]["loss"] < result.epochs[0]["loss"]


def test_checkpoint_loads_in_a_fresh_process(tmp_path: Path) -> None:
    data = chain_data(users=50)
    config = SASRecConfig(n_items=N_ITEMS, max_seq_len=10, embedding_dim=16, num_layers=1)
    result = train_sasrec(data, config, epochs=2, batch_size=32, eval_every=0)
    path = tmp_path / "model.pt"
    result.model.save(path, data.vocabulary)
    history = pad_left([[1, 2, 3]], 10)
    expected = result.model.full_sort_scores(torch.from_numpy(history))[0, 1:].argsort().tolist()
    script = (
        "import torch, sys; from ml_pipeline.models.sasrec import SASRec;"
        f"m, vocab, _ = SASRec.load(__import__('pathlib').Path({str(path)!r}));"
        "s = m.full_sort_scores(torch.tensor([[0]*7 + [1, 2, 3]]))[0, 1:];"
        "print(len(vocab), s.argsort().tolist())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    n_vocab, order = out.stdout.split(" ", 1)
    assert int(n_vocab) == N_ITEMS + 1
    assert eval(order) == expected  # noqa: S307 (our own printed list)


def test_padding_and_negatives() -> None:
    assert pad_left([[1, 2, 3], [4]], 2).tolist() == [[2, 3], [0, 4]]

    train = [[1, 2, 3, 4, 5], [6, 7, 8]]
    batches = TrainBatches(train, n_items=10, max_len=4, seed=1)
    for _ in range(20):
        for seqs, pos, neg in batches.epoch(2):
            for row in range(len(seqs)):
                user_items = set(train[0]) if 5 in pos[row] else set(train[1])
                assert not set(neg[row].tolist()) & user_items
                assert ((pos[row] == 0) == (seqs[row] == 0)).all()


def test_long_sequences_are_cut_into_windows_of_next_item_steps() -> None:
    """Every next-item step of a long sequence is trained, in windows of max_len from the end,
    and a window's negatives avoid its own user's items."""
    batches = TrainBatches([list(range(1, 11)), [20, 21]], n_items=30, max_len=4, seed=0)
    rows = sorted(zip(batches.inputs.tolist(), batches.positives.tolist(), strict=True))
    assert rows == [
        ([0, 0, 0, 1], [0, 0, 0, 2]),
        ([0, 0, 0, 20], [0, 0, 0, 21]),
        ([2, 3, 4, 5], [3, 4, 5, 6]),
        ([6, 7, 8, 9], [7, 8, 9, 10]),
    ]
    for _ in range(10):
        for seqs, _, neg in batches.epoch(4):
            for row, items in zip(seqs, neg, strict=True):
                own = set(range(1, 11)) if row[-1] != 20 else {20, 21}
                assert not set(items.tolist()) & own


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"model": "other"}, path)
    with pytest.raises(ValueError, match="not a SASRec checkpoint"):
        SASRec.load(path)
