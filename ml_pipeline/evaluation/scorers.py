"""A torch SASRec's score functions, as the evaluators (ml_pipeline.evaluation.metrics) call
them: for training's validation and test metrics and for the ONNX parity check's reference."""

from __future__ import annotations

from collections.abc import Callable

import torch

from inference.scoring import pad_left
from ml_pipeline.models.sasrec import SASRec


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
