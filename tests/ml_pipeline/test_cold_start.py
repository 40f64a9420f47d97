"""A new listener's seed tracks by name and artist: matched to the catalog by normalized name,
or read from their text when the catalog lacks them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from ml_pipeline.models.cold_start import ColdStartRecommender, SeedTrack, app
from musicrec.db.bulk import write_batch
from musicrec.errors import UserError
from musicrec.records import CatalogBatch, TrackRecord
from tests.ml_pipeline.styled_data import encoder, styled_tracks, trained_hybrid

STYLE = {f"spotify:track:t{i}": style for i, (style, _, _) in enumerate(styled_tracks())}


@pytest.fixture
def recommender(engine: Engine, tmp_path: Path) -> ColdStartRecommender:
    batch = CatalogBatch()
    for i, (_, artist, title) in enumerate(styled_tracks()):
        uri = f"spotify:track:t{i}"
        batch.tracks[uri] = TrackRecord(uri=uri, name=title, artist_name=artist)
    write_batch(engine, batch)
    model, data = trained_hybrid()
    model.save(tmp_path / "hybrid.pt", data.vocabulary)
    return ColdStartRecommender(tmp_path / "hybrid.pt", engine, encoder())


def test_seeds_in_the_catalog_are_matched_by_normalized_name(
    recommender: ColdStartRecommender,
) -> None:
    seeds = [
        SeedTrack("RAINING BLOOD (feat. Someone)", "metallica"),
        SeedTrack("Blood and Fire", "Slayer"),
    ]
    matches = recommender.match(seeds)
    assert [m.uri for m in matches] == ["spotify:track:t3", "spotify:track:t5"]
    assert all(m.in_model for m in matches)
    recommended = [r.uri for r in recommender.recommend(seeds, k=5)]
    assert not {"spotify:track:t3", "spotify:track:t5"} & set(recommended)  # seeds excluded
    assert [STYLE[u] for u in recommended] == ["metal"] * 5


def test_seeds_missing_from_the_catalog_are_read_from_their_text(
    recommender: ColdStartRecommender,
) -> None:
    seeds = [
        SeedTrack("Oops I Did It Again", "Britney Spears"),
        SeedTrack("Toxic", "Britney Spears"),
    ]
    assert [m.uri for m in recommender.match(seeds)] == [None, None]
    recommended = recommender.recommend(seeds, k=4)
    assert [STYLE[r.uri] for r in recommended] == ["pop"] * 4
    assert recommended[0].score >= recommended[-1].score


@pytest.mark.parametrize(
    ("seeds", "k", "message"),
    [
        ([], 10, "1 to 10 seed tracks"),
        ([SeedTrack("x", "y")] * 11, 10, "1 to 10 seed tracks"),
        ([SeedTrack(" ", "Metallica")], 10, "needs a name and an artist"),
        ([SeedTrack("Toxic", "Britney Spears")], 0, "k must be in"),
    ],
)
def test_bad_requests_are_user_errors(
    recommender: ColdStartRecommender, seeds: list[SeedTrack], k: int, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        recommender.recommend(seeds, k)


def test_command_line(
    recommender: ColdStartRecommender, tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env(database_url=f"sqlite:///{tmp_path / 'test.db'}")
    checkpoint = str(tmp_path / "hybrid.pt")
    runner = CliRunner()
    result = runner.invoke(
        app, [checkpoint, "Raining Blood | Metallica", "Toxic | Britney", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("spotify:track:")]
    assert len(lines) == 3
    assert "read from its text: Toxic | Britney" in result.output
    bad = runner.invoke(app, [checkpoint, "Raining Blood by Metallica"])
    assert bad.exit_code == 1 and "'title | artist'" in bad.output
    assert "Traceback" not in bad.output
