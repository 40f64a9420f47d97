"""Recommendations for a brand-new listener from a few seed tracks named by title and artist
(the /predict input). A seed is matched to the catalog by its normalized name (the tracks
table's match key); a seed the catalog does not have is read from its text by the hybrid
model as a text-only item. Nothing is retrained or written.

`SeedRecommender` holds what every implementation shares (matching, the request's checks, the
seed sequence, the ranking); `TextSeeds` scores with the ONNX graphs exported beside the model
(serving), ml_pipeline.models.cold_start.ColdStartRecommender with the torch model (the
reference the graphs are checked against).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, select

from inference.files import ServingFiles
from inference.scoring import session, top_items
from musicrec.db.models import Track
from musicrec.errors import UserError
from musicrec.text import track_key, track_text

MAX_SEEDS = 10
# Input and output names of the seed graphs (ml_pipeline.export.serving writes them).
TOKEN_IDS, ATTENTION_MASK, SEED_VECTORS = "input_ids", "attention_mask", "seed_vectors"
VECTORS, PRESENT, SCORES = "vectors", "present", "scores"


@dataclass(frozen=True)
class SeedTrack:
    name: str
    artist: str


@dataclass(frozen=True)
class Recommendation:
    uri: str
    score: float


@dataclass(frozen=True)
class SeedMatch:
    seed: SeedTrack
    uri: str | None  # the catalog track it matched, if any
    item: int | None  # the model's item for it (None: read from its text)

    @property
    def in_model(self) -> bool:
        return self.item is not None


def seed_sequence(
    matches: list[SeedMatch],
    items: NDArray[np.float32],
    from_text: NDArray[np.float32],
    length: int,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The seeds as the model reads a history: their vectors [1, length, d] (known items' rows
    of `items`, the others `from_text` in order), left-padded, and [1, length] which positions
    hold a seed."""
    text_rows = iter(from_text)
    rows = [items[m.item] if m.item is not None else next(text_rows) for m in matches]
    vectors = np.stack(rows)[-length:]
    padded = np.zeros((1, length, items.shape[1]), dtype=np.float32)
    padded[0, length - len(vectors) :] = vectors
    present = np.zeros((1, length), dtype=np.bool_)
    present[0, length - len(vectors) :] = True
    return padded, present


def seed_texts(matches: list[SeedMatch]) -> list[str]:
    """The texts of the seeds the model does not know, in order (what the encoder reads)."""
    return [track_text(m.seed.name, m.seed.artist) for m in matches if not m.in_model]


class SeedRecommender(ABC):
    """Matching and ranking over a model's vocabulary; subclasses score (`scores_for`)."""

    def __init__(self, vocabulary: list[str], engine: Engine) -> None:
        self.vocabulary = vocabulary
        self.index = {uri: i for i, uri in enumerate(vocabulary) if i}
        self.engine = engine

    @property
    def n_items(self) -> int:
        return len(self.vocabulary) - 1

    def match(self, seeds: list[SeedTrack]) -> list[SeedMatch]:
        keys = [track_key(s.artist, s.name) for s in seeds]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Track.match_key, Track.spotify_uri).where(Track.match_key.in_(set(keys)))
            ).all()
        uri_of: dict[str, str] = {}
        for key, uri in rows:  # one key can name several releases: prefer one the model knows
            if key not in uri_of or (uri in self.index and uri_of[key] not in self.index):
                uri_of[key] = uri
        out = []
        for seed, key in zip(seeds, keys, strict=True):
            found = uri_of.get(key)
            out.append(SeedMatch(seed, found, self.index.get(found) if found else None))
        return out

    def recommend(self, seeds: list[SeedTrack], k: int = 10) -> list[Recommendation]:
        """The k best tracks to play after the seeds (in listening order), seeds excluded."""
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise UserError(f"give 1 to {MAX_SEEDS} seed tracks, got {len(seeds)}")
        if any(not s.name.strip() or not s.artist.strip() for s in seeds):
            raise UserError("every seed track needs a name and an artist")
        if not 1 <= k <= self.n_items:
            raise UserError(f"k must be in 1..{self.n_items}")
        scores = self.scores_for(self.match(seeds))
        best = top_items(scores[None, :], k)[0]
        return [Recommendation(self.vocabulary[i], float(scores[i])) for i in best]

    def scores_for(self, matches: list[SeedMatch]) -> NDArray[np.float32]:
        """Scores of every item (column 0 and the seeds the model knows at -inf) after the
        matched seeds, in listening order; seeds without an item are read from their text."""
        scores = np.array(self.raw_scores(matches), dtype=np.float32)
        scores[0] = -np.inf
        scores[[m.item for m in matches if m.item is not None]] = -np.inf
        return scores

    @abstractmethod
    def raw_scores(self, matches: list[SeedMatch]) -> NDArray[np.float32]:
        """Scores of every item after the matched seeds (the ONNX or the torch path)."""


class TextSeeds(SeedRecommender):
    """A hybrid model's seed path on its exported graphs (onnxruntime, tokenizers)."""

    def __init__(
        self,
        files: ServingFiles,
        vocabulary: list[str],
        items: NDArray[np.float32],
        engine: Engine,
    ) -> None:
        from tokenizers import Tokenizer  # the Rust tokenizer: no transformers, no torch

        super().__init__(vocabulary, engine)
        self.items = items  # [n_items + 1, d]
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.text = session(files.seed_text)
        self.scorer = session(files.seed_scores)
        self.max_len = int(self.scorer.get_inputs()[0].shape[1])
        columns = int(self.scorer.get_outputs()[0].shape[1])
        files.check_items(files.seed_scores, columns, self.n_items)

    def text_vectors(self, texts: list[str]) -> NDArray[np.float32]:
        """Item vectors [len(texts), d] of tracks known by their text alone."""
        if not texts:
            return np.empty((0, self.items.shape[1]), dtype=np.float32)
        tokens = self.tokenizer.encode_batch(texts)
        ids = np.array([t.ids for t in tokens], dtype=np.int64)
        mask = np.array([t.attention_mask for t in tokens], dtype=np.int64)
        (vectors,) = self.text.run([SEED_VECTORS], {TOKEN_IDS: ids, ATTENTION_MASK: mask})
        return np.asarray(vectors, dtype=np.float32)

    def raw_scores(self, matches: list[SeedMatch]) -> NDArray[np.float32]:
        from_text = self.text_vectors(seed_texts(matches))
        vectors, present = seed_sequence(matches, self.items, from_text, self.max_len)
        (scores,) = self.scorer.run([SCORES], {VECTORS: vectors, PRESENT: present})
        return np.asarray(scores[0], dtype=np.float32)
