"""One listener's graph from one provider: ask, validate, and on an invalid answer ask once
more, quoting what was wrong. What is still invalid after that is a failure with its reason;
an invalid graph is never returned."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inference.interest_graph.schema import InterestGraph, InvalidGraph, parse_graph
from ml_pipeline.interest_graph.prompt import first_request, retry_request
from ml_pipeline.interest_graph.providers import GraphProvider, ProviderError, Usage
from ml_pipeline.interest_graph.summary import ListeningSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    graph: InterestGraph | None
    error: str | None  # why there is no graph
    usage: Usage
    attempts: int


def generate_graph(provider: GraphProvider, summary: ListeningSummary) -> Outcome:
    """ProviderUnavailable propagates: the run cannot go on without the provider."""
    request = first_request(summary)
    usage = Usage()
    for attempt in (1, 2):
        try:
            completion = provider.generate(request)
        except ProviderError as exc:
            return Outcome(None, f"{provider.name}: {exc}", usage, attempt)
        usage += completion.usage
        try:
            return Outcome(parse_graph(completion.text), None, usage, attempt)
        except InvalidGraph as exc:
            error = str(exc)
            log.info(
                "listener %s: invalid graph (attempt %d): %s", summary.listener, attempt, error
            )
            request = retry_request(request, completion.text, error)
    return Outcome(None, f"invalid graph after a retry: {error}", usage, 2)
