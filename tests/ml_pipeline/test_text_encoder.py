from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ml_pipeline.models.text_encoder import TextEncoder, default_model_path, embed_texts
from musicrec.errors import UserError


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_loads_offline_and_embeds_by_meaning(encoder: TextEncoder) -> None:
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    texts = [
        "Toxic — Britney Spears",
        "Oops!... I Did It Again — Britney Spears",
        "Enter Sandman — Metallica",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, encoder.dim) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # same artist closer than another artist


def test_batching_does_not_change_embeddings(encoder: TextEncoder) -> None:
    texts = ["a", "a much longer title — with an artist — and an album", "Hey Jude — The Beatles"]
    one_by_one = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(encoder.encode(texts), one_by_one, atol=1e-5)


def test_cache_embeds_only_new_or_changed_texts(encoder: TextEncoder, tmp_path: Path) -> None:
    texts = ["Yellow — Coldplay", "Clocks — Coldplay", "Yellow — Coldplay"]
    first, computed = embed_texts(texts, encoder, tmp_path)
    assert computed == 2  # the repeated text is embedded once
    again, computed = embed_texts(texts, encoder, tmp_path)
    assert computed == 0
    np.testing.assert_array_equal(first, again)
    changed, computed = embed_texts(
        ["Yellow — Coldplay", "Clocks — Coldplay — A Rush"], encoder, tmp_path
    )
    assert computed == 1
    np.testing.assert_array_equal(changed[0], first[0])


def test_any_local_model_folder_loads(tmp_path: Path) -> None:
    copy = shutil.copytree(default_model_path(), tmp_path / "my-encoder")
    assert TextEncoder(copy).encode(["x"]).shape == (1, 384)


def test_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a local Hugging Face model"):
        TextEncoder(tmp_path)
