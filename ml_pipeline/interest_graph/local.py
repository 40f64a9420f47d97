"""The offline provider, and the default: builds the graph from the summary alone, the same
way every time, with no language model. Nodes are the summary's top artists, genres, moods and
eras (weights scaled so the strongest of each kind is 1); edges link each artist to its own
labels present in the graph (`artist_<kind>`) and artists listened to together by listeners at
large (`co_listened`)."""

from __future__ import annotations

from inference.interest_graph.schema import NODE_KINDS, Edge, InterestGraph, Node
from ml_pipeline.interest_graph.providers import Completion, GraphRequest, Usage
from ml_pipeline.interest_graph.summary import ListeningSummary, Weighted
from musicrec.text import match_key


class LocalProvider:
    name = "local"
    model = "local-facets-v1"

    def generate(self, request: GraphRequest) -> Completion:
        graph = build_graph(request.summary)
        return Completion(text=graph.model_dump_json(), usage=Usage())


def node_id(kind: str, label: str) -> str:
    return f"{kind}:{match_key(label) or label}"[:80]


def build_graph(summary: ListeningSummary) -> InterestGraph:
    nodes: dict[str, Node] = {}
    for kind in NODE_KINDS:
        found = _artists(summary) if kind == "artist" else summary.labels(kind)
        strongest = max((w.weight for w in found), default=0.0)
        for item in found:
            weight = round(item.weight / strongest, 3) if strongest > 0 else 0.0
            nid = node_id(kind, item.name)
            nodes.setdefault(nid, Node(id=nid, kind=kind, label=item.name, weight=weight))
    edges: list[Edge] = []
    for artist in summary.top_artists:
        source = node_id("artist", artist.name)
        for rank, tag in enumerate(artist.labels):
            label_kind, _, label = tag.partition(":")
            target = node_id(label_kind, label)
            if target in nodes:
                # An artist's labels come strongest first.
                edges.append(
                    Edge(
                        source=source,
                        target=target,
                        relation=f"artist_{label_kind}",
                        weight=round(1.0 / (rank + 1), 3),
                    )
                )
    for pair in summary.co_listened:
        a, b = node_id("artist", pair.a), node_id("artist", pair.b)
        if a != b and a in nodes and b in nodes:
            edges.append(Edge(source=a, target=b, relation="co_listened", weight=pair.weight))
    if not nodes:
        raise ValueError(f"listener {summary.listener} has no listening to build a graph from")
    return InterestGraph(nodes=list(nodes.values()), edges=edges)


def _artists(summary: ListeningSummary) -> list[Weighted]:
    return [Weighted(name=a.name, weight=a.weight) for a in summary.top_artists]
