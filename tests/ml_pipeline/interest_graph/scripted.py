"""A provider that answers from a script: for the runner's paths that a real model takes only
by chance (invalid answers, failures, a refused key)."""

from __future__ import annotations

from collections.abc import Iterator

from ml_pipeline.interest_graph.providers import Completion, GraphRequest, Usage


class Scripted:
    """A provider answering from a script, one answer per request, recording the requests."""

    name, model = "scripted", "script-1"

    def __init__(self, answers: list[str | Exception]) -> None:
        self.answers: Iterator[str | Exception] = iter(answers)
        self.requests: list[GraphRequest] = []

    def generate(self, request: GraphRequest) -> Completion:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return Completion(answer, Usage(100, 20))
