"""/predict and listener recommendations served by the two-stage recommender, trained here on
real MPD files; and the training/serving skew test: the ranker's features of a request, as
training computed them, equal what the served model computes for the same request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from apps.api.main import create_app
from apps.ml import two_stage
from apps.ml.schemas import PredictQuery, SeedTrack
from inference.recommender import artifact
from inference.recommender.artifact import SourceParams
from ml_pipeline.data.playlists import PlaylistData, load_playlists
from ml_pipeline.evaluation.continuation import make_cases
from ml_pipeline.training.recommender import train_two_stage
from tests.apps.serving_env import ADMIN_TOKEN, ServingEnv

FILES = 40
PARAMS = replace(SourceParams(), als_factors=16, als_iterations=3)


@pytest.fixture(scope="module")
def data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> PlaylistData:
    files = sorted((shared_data / "mpd_reduced").glob("*.json"))[:FILES]
    return load_playlists(files)


@pytest.fixture(scope="module")
def trained(data: PlaylistData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    fitted, ranker, record = train_two_stage(data.playlists[20:], data.tracks, PARAMS)
    path = tmp_path_factory.mktemp("recommender") / "recommender"
    artifact.save(path, fitted, ranker, record)
    return path, fitted.recommender(ranker)


def seed_json(data: PlaylistData, uri: str) -> dict[str, str]:
    info = data.tracks[uri]
    return {"track_name": info.name, "artist_name": info.artist, "track_uri": uri}


def test_served_features_equal_the_training_features(
    data: PlaylistData, trained: tuple[Path, object]
) -> None:
    path, in_training = trained
    served = two_stage.load(path)
    for n in (0, 1, 5):
        for case in make_cases(data.playlists[:20], data.tracks, n)[:5]:
            found = in_training.candidates(in_training.query(list(case.seeds), case.title))  # type: ignore[attr-defined]
            x_train = found.features(in_training.items, in_training.artist_popularity)  # type: ignore[attr-defined]
            tracks = [SeedTrack(**seed_json(data, s.track_uri)) for s in case.seeds]  # type: ignore[arg-type]
            query = two_stage.predict_query(served, PredictQuery(tracks=tracks, name=case.title))
            at_serving = served.recommender.candidates(query)
            x_serving = at_serving.features(
                served.recommender.items, served.recommender.artist_popularity
            )
            assert np.array_equal(found.items, at_serving.items)
            assert np.array_equal(x_train, x_serving)
    assert served.recommender.ranker is not None


def test_predict_from_seeds_title_or_both(
    data: PlaylistData, trained: tuple[Path, object], make_env: Callable[..., ServingEnv]
) -> None:
    path, _ = trained
    env = make_env("embedded", recommender_path=path)
    playlist = data.playlists[30]  # one the recommender was trained on: every seed known
    seeds = [seed_json(data, u) for u in playlist.tracks[:5]]
    unknown = {"track_name": "Never Heard", "artist_name": "No One At All"}
    with TestClient(create_app(env.settings)) as client:
        reply = client.post("/predict", params={"k": 10}, json={"tracks": [*seeds, unknown]})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["unmatched_seeds"] == [5] and reply.headers["X-Unmatched-Seeds"] == "1"
        assert reply.headers["X-Recommendation-Source"] == "model"
        got = [t["track_uri"] for t in body["recommended_tracks"]]
        assert len(got) == 10 and not set(got) & set(playlist.tracks[:5])
        assert all(t["track_name"] and t["artist_name"] for t in body["recommended_tracks"])

        title = client.post("/predict", json={"name": playlist.name}).json()
        assert len(title["recommended_tracks"]) == 20  # the default k
        assert playlist.name.strip() in title["recommended_tracks"][0]["reason"]

        nothing_known = client.post("/predict", json={"tracks": [unknown]})
        assert nothing_known.status_code == 200 and nothing_known.json()["unmatched_seeds"] == [0]

        deep = client.post("/predict", params={"k": 500}, json={"tracks": seeds[:1]})
        assert len(deep.json()["recommended_tracks"]) == 500

        empty = client.post("/predict", json={"tracks": []})
        assert empty.status_code == 422 and "playlist name" in empty.text


def test_a_seeds_other_release_is_not_recommended_back(
    trained: tuple[Path, object], make_env: Callable[..., ServingEnv]
) -> None:
    path, recommender = trained
    table = recommender.items  # type: ignore[attr-defined]
    songs = np.bincount(table.song_ids)
    twice = np.flatnonzero(songs[table.song_ids] > 1)
    assert len(twice), "these files hold no song with two releases"
    seed = int(twice[0])
    env = make_env("embedded", recommender_path=path)
    with TestClient(create_app(env.settings)) as client:
        body = {
            "tracks": [
                {
                    "track_name": table.names[seed],
                    "artist_name": table.artists[seed],
                    "track_uri": table.uris[seed],
                }
            ]
        }
        got = client.post("/predict", params={"k": 500}, json=body).json()["recommended_tracks"]
    same_song = {table.uris[i] for i in np.flatnonzero(table.song_ids == table.song_ids[seed])}
    assert len(same_song) > 1 and not same_song & {t["track_uri"] for t in got}


def test_a_recommender_retrained_in_place_is_reloaded(
    trained: tuple[Path, object], make_env: Callable[..., ServingEnv], tmp_path: Path
) -> None:
    import os
    import shutil

    source, _ = trained
    path = tmp_path / "recommender"
    shutil.copytree(source, path)
    env = make_env("embedded", recommender_path=path)
    with TestClient(create_app(env.settings)) as client:
        first = client.post("/predict", json={"name": "chill"}).headers["X-Model-Version"]
        config = path / "recommender.json"
        os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        reloaded = client.post("/v1/admin/model/reload", headers=admin)
        assert reloaded.status_code == 200, reloaded.text
        second = client.post("/predict", json={"name": "chill"}).headers["X-Model-Version"]
    assert first != second
