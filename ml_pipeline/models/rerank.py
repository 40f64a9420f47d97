"""Generative re-ranking, LLaRA's protocol (Liao et al., SIGIR 2024): show a language model the
listener's recent tracks and 20 candidates, ask it to pick the next one. Optional at serve
time; the offline default keeps the hybrid model's own order (it is what LLaRA's language
model is trained to imitate, and it needs no network).

Any object with `complete(prompt) -> str` is a provider: the interest-graph issue's anthropic,
openai and local providers plug in here unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

CANDIDATES = 20


class TextProvider(Protocol):
    def complete(self, prompt: str) -> str: ...


@dataclass(frozen=True)
class TrackInfo:
    uri: str
    name: str
    artist: str

    def label(self) -> str:
        return f'"{self.name}" by {self.artist}'


def llara_prompt(history: Sequence[TrackInfo], candidates: Sequence[TrackInfo]) -> str:
    """LLaRA's next-item prompt, worded for music: recent tracks, then numbered candidates."""
    heard = ", ".join(t.label() for t in history[-10:])
    options = "\n".join(f"{i}. {t.label()}" for i, t in enumerate(candidates, 1))
    return (
        f"This listener has recently played, in order: {heard}.\n"
        f"Which one of these {len(candidates)} songs should play next?\n{options}\n"
        "Answer with the number of the song only."
    )


_NUMBER = re.compile(r"\b(\d{1,2})\b")


def parse_choice(answer: str, count: int) -> int | None:
    """The 0-based candidate an answer names (its first number in range), or None."""
    for match in _NUMBER.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= count:
            return number - 1
    return None


class ModelOrderReranker:
    """The offline default: the candidates stay in the model's order."""

    def rerank(self, history: Sequence[TrackInfo], candidates: Sequence[TrackInfo]) -> list[int]:
        return list(range(len(candidates)))


class LanguageModelReranker:
    """Moves the language model's pick to the front; the rest keep the model's order. An
    answer that names no candidate (or a provider error) leaves the model's order as it is:
    re-ranking can improve a list, never break a request."""

    def __init__(self, provider: TextProvider) -> None:
        self.provider = provider

    def rerank(self, history: Sequence[TrackInfo], candidates: Sequence[TrackInfo]) -> list[int]:
        order = list(range(len(candidates)))
        if len(candidates) < 2:
            return order
        try:
            answer = self.provider.complete(llara_prompt(history, candidates[:CANDIDATES]))
        except Exception:  # noqa: BLE001 — any provider failure falls back to the model's order
            return order
        pick = parse_choice(answer, min(len(candidates), CANDIDATES))
        if pick is None:
            return order
        return [pick, *(i for i in order if i != pick)]
