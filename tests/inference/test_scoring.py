"""The numpy pieces of scoring: the best items of a score row (against torch.topk) and the
left-padded histories the graph reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.scoring import pad_left, top_items


@pytest.mark.parametrize(
    ("rows", "items", "k"), [(1, 10, 1), (5, 50, 10), (3, 1000, 200), (2, 7, 7)]
)
def test_top_items_match_torch_topk(rows: int, items: int, k: int) -> None:
    scores = np.random.default_rng(items).standard_normal((rows, items + 1)).astype(np.float32)
    scores[:, 0] = -np.inf
    expected = torch.topk(torch.from_numpy(scores[:, 1:]), k, dim=1).indices.numpy() + 1
    assert np.array_equal(top_items(scores, k), expected)
    assert top_items(scores, k).dtype == np.int64


def test_ties_rank_by_item_id_and_padding_never_ranks() -> None:
    scores = np.array([[9.0, 1.0, 3.0, 3.0, 2.0, 3.0]], dtype=np.float32)  # column 0 is padding
    assert top_items(scores, 3).tolist() == [[2, 3, 5]]
    assert top_items(scores, 5).tolist() == [[2, 3, 5, 4, 1]]
    with pytest.raises(ValueError, match="k must be in 1..5"):
        top_items(scores, 6)


def test_pad_left_keeps_the_last_items() -> None:
    assert pad_left([[1, 2, 3], [4], []], 2).tolist() == [[2, 3], [0, 4], [0, 0]]
    assert pad_left([[1]], 3).dtype == np.int64
