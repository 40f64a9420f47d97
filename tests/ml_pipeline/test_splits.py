"""Splits: leave-one-out, global temporal and cold-track, on hand-made sequences."""

from __future__ import annotations

import numpy as np
import pytest

from ml_pipeline.data.sequences import SequenceData, drop_rare_items
from ml_pipeline.data.splits import cold_track_split, leave_one_out, make_split, temporal_split


def _data(sequences: list[list[int]], timestamps: list[list[float]] | None = None) -> SequenceData:
    n_items = max(i for s in sequences for i in s)
    vocabulary = ["<pad>", *[f"t{i}" for i in range(1, n_items + 1)]]
    return SequenceData(sequences, vocabulary, [f"u{u}" for u in range(len(sequences))], timestamps)


def test_leave_one_out() -> None:
    split = leave_one_out([[1, 2, 3, 4], [5, 6]])
    assert split.train == [[1, 2], [5, 6]]  # too short to evaluate: trained on whole
    assert split.part("valid") == ([0], [[1, 2]], [3])
    assert split.part("test") == ([0], [[1, 2, 3]], [4])
    with pytest.raises(ValueError, match="'valid' or 'test'"):
        split.part("train")


def test_temporal_split_cuts_one_timeline() -> None:
    # Ten events at times 0..9 over three users; the last 20% (times 8, 9) are the test period,
    # the 20% before it (6, 7) validation.
    data = _data(
        [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]],
        [[0, 1, 6, 8], [2, 3, 7], [4, 5, 9]],
    )
    split = temporal_split(data, valid_share=0.2, test_share=0.2)
    assert split.train == [[1, 2], [5, 6], [8, 9]]  # nothing from time >= 6
    assert split.part("valid") == ([0, 1], [[1, 2], [5, 6]], [3, 7])
    # Test histories hold everything before the test period, validation period included.
    assert split.part("test") == ([0, 2], [[1, 2, 3], [8, 9]], [4, 10])
    assert make_split("temporal", data).train == temporal_split(data).train


def test_temporal_split_needs_times_and_sane_shares() -> None:
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(_data([[1, 2]]))
    with pytest.raises(ValueError, match="valid_share"):
        temporal_split(_data([[1, 2]], [[0, 1]]), valid_share=0.6, test_share=0.5)
    with pytest.raises(ValueError, match="split must be one of"):
        make_split("random", _data([[1, 2]]))


def test_cold_track_split_holds_tracks_out_of_training() -> None:
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 201, size=15).tolist() for _ in range(100)]
    split = cold_track_split(_data(sequences), share=0.1, seed=1)
    cold = set(split.cold_items.tolist())
    assert len(cold) == round(0.1 * max(i for s in sequences for i in s))
    assert not cold & {i for s in split.train for i in s}  # never trained on
    assert split.train[0] == [i for i in sequences[0] if i not in cold]  # order kept
    users, histories, targets = split.part("test")
    assert users and set(targets) <= cold
    for u, history, target in zip(users, histories, targets, strict=True):
        # the last held-out track after the first position, with everything before it
        last = max(p for p, i in enumerate(sequences[u]) if i in cold and p > 0)
        assert (history, target) == (sequences[u][:last], sequences[u][last])
    valid_users, _, valid_targets = split.part("valid")
    assert set(valid_users) <= set(users) and set(valid_targets) <= cold
    same = cold_track_split(_data(sequences), share=0.1, seed=1)
    assert np.array_equal(same.cold_items, split.cold_items)  # seeded


def test_drop_rare_items_keeps_order_times_and_reindexes() -> None:
    # Item 1 is heard 3 times, 2 twice, 3 and 4 once.
    data = _data([[1, 3, 2, 1], [4, 1, 2]], [[0, 1, 2, 3], [4, 5, 6]])
    kept = drop_rare_items(data, min_count=2)
    assert kept.vocabulary == ["<pad>", "t1", "t2"]  # most heard first
    assert kept.sequences == [[1, 2, 1], [1, 2]]
    assert kept.timestamps == [[0, 2, 3], [5, 6]]
    assert kept.users == ["u0", "u1"]
    assert drop_rare_items(data, min_count=4).sequences == []  # nobody keeps anything
