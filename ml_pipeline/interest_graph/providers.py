"""What every interest-graph provider implements, and what they exchange. A provider turns a
request (the prompt's messages, and the summary they were written from) into a completion: the
answer's text and the tokens it cost. The runner validates the text, whoever wrote it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ml_pipeline.interest_graph.summary import ListeningSummary


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class GraphRequest:
    system: str
    messages: list[Message]
    summary: ListeningSummary


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


class GraphProvider(Protocol):
    name: str  # stored with each graph: "anthropic", "openai" or "local"
    model: str

    def generate(self, request: GraphRequest) -> Completion: ...


class ProviderError(Exception):
    """One listener's request failed (timeouts and 429/5xx after the retries, a refused
    request): that listener is marked failed with this message, the run goes on."""


class ProviderUnavailable(Exception):
    """The provider cannot serve any request (no API key, key refused, unknown model): the
    run stops at once with this message, since every further request would fail too."""
