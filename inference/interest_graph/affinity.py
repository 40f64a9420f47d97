"""How well a track fits a listener's interest graph: the re-ranking signal.

A graph becomes a profile: weights by (kind, key), artists by their match key, and genres,
moods and eras by the facets' labels (a language model's "90s hip hop" counts for hip hop and
the 1990s, through the same lexicon that labels the catalog). A track's affinity is its artist's
weight plus, for each of its labels, the profile's weight times the track's own weight for the
label. The profile travels as compact JSON (the online store's `user_interest_graph` feature).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.interest_graph.facets import Facets, name_labels
from inference.interest_graph.schema import InterestGraph
from musicrec.text import match_key


@dataclass(frozen=True)
class InterestProfile:
    artists: dict[str, float]  # artist match key -> weight
    labels: dict[str, float]  # "kind:label" -> weight

    @classmethod
    def from_graph(cls, graph: InterestGraph) -> InterestProfile:
        artists: dict[str, float] = {}
        labels: dict[str, float] = {}
        for node in graph.nodes:
            if node.kind == "artist":
                key = match_key(node.label)
                artists[key] = max(artists.get(key, 0.0), node.weight)
                continue
            found = {label for kind, label in name_labels(node.label) if kind == node.kind}
            for label in found | {node.label.lower()}:
                ref = f"{node.kind}:{label}"
                labels[ref] = max(labels.get(ref, 0.0), node.weight)
        return cls(artists, labels)

    def to_json(self) -> str:
        return json.dumps({"artists": self.artists, "labels": self.labels}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> InterestProfile:
        data = json.loads(text)
        return cls(dict(data["artists"]), dict(data["labels"]))

    def scores(self, facets: Facets, uris: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(artist part, label part) of each track's affinity."""
        artist = np.zeros(len(uris))
        label = np.zeros(len(uris))
        for i, uri in enumerate(uris):
            artist[i] = self.artists.get(facets.track_artist.get(uri, ""), 0.0)
            label[i] = sum(
                self.labels.get(f"{kind}:{name}", 0.0) * weight
                for (kind, name), weight in facets.labels(uri).items()
            )
        return artist, label

    def affinity(self, facets: Facets, uris: Sequence[str]) -> np.ndarray:
        artist, label = self.scores(facets, uris)
        return artist + label


def rerank_scores(model_scores: np.ndarray, affinity: np.ndarray, weight: float) -> np.ndarray:
    """The model's scores, standardized over the candidates, plus `weight` times the affinity:
    the weight means the same whatever the model's score scale."""
    spread = float(model_scores.std()) or 1.0
    return (model_scores - model_scores.mean()) / spread + weight * affinity
