"""A generated listening history with a real sequential signal that popularity cannot capture,
for model tests."""

from __future__ import annotations

import numpy as np

from ml_pipeline.data.sequences import SequenceData

N_ITEMS = 60


def chain_data(users: int = 300, length: int = 20, seed: int = 0) -> SequenceData:
    """Each listener walks a fixed cycle of items (i -> i + 1) from a random start, with 10 %
    random jumps, and some items are far more popular as starts: a sequential signal that
    popularity cannot capture."""
    rng = np.random.default_rng(seed)
    starts = rng.choice(N_ITEMS, size=users, p=np.r_[[0.5], np.full(N_ITEMS - 1, 0.5 / 59)])
    sequences = []
    for start in starts:
        item, seq = int(start), []
        for _ in range(length):
            seq.append(item + 1)
            item = int(rng.integers(N_ITEMS)) if rng.random() < 0.1 else (item + 1) % N_ITEMS
        sequences.append(seq)
    vocabulary = ["<pad>", *[str(i) for i in range(1, N_ITEMS + 1)]]
    return SequenceData(sequences, vocabulary, [f"u{i}" for i in range(users)])
