"""The hybrid model: the curriculum schedule, a track added after training ranked from its text,
the baked serving model scoring exactly as the hybrid, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml_pipeline.hybrid import HybridConfig, HybridSASRec, curriculum_share
from ml_pipeline.sasrec import SASRec
from ml_pipeline.sequences import SequenceData
from ml_pipeline.text_encoder import TextEncoder
from ml_pipeline.train_transformer import train_sasrec

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


def styled_catalog(users: int = 300, seed: int = 0) -> tuple[SequenceData, list[str]]:
    """36 tracks by 9 artists of 3 styles; a listener keeps to one artist (70%) or its style."""
    rng = np.random.default_rng(seed)
    tracks = [
        (style, artist, f"{title} — {artist}")
        for style, artists in ARTISTS.items()
        for artist in artists
        for title in TITLES[style]
    ]
    sequences = []
    for _ in range(users):
        style, artist, _ = tracks[rng.integers(len(tracks))]
        own = [i for i, t in enumerate(tracks) if t[1] == artist]
        mates = [i for i, t in enumerate(tracks) if t[0] == style]
        sequences.append(
            [1 + int(rng.choice(own if rng.random() < 0.7 else mates)) for _ in range(10)]
        )
    vocabulary = ["<pad>", *[f"t{i}" for i in range(len(tracks))]]
    users_ = [f"u{u}" for u in range(users)]
    return SequenceData(sequences, vocabulary, users_), ["", *[t[2] for t in tracks]]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture(scope="module")
def trained(encoder: TextEncoder) -> tuple[HybridSASRec, SequenceData]:
    data, texts = styled_catalog()
    text = torch.from_numpy(np.vstack([np.zeros((1, encoder.dim)), encoder.encode(texts[1:])]))
    config = HybridConfig(
        n_items=data.n_items, max_seq_len=10, embedding_dim=32, dropout=0.1, lr=0.005,
        num_negatives=20, curriculum_epochs=4,
    )  # fmt: skip
    torch.manual_seed(0)
    model = HybridSASRec(config, text, torch.ones(data.n_items + 1, dtype=torch.bool))
    result = train_sasrec(data, config, epochs=25, eval_every=0, model=model)
    return result.model, data  # type: ignore[return-value]


def test_curriculum_starts_text_only_and_mixes_ids_in() -> None:
    config = HybridConfig(n_items=5, curriculum_epochs=4, id_share_max=0.8)
    assert [curriculum_share(e, config) for e in (1, 2, 3, 5, 9)] == pytest.approx(
        [0, 0.2, 0.4, 0.8, 0.8]
    )
    # Applied in training: in epoch 1 no item uses its ID part, so the ID table stays zero.
    data, _ = styled_catalog(users=40)
    text = torch.randn(data.n_items + 1, 384)
    model = HybridSASRec(HybridConfig(n_items=data.n_items, max_seq_len=10, curriculum_epochs=4),
                         text)  # fmt: skip
    train_sasrec(data, model.config, epochs=1, eval_every=0, model=model)
    assert model.id_share == 0 and not model.item_emb.weight.any()
    train_sasrec(data, model.config, epochs=3, eval_every=0, model=model)
    assert model.id_share == pytest.approx(0.4) and model.item_emb.weight.any()


def test_a_track_added_after_training_ranks_from_its_text(
    trained: tuple[HybridSASRec, SequenceData], encoder: TextEncoder
) -> None:
    model, data = trained
    model.add_items(encoder.encode(["Ride the Lightning — Metallica"]))
    new = data.n_items + 1
    assert model.config.n_items == new and not model.trained[new]
    assert model.impute_ids() == 1 and model.imputed[new]
    metallica = [1, 2, 3, 4]  # its four trained tracks; 1..12 metal, 13..24 pop, 25..36 jazz
    britney = [13, 14, 15, 16]
    with torch.no_grad():
        scores = model.full_sort_scores(torch.tensor([[0] * 6 + metallica, [0] * 6 + britney]))
    scores[:, 0] = -torch.inf
    scores[0, metallica] = scores[1, britney] = -torch.inf  # heard: not recommended again
    fan_top10 = torch.topk(scores[0], 10).indices.tolist()
    assert new in fan_top10  # recommended to a Metallica fan without retraining
    assert scores[0, new] > scores[0, 13:37].max()  # above every pop and jazz track
    other_top = torch.topk(scores[1], 9).indices.tolist()
    assert new not in other_top[:8] and set(other_top[:8]) == set(range(17, 25))  # pop first


def test_baked_serving_model_scores_as_the_hybrid(
    trained: tuple[HybridSASRec, SequenceData], tmp_path: Path
) -> None:
    model, data = trained
    baked = model.to_sasrec()
    assert type(baked) is SASRec
    model.eval()
    seqs = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]])
    with torch.no_grad():
        torch.testing.assert_close(baked.full_sort_scores(seqs), model.full_sort_scores(seqs))
    model.save(tmp_path / "hybrid.pt", data.vocabulary)
    loaded, vocabulary, _ = HybridSASRec.load(tmp_path / "hybrid.pt")
    assert vocabulary == data.vocabulary and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded.full_sort_scores(seqs), model.full_sort_scores(seqs))
    with pytest.raises(ValueError, match="not a SASRec checkpoint"):
        SASRec.load(tmp_path / "hybrid.pt")


def test_items_without_training_data_are_text_only_and_never_negatives() -> None:
    trained = torch.tensor([False, True, True, False])
    config = HybridConfig(n_items=3, max_seq_len=4, embedding_dim=8, text_dim=6)
    model = HybridSASRec(config, torch.randn(4, 6), trained)
    torch.nn.init.normal_(model.item_emb.weight)
    model.eval()
    expected = model.projector(model.text[3])
    torch.testing.assert_close(model.item_vectors(torch.tensor([3]))[0], expected)
    assert set(model.negative_items(200).tolist()) == {1, 2}
    with pytest.raises(ValueError, match="sampled_softmax"):
        HybridConfig(n_items=3, loss="bce")
