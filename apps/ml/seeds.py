"""/predict's seeds as the model reads them: the candidates after a new listener's seed tracks
(matched to the catalog by the service), from the scoring graph when the model knows every
seed, else from the hybrid's text path, which reads the unknown ones from their text."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apps.ml.schemas import SeedTrack
from inference.cold_start import SeedMatch
from inference.cold_start import SeedTrack as Seed
from inference.model import ServingModel
from inference.scoring import top_items


def seed_candidates(
    model: ServingModel, tracks: list[SeedTrack], matched: list[str | None], n: int
) -> tuple[NDArray[np.int64], NDArray[np.floating], list[int]]:
    """(the n best candidates, their scores, the seeds' items the model knows) after the seed
    `tracks`, oldest first, each matched to a catalog URI or None."""
    ids = [model.index.get(uri) if uri else None for uri in matched]
    known = [i for i in ids if i is not None]
    if len(known) == len(ids):
        candidates, scores = model.candidates(known, n)
    elif model.text_path is not None:  # unknown seeds are read from their text
        matches = [
            SeedMatch(Seed(s.track_name, s.artist_name), uri, i)
            for s, uri, i in zip(tracks, matched, ids, strict=True)
        ]
        all_scores = model.text_path.scores_for(matches)
        candidates = top_items(all_scores[None, :], min(n, model.n_items))[0]
        scores = all_scores[candidates]
    else:  # the service answers a request with no seed known or read from popularity instead
        candidates, scores = model.candidates(known, n)
    return candidates, scores, known
