"""`musicrec serve` as a real process serves on numpy and onnxruntime: torch is never loaded in
the process that serves (the guard of apps.serving blocks it before the app is imported; Feast,
which imports torch when it can, carries on without it), and /predict still reads unknown seeds
from their text. Prints the process's memory and seconds to ready (see the test's output with
-s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from apps.serving import free_port
from tests.apps.serving_env import ServingEnv

# A seed the catalog lacks: read from its text by the hybrid's ONNX text path.
SEEDS = {"tracks": [{"track_name": "A Song Released Today", "artist_name": "Metallica"}]}


def _libraries(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1] for line in f if len(line.split()) >= 6}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _spawned(pid: int) -> list[int]:
    """uvicorn's workers under the supervisor `pid` (multiprocessing's spawned children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.parametrize("workers", [1, 2])
def test_served_without_torch(make_env: Callable[..., ServingEnv], workers: int) -> None:
    env = make_env("services")
    settings = env.settings
    port = free_port()
    variables = {
        "DATABASE_URL": settings.database_url,
        "FEAST_REDIS_HOST": "127.0.0.1",
        "FEAST_PROJECT": settings.feast_project,
        "VAR_DIR": str(settings.var_dir),
        "SEQUENTIAL_MODEL_PATH": str(settings.sequential_model_path),
        "MODEL_POLL_SECONDS": "0",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # services mode; serving needs no broker
        "API_PORT": str(port),
        "PYTHONOPTIMIZE": "1",  # as deployed
    }
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "serve", "--workers", str(workers)],
        env={**os.environ, **variables},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = started + 150
            while True:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "not ready in 150 s"
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            ready = time.monotonic() - started
            reply = client.post("/predict", json=SEEDS)
            assert reply.status_code == 200, reply.text
            assert reply.headers["X-Unmatched-Seeds"] == "1"
            assert reply.headers["X-Recommendation-Source"] == "model"
            assert reply.json()["recommended_tracks"]
        serving = [server.pid] if workers == 1 else _spawned(server.pid)
        assert len(serving) == workers
        for pid in serving:
            torch_files = sorted(p for p in _libraries(pid) if "/torch/" in p or "libtorch" in p)
            assert not torch_files, torch_files[:5]
            print(f"\nserving process {pid}: VmRSS {_rss_mb(pid):.0f} MB; ready in {ready:.1f} s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
    # The guard warns when torch was imported before it was installed (then it stays loaded).
    assert "loaded before the serving guard" not in output, output
