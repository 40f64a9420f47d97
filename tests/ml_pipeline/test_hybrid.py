"""The hybrid model: the curriculum schedule, a track added after training ranked from its text,
the baked serving model scoring exactly as the hybrid, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ml_pipeline.models.hybrid import HybridConfig, HybridSASRec, curriculum_share
from ml_pipeline.models.sasrec import SASRec
from ml_pipeline.training.train_transformer import train_sasrec
from tests.ml_pipeline.styled_data import encoder, styled_catalog, trained_hybrid


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


def test_a_track_added_after_training_ranks_from_its_text() -> None:
    model, data = trained_hybrid()
    model.add_items(encoder().encode(["Ride the Lightning — Metallica"]))
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


def test_baked_serving_model_scores_as_the_hybrid(tmp_path: Path) -> None:
    model, data = trained_hybrid()
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


def test_validation_sees_untrained_tracks_as_served_and_training_never_does() -> None:
    trained = torch.tensor([False, True, True, False])
    config = HybridConfig(n_items=3, max_seq_len=4, embedding_dim=8, text_dim=6)
    model = HybridSASRec(config, torch.randn(4, 6), trained)
    torch.nn.init.normal_(model.item_emb.weight)
    with torch.no_grad():
        model.item_emb.weight[3] = 0.0
    with model.as_served():
        assert model.imputed[3] and model.item_emb.weight[3].abs().sum() > 0
        assert torch.equal(model.item_emb.weight[3], model.item_emb.weight[1:3][
            torch.argmax(torch.nn.functional.normalize(model.text[1:3], dim=1)
                         @ torch.nn.functional.normalize(model.text[3], dim=0))
        ])  # the nearest trained track's ID  # fmt: skip
    assert not model.imputed[3] and not model.item_emb.weight[3].any()
