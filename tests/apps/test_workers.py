"""`musicrec serve --workers 2` in services mode, as a real process tree: both workers start (a
worker loading the model once took longer than uvicorn's fixed 5 s health check and was killed
mid-start forever), stay up, and answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from apps.api.security import ApiKeys
from apps.serving import free_port
from tests.apps.serving_env import APP, ServingEnv

SEEDS = {"tracks": [{"track_name": "Song 0", "artist_name": "Artist 0"}]}


def _workers(pid: int) -> set[int]:
    """The uvicorn workers under the supervisor `pid` (multiprocessing's spawned children; its
    resource tracker is a child too)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return set()
    workers = set()
    for child in children:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    workers.add(child)
        except OSError:
            pass
    return workers


def test_two_workers_start_and_serve(make_env: Callable[..., ServingEnv]) -> None:
    env = make_env("services")
    key = ApiKeys(env.engine, 0).create("workers", app=APP)
    port = free_port()
    settings = env.settings
    variables = {
        "DATABASE_URL": settings.database_url,
        "FEAST_REDIS_HOST": "127.0.0.1",
        "FEAST_PROJECT": settings.feast_project,
        "VAR_DIR": str(settings.var_dir),
        "SEQUENTIAL_MODEL_PATH": str(settings.sequential_model_path),
        "MODEL_POLL_SECONDS": "0",
        # Services mode; no broker is needed to serve (feedback would go to the outbox).
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "API_PORT": str(port),
        "PYTHONOPTIMIZE": "1",  # as deployed
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "serve", "--workers", "2"],
        env={**os.environ, **variables},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        with httpx.Client(base_url=url, timeout=10) as client:
            while time.monotonic() < deadline:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
            workers = _workers(server.pid)
            assert len(workers) == 2, workers
            # Both workers serve: fresh connections are spread over them by the kernel.
            for _ in range(60):
                with httpx.Client(base_url=url, timeout=10) as fresh:
                    reply = fresh.post("/predict", json=SEEDS)
                    assert reply.status_code == 200, reply.text
                    mine = fresh.get("/v1/users/u0/recommendations", headers={"X-API-Key": key})
                    assert mine.status_code == 200 and mine.json()["tracks"]
            time.sleep(2)
            assert _workers(server.pid) == workers  # none was restarted
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
    assert "died" not in output.lower(), output
