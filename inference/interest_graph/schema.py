"""The interest graph's shape, as every provider must answer it: weighted nodes (genres, moods,
artists, eras) and weighted relations between them. What fails validation is never stored."""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Stored with each graph; bump when the shape or its meaning changes, so a run regenerates.
GRAPH_VERSION = 1
MAX_NODES, MAX_EDGES = 60, 120
NodeKind = Literal["genre", "mood", "artist", "era"]
NODE_KINDS: tuple[NodeKind, ...] = ("genre", "mood", "artist", "era")


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=80, description="unique within the graph")
    kind: NodeKind
    label: str = Field(min_length=1, max_length=200)
    weight: float = Field(ge=0, le=1, description="how strongly the listener likes it")


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    relation: str = Field(min_length=1, max_length=60, description="e.g. 'plays_genre'")
    weight: float = Field(ge=0, le=1)


class InterestGraph(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list, max_length=MAX_EDGES)

    @model_validator(mode="after")
    def _consistent(self) -> InterestGraph:
        ids = [node.id for node in self.nodes]
        if len(set(ids)) != len(ids):
            duplicated = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"node ids must be unique; repeated: {', '.join(duplicated)}")
        known = set(ids)
        for edge in self.edges:
            missing = [end for end in (edge.source, edge.target) if end not in known]
            if missing:
                raise ValueError(f"edge {edge.source} -> {edge.target} names no node {missing[0]}")
            if edge.source == edge.target:
                raise ValueError(f"edge {edge.source} -> {edge.target} links a node to itself")
        return self


class InvalidGraph(ValueError):
    """A provider's answer that is not a valid graph; the message says why, in a few lines."""


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_graph(text: str) -> InterestGraph:
    """The graph in a provider's answer: its JSON object (a ```json fence or text around the
    object is allowed, as language models add them), validated."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise InvalidGraph("the answer holds no JSON object")
    try:
        data = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise InvalidGraph(f"the answer is not valid JSON: {exc}") from None
    try:
        return InterestGraph.model_validate(data)
    except ValidationError as exc:
        raise InvalidGraph(_validation_lines(exc)) from None


def _validation_lines(exc: ValidationError, limit: int = 8) -> str:
    lines = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "graph"
        lines.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)
