"""The serving runtime's model, read from the files exported beside the checkpoint: the same
vectors as the torch checkpoint, and the ONNX text path of /predict giving the torch reference's
recommendations (ColdStartRecommender) on the styled hybrid. A model exported before these
files existed is refused with the command that writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import Engine
from typer.testing import CliRunner

from inference.cold_start import SeedRecommender, SeedTrack
from inference.files import ServingFiles
from inference.model import ServingModel, file_source
from inference.scoring import top_items
from ml_pipeline.export.onnx import load_checkpoint
from ml_pipeline.export.serving import app, export_serving
from ml_pipeline.models.cold_start import ColdStartRecommender
from musicrec.db.bulk import write_batch
from musicrec.errors import UserError
from musicrec.records import CatalogBatch, TrackRecord
from tests.ml_pipeline.styled_data import encoder, styled_tracks, trained_hybrid

SEED_SETS = {
    "all read from text": [
        SeedTrack("Oops I Did It Again", "Britney Spears"),
        SeedTrack("Toxic", "Britney Spears"),
    ],
    "one known, one from text": [
        SeedTrack("Raining Blood", "Metallica"),
        SeedTrack("A Song Released Today", "Slayer"),
    ],
    "all known": [
        SeedTrack("Blue Saxophone", "Miles Davis"),
        SeedTrack("Bebop Walk", "Miles Davis"),
    ],
    "ten, mixed": [
        SeedTrack(title, artist)
        for title, artist in [
            ("Dance All Night", "Katy Perry"),
            ("Some New Jazz", "John Coltrane"),
            ("Cool Trumpet Blues", "Miles Davis"),
            ("Unheard Ballad", "Lady Gaga"),
            ("Midnight Swing", "Thelonious Monk"),
            ("Thunder of Steel", "Megadeth"),
            ("Brand New Riff", "Slayer"),
            ("Party Girl", "Lady Gaga"),
            ("Kiss Me Tonight", "Britney Spears"),
            ("Another Fresh Tune", "Miles Davis"),
        ]
    ],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, data = trained_hybrid()
    path = tmp_path_factory.mktemp("model") / "hybrid.pt"
    model.save(path, data.vocabulary)
    export_serving(model, path, data.vocabulary, encoder=encoder())
    return path


@pytest.fixture
def catalog(engine: Engine) -> Engine:
    batch = CatalogBatch()
    for i, (_, artist, title) in enumerate(styled_tracks()):
        uri = f"spotify:track:t{i}"
        batch.tracks[uri] = TrackRecord(uri=uri, name=title, artist_name=artist)
    write_batch(engine, batch)
    return engine


def _scores(recommender: SeedRecommender, seeds: list[SeedTrack]) -> np.ndarray:
    return recommender.scores_for(recommender.match(seeds))


@pytest.mark.parametrize("name", SEED_SETS)
def test_onnx_text_path_matches_the_torch_reference(
    exported: Path, catalog: Engine, name: str
) -> None:
    served = ServingModel.load(file_source(exported), catalog).text_path
    assert served is not None
    reference = ColdStartRecommender(exported, catalog, encoder())
    seeds = SEED_SETS[name]
    got, expected = _scores(served, seeds), _scores(reference, seeds)
    assert np.array_equal(np.isinf(got), np.isinf(expected))  # padding and known seeds
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-4, atol=1e-4)
    assert top_items(got[None], 10).tolist() == top_items(expected[None], 10).tolist()
    assert [r.uri for r in served.recommend(seeds, 10)] == [
        r.uri for r in reference.recommend(seeds, 10)
    ]


def test_served_items_are_the_checkpoints(exported: Path, catalog: Engine) -> None:
    model = ServingModel.load(file_source(exported), catalog)
    baked, vocabulary, _ = load_checkpoint(ServingFiles(exported).serving)
    assert model.vocabulary == vocabulary
    with torch.no_grad():
        vectors = baked.all_item_vectors().numpy()
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(model.unit_vectors, unit, atol=1e-6)


def test_a_model_without_runtime_files_names_the_command_that_writes_them(
    exported: Path, catalog: Engine, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(exported.parent, old)
    checkpoint = old / exported.name
    files = ServingFiles(checkpoint)
    for path in (files.items, files.seed_text, files.seed_scores, files.tokenizer):
        path.unlink()
    with pytest.raises(UserError, match=rf"python -m ml_pipeline.export.serving {checkpoint}"):
        ServingModel.load(file_source(checkpoint), catalog)

    result = CliRunner().invoke(app, [str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert not files.missing()
    model = ServingModel.load(file_source(checkpoint), catalog)
    assert model.text_path is not None
    seeds = SEED_SETS["one known, one from text"]
    reference = ServingModel.load(file_source(exported), catalog).text_path
    assert reference is not None
    np.testing.assert_allclose(
        _scores(model.text_path, seeds), _scores(reference, seeds), atol=1e-5
    )


def test_the_command_refuses_what_is_not_a_trained_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    runner = CliRunner()
    for args, message in (
        ([str(tmp_path / "missing.pt")], "no such checkpoint file"),
        ([str(tmp_path / "junk.pt")], "not a SASRec checkpoint"),
        ([str(tmp_path / "x.serving.pt")], "not the serving one"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_files_of_different_exports_are_refused(
    exported: Path, catalog: Engine, tmp_path: Path
) -> None:
    """A job that adds tracks and rewrites only some files would serve a vocabulary that does
    not match the graph's columns."""
    old = tmp_path / "old"
    shutil.copytree(exported.parent, old)
    files = ServingFiles(old / exported.name)
    with np.load(files.items) as saved:
        vocabulary, vectors = saved["vocabulary"], saved["vectors"]
    np.savez(files.items, vocabulary=vocabulary[:-1], vectors=vectors[:-1])
    with pytest.raises(UserError, match=r"scores 36 items, the model's vocabulary has 35"):
        ServingModel.load(file_source(files.checkpoint), catalog)
