"""LLaRA-style re-ranking: the prompt, answer parsing, and the fallbacks that keep the model's
order. The provider here is a scripted stand-in for a language model API (none runs here)."""

from __future__ import annotations

import pytest

from ml_pipeline.models.rerank import (
    LanguageModelReranker,
    ModelOrderReranker,
    TrackInfo,
    llara_prompt,
    parse_choice,
)

HISTORY = [TrackInfo("u1", "Toxic", "Britney Spears"), TrackInfo("u2", "Poker Face", "Lady Gaga")]
CANDIDATES = [TrackInfo(f"c{i}", f"Song {i}", "Artist") for i in range(1, 21)]


class Scripted:
    def __init__(self, answer: str | Exception) -> None:
        self.answer, self.prompts = answer, []

    def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_prompt_lists_history_and_numbered_candidates() -> None:
    prompt = llara_prompt(HISTORY, CANDIDATES)
    assert '"Toxic" by Britney Spears, "Poker Face" by Lady Gaga' in prompt
    assert '1. "Song 1" by Artist' in prompt and '20. "Song 20" by Artist' in prompt
    assert "20 songs" in prompt


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("7", 6), ("Song number 12.", 11), ("I pick 0, no: 3", 2), ("none", None), ("21", None)],
)
def test_parse_choice(answer: str, expected: int | None) -> None:
    assert parse_choice(answer, 20) == expected


def test_the_pick_moves_to_the_front_and_the_rest_keep_their_order() -> None:
    provider = Scripted("5")
    order = LanguageModelReranker(provider).rerank(HISTORY, CANDIDATES)
    assert order == [4, 0, 1, 2, 3, *range(5, 20)]
    assert len(provider.prompts) == 1


@pytest.mark.parametrize("answer", ["I cannot tell", TimeoutError("provider timed out")])
def test_no_usable_answer_keeps_the_model_order(answer: str | Exception) -> None:
    order = LanguageModelReranker(Scripted(answer)).rerank(HISTORY, CANDIDATES)
    assert order == ModelOrderReranker().rerank(HISTORY, CANDIDATES) == list(range(20))
