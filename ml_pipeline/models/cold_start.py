"""Recommendations for a brand-new listener from a few seed tracks named by title and artist
(the /predict input). A seed is matched to the catalog by its normalized name (the tracks
table's match key); a seed the catalog does not have is embedded from its text and read by the
hybrid model as a text-only item. Nothing is retrained or written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from sqlalchemy import Engine, select

from ml_pipeline.export.onnx import top_items
from ml_pipeline.models.hybrid import HybridSASRec
from ml_pipeline.models.text_encoder import TextEncoder
from musicrec.db.models import Track
from musicrec.errors import UserError
from musicrec.text import track_key, track_text

MAX_SEEDS = 10


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


class ColdStartRecommender:
    def __init__(self, checkpoint: Path, engine: Engine, encoder: TextEncoder | None = None):
        self.model, self.vocabulary, _ = HybridSASRec.load(checkpoint)
        self.index = {uri: i for i, uri in enumerate(self.vocabulary) if i}
        self.engine = engine
        self.encoder = encoder or TextEncoder()
        if self.encoder.dim != self.model.config.text_dim:
            raise UserError("the text encoder does not match the model's (dimensions differ)")
        with torch.no_grad(), self.model.as_served():
            self.items = self.model.all_item_vectors()  # [n_items + 1, d]

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
        if not 1 <= k <= self.model.config.n_items:
            raise UserError(f"k must be in 1..{self.model.config.n_items}")
        scores = self.scores_for(self.match(seeds))
        best = top_items(scores[None, :], k)[0]
        return [Recommendation(self.vocabulary[i], float(scores[i])) for i in best]

    def scores_for(self, matches: list[SeedMatch]) -> np.ndarray:
        """Scores of every item (column 0 and the seeds the model knows at -inf) after the
        matched seeds, in listening order; seeds without an item are read from their text."""
        unknown = [m.seed for m in matches if not m.in_model]
        vectors = torch.zeros(len(matches), self.model.config.embedding_dim)
        if unknown:
            text = self.encoder.encode([track_text(s.name, s.artist) for s in unknown])
            from_text = iter(self.model.text_item_vectors(torch.from_numpy(text)))
        for row, m in enumerate(matches):
            vectors[row] = self.items[m.item] if m.item is not None else next(from_text)
        length = self.model.config.max_seq_len
        vectors = vectors[-length:]
        padded = torch.zeros(1, length, vectors.shape[1])
        padded[0, -len(vectors) :] = vectors
        present = torch.zeros(1, length, dtype=torch.bool)
        present[0, -len(vectors) :] = True
        with torch.no_grad():
            hidden = self.model.encode_vectors(padded, present)[:, -1]
            scores = (hidden @ self.items.T)[0].numpy()
        scores[0] = -np.inf
        scores[[m.item for m in matches if m.item is not None]] = -np.inf
        return scores


def parse_seed(value: str) -> SeedTrack:
    """A seed track written 'title | artist' (the command line's form)."""
    name, sep, artist = value.partition("|")
    if not sep:
        raise UserError(f"seed {value!r}: write it as 'title | artist'")
    return SeedTrack(name.strip(), artist.strip())


app = typer.Typer(add_completion=False)


@app.command()
def main(
    checkpoint: Annotated[Path, typer.Argument(help="the hybrid model's checkpoint")],
    seeds: Annotated[list[str], typer.Argument(help="'title | artist', oldest first (1-10)")],
    k: Annotated[int, typer.Option("-k", help="how many")] = 10,
) -> None:
    """Recommend for a new listener from seed tracks named by title and artist: one
    `uri<TAB>score<TAB>title — artist` line each; on stderr, the seeds read from text alone."""
    from ml_pipeline.data.track_texts import track_names
    from musicrec.console import cli_errors, err_console
    from musicrec.db.engine import make_engine

    with cli_errors():
        recommender = ColdStartRecommender(checkpoint, make_engine())
        parsed = [parse_seed(s) for s in seeds]
        unmatched = [m.seed for m in recommender.match(parsed) if not m.in_model]
        best = recommender.recommend(parsed, k)
    for seed in unmatched:
        err_console.print(f"not in the catalog, read from its text: {seed.name} | {seed.artist}")
    names = track_names(recommender.engine, [r.uri for r in best])
    for r in best:
        name, artist = names.get(r.uri, ("?", "?"))
        print(f"{r.uri}\t{r.score:.4f}\t{name} — {artist}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    app()
