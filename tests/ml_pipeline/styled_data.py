"""A catalog whose tracks' texts carry the listening structure: 9 artists of 3 styles, each
listener keeping to one artist or its style; and a small hybrid model trained on it (once per
test session: several test modules read it, none may change it)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ml_pipeline.data.sequences import SequenceData
from ml_pipeline.models.hybrid import HybridConfig, HybridSASRec
from ml_pipeline.models.text_encoder import TextEncoder
from ml_pipeline.training.train_transformer import train_sasrec

ARTISTS = {
    "metal": ["Metallica", "Slayer", "Megadeth"],
    "pop": ["Britney Spears", "Katy Perry", "Lady Gaga"],
    "jazz": ["Miles Davis", "John Coltrane", "Thelonious Monk"],
}
TITLES = {
    "metal": ["Thunder of Steel", "Blood and Fire", "Master of War", "Raining Blood"],
    "pop": ["Dance All Night", "Baby Love", "Party Girl", "Kiss Me Tonight"],
    "jazz": ["Blue Saxophone", "Midnight Swing", "Cool Trumpet Blues", "Bebop Walk"],
}


def styled_tracks() -> list[tuple[str, str, str]]:
    """(style, artist, title) of the 36 tracks; track i (0-based) is spotify:track:t<i>."""
    return [
        (style, artist, title)
        for style, artists in ARTISTS.items()
        for artist in artists
        for title in TITLES[style]
    ]


def styled_catalog(users: int = 300, seed: int = 0) -> tuple[SequenceData, list[str]]:
    """36 tracks by 9 artists of 3 styles; a listener keeps to one artist (70%) or its style."""
    rng = np.random.default_rng(seed)
    tracks = [(style, artist, f"{title} — {artist}") for style, artist, title in styled_tracks()]
    sequences = []
    for _ in range(users):
        style, artist, _ = tracks[rng.integers(len(tracks))]
        own = [i for i, t in enumerate(tracks) if t[1] == artist]
        mates = [i for i, t in enumerate(tracks) if t[0] == style]
        sequences.append(
            [1 + int(rng.choice(own if rng.random() < 0.7 else mates)) for _ in range(10)]
        )
    vocabulary = ["<pad>", *[f"spotify:track:t{i}" for i in range(len(tracks))]]
    users_ = [f"u{u}" for u in range(users)]
    return SequenceData(sequences, vocabulary, users_), ["", *[t[2] for t in tracks]]


@lru_cache(maxsize=1)
def encoder() -> TextEncoder:
    return TextEncoder()


def trained_hybrid() -> tuple[HybridSASRec, SequenceData]:
    """A fresh copy of the trained model (callers may add items to theirs)."""
    model, data, _ = _trained()
    copy = HybridSASRec(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.eval(), data


def training_curve() -> list[dict[str, float]]:
    """The trained model's per-epoch rows (loss), as train_sasrec logged them."""
    return [dict(row) for row in _trained()[2]]


@lru_cache(maxsize=1)
def _trained() -> tuple[HybridSASRec, SequenceData, list[dict[str, float]]]:
    data, texts = styled_catalog()
    text = np.vstack([np.zeros((1, encoder().dim)), encoder().encode(texts[1:])])
    config = HybridConfig(
        n_items=data.n_items, max_seq_len=10, embedding_dim=32, dropout=0.1, lr=0.005,
        num_negatives=20, curriculum_epochs=4,
    )  # fmt: skip
    torch.manual_seed(0)
    model = HybridSASRec(
        config, torch.from_numpy(text), torch.ones(data.n_items + 1, dtype=torch.bool)
    )
    result = train_sasrec(data, config, epochs=25, eval_every=0, model=model)
    return model, data, result.epochs
