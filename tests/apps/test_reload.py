"""A new production model is picked up while requests keep being answered."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from apps.api.main import create_app
from apps.api.security import ApiKeys
from apps.serving import serve_in_background
from tests.apps.serving_env import ADMIN_TOKEN, APP, ServingEnv


def _publish(source: Path, folder: Path) -> None:
    """Copy a model's files in, each replaced atomically (as a deployment should)."""
    for path in source.parent.glob(f"{source.stem}.*"):
        temporary = folder / f".{path.name}.tmp"
        shutil.copyfile(path, temporary)
        os.replace(temporary, folder / path.name)


def test_hot_reload_drops_no_request(
    make_env: Callable[..., ServingEnv], model_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "production"
    folder.mkdir()
    _publish(model_path, folder)
    env = make_env("embedded", sequential_model_path=folder / "hybrid.pt", model_poll_seconds=0.2)
    key = ApiKeys(env.engine, 0).create("k", app=APP)
    with serve_in_background(create_app(env.settings)) as server:
        statuses, versions, first = _reload_under_load(server.url, key, model_path, folder)
    assert len(statuses) > 20
    assert set(statuses) == {200}
    assert versions[0] == first != versions[-1]
    assert versions[-1].startswith("hybrid@")


def _reload_under_load(
    url: str, key: str, model_path: Path, folder: Path
) -> tuple[list[int], list[str], str]:
    deadline = time.monotonic() + 30
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
            while not stop.is_set():
                reply = c.get("/v1/users/u0/recommendations")
                statuses.append(reply.status_code)
                versions.append(reply.json().get("model_version", ""))
                seeds = {"tracks": [{"track_name": "Baby Love", "artist_name": "Katy Perry"}]}
                statuses.append(c.post("/predict", json=seeds).status_code)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        for w in workers:
            w.start()
        while not versions and time.monotonic() < deadline:  # a busy machine starts slowly
            time.sleep(0.05)
        time.sleep(0.5)
        first = versions[-1]
        time.sleep(0.05)  # the new files get a later modification time
        _publish(model_path, folder)
        while versions[-1] == first and time.monotonic() < deadline:
            time.sleep(0.05)  # the poller picks it up
        time.sleep(0.3)
        admin = httpx.post(
            f"{url}/v1/admin/model/reload",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert admin.status_code == 200 and admin.json()["version"] == versions[-1]
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    return statuses, versions, first
