"""embed-new-tracks: catalog tracks added after training join the model from their text, the
serving model and its graphs are rewritten, and a new track is recommended without retraining."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ml_pipeline.jobs.embed_new_tracks import embed_new_tracks
from ml_pipeline.jobs.recommend import SequentialRecommender
from ml_pipeline.models.hybrid import HybridSASRec
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from musicrec.config import get_settings
from musicrec.db.bulk import write_batch
from musicrec.errors import UserError
from musicrec.records import CatalogBatch, TrackRecord
from tests.ml_pipeline.styled_data import styled_tracks, trained_hybrid

NEW = "spotify:track:new-metallica"


def _catalog(engine: Engine, extra: list[TrackRecord]) -> None:
    batch = CatalogBatch()
    for i, (_, artist, title) in enumerate(styled_tracks()):
        batch.tracks[f"spotify:track:t{i}"] = TrackRecord(f"spotify:track:t{i}", title, artist)
    for track in extra:
        batch.tracks[track.uri] = track
    write_batch(engine, batch)


def test_new_tracks_join_the_serving_model(
    engine: Engine, tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env()
    _catalog(engine, [TrackRecord(NEW, "Ride the Lightning", "Metallica", album_name="Ride")])
    model, data = trained_hybrid()
    checkpoint = tmp_path / "hybrid.pt"
    model.save(checkpoint, data.vocabulary)

    report = embed_new_tracks(checkpoint, engine, get_settings())
    assert (report.added, report.embedded, report.items) == (1, 1, 37)
    serving = tmp_path / "hybrid.serving.pt"
    # The checkpoint, then every file serving reads (graphs, item vectors, the text path).
    assert report.written[:2] == [checkpoint, serving]
    assert {tmp_path / "hybrid.serving.int8.onnx", tmp_path / "hybrid.serving.items.npz"} <= set(
        report.written
    )
    reloaded, vocabulary, _ = HybridSASRec.load(checkpoint)
    assert vocabulary[-1] == NEW and reloaded.imputed[37] and not reloaded.trained[37]

    recommender = SequentialRecommender(serving)  # the int8 graph, as serving runs it
    assert recommender.backend == "onnx-int8"
    metallica = [f"spotify:track:t{i}" for i in range(4)]
    assert NEW in [uri for uri, _ in recommender.recommend(metallica, k=10)]

    again = embed_new_tracks(checkpoint, engine, get_settings(), onnx=False)
    assert (again.added, again.items, again.written) == (0, 37, [])


def test_texts_come_from_the_cache_on_a_second_model(
    engine: Engine, tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env()
    _catalog(engine, [TrackRecord(NEW, "Ride the Lightning", "Metallica", album_name="Ride")])
    model, data = trained_hybrid()
    for name in ("a.pt", "b.pt"):
        model.save(tmp_path / name, data.vocabulary)
    assert embed_new_tracks(tmp_path / "a.pt", engine, get_settings(), onnx=False).embedded == 1
    assert embed_new_tracks(tmp_path / "b.pt", engine, get_settings(), onnx=False).embedded == 0


def test_not_a_hybrid_checkpoint_is_a_user_error(
    engine: Engine, tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env()
    with pytest.raises(UserError, match="no such checkpoint"):
        embed_new_tracks(tmp_path / "missing.pt", engine, get_settings())
    SASRec(SASRecConfig(n_items=3)).save(tmp_path / "sasrec.pt", ["<pad>", "a", "b", "c"])
    with pytest.raises(UserError, match="not a hybrid model checkpoint"):
        embed_new_tracks(tmp_path / "sasrec.pt", engine, get_settings())
