"""The words sent to a language model: what an interest graph is, the JSON shape to answer in,
the listener's summary; and, after an invalid answer, the one retry that quotes what was
wrong."""

from __future__ import annotations

import json

from inference.interest_graph.schema import MAX_EDGES, MAX_NODES, InterestGraph
from ml_pipeline.interest_graph.providers import GraphRequest, Message
from ml_pipeline.interest_graph.summary import ListeningSummary

SYSTEM = (
    "You are a music analyst. From a summary of one listener's listening you build their "
    "interest graph: what they like and how those interests relate. Nodes are genres, moods, "
    "artists and eras, each weighted 0..1 by how strongly the listener likes it (the strongest "
    "of each kind near 1). Edges relate nodes (for example an artist to its genre, a genre to a "
    "mood, two artists listened to together), weighted 0..1 by strength. Infer eras and moods "
    "from the artists when the summary does not state them. Use only what the summary supports. "
    f"At most {MAX_NODES} nodes and {MAX_EDGES} edges. Answer with one JSON object and nothing "
    "else, matching this JSON schema:\n" + json.dumps(InterestGraph.model_json_schema())
)

EXAMPLE = (
    '{"nodes": [{"id": "artist:drake", "kind": "artist", "label": "Drake", "weight": 1.0}, '
    '{"id": "genre:hiphop", "kind": "genre", "label": "hip hop", "weight": 0.9}], '
    '"edges": [{"source": "artist:drake", "target": "genre:hiphop", "relation": "artist_genre", '
    '"weight": 0.9}]}'
)


def first_request(summary: ListeningSummary) -> GraphRequest:
    text = (
        "Listening summary (weights are shares of the listener's plays; audio features are "
        "Spotify's, 0..1 except tempo in BPM; time of day in UTC):\n"
        f"{summary.model_dump_json(indent=1)}\n\n"
        f"Example of the answer's shape: {EXAMPLE}\n"
        "Build this listener's interest graph."
    )
    return GraphRequest(system=SYSTEM, messages=[Message("user", text)], summary=summary)


def retry_request(request: GraphRequest, answer: str, error: str) -> GraphRequest:
    """The conversation so far, the invalid answer, and what was wrong with it."""
    correction = (
        f"That answer is not a valid interest graph: {error}\n"
        "Answer again with only the corrected JSON object."
    )
    messages = [*request.messages, Message("assistant", answer), Message("user", correction)]
    return GraphRequest(system=request.system, messages=messages, summary=request.summary)
