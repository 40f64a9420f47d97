"""The torch reference of the cold-start path (inference.cold_start): recommendations for a new
listener from seed tracks named by title and artist, scored by the hybrid checkpoint itself and
the transformers text encoder. Serving runs the ONNX graphs exported from the same model, which
are checked against this; the command line below runs it offline.

    python -m ml_pipeline.models.cold_start var/models/hybrid.pt "Toxic | Britney Spears"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from numpy.typing import NDArray
from sqlalchemy import Engine

from inference.cold_start import (
    SeedMatch,
    SeedRecommender,
    SeedTrack,
    seed_sequence,
    seed_texts,
)
from ml_pipeline.models.hybrid import HybridSASRec
from ml_pipeline.models.text_encoder import TextEncoder
from musicrec.errors import UserError

# The shared pieces, importable from here as before.
__all__ = ["ColdStartRecommender", "SeedMatch", "SeedTrack", "parse_seed"]


class ColdStartRecommender(SeedRecommender):
    def __init__(self, checkpoint: Path, engine: Engine, encoder: TextEncoder | None = None):
        self.model, vocabulary, _ = HybridSASRec.load(checkpoint)
        super().__init__(vocabulary, engine)
        self.encoder = encoder or TextEncoder()
        if self.encoder.dim != self.model.config.text_dim:
            raise UserError("the text encoder does not match the model's (dimensions differ)")
        with torch.no_grad(), self.model.as_served():
            self.items = self.model.all_item_vectors()  # [n_items + 1, d]

    def raw_scores(self, matches: list[SeedMatch]) -> NDArray[np.float32]:
        texts = seed_texts(matches)
        from_text = np.zeros((0, self.items.shape[1]), dtype=np.float32)
        if texts:
            embedded = torch.from_numpy(self.encoder.encode(texts))
            from_text = self.model.text_item_vectors(embedded).numpy()
        items = self.items.numpy()
        padded, present = seed_sequence(matches, items, from_text, self.model.config.max_seq_len)
        with torch.no_grad():
            vectors = torch.from_numpy(padded)
            hidden = self.model.encode_vectors(vectors, torch.from_numpy(present))[:, -1]
            return (hidden @ self.items.T)[0].numpy()


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
