"""The servers a benchmark measures, and the CPU they use: `musicrec <command>` subprocesses on
free loopback ports, each with the environment built from a Settings object (nothing inherited
that a setting would override), a readiness wait, their CPU seconds from /proc; a plain GET for
probes; and CpuMeter, which splits a phase's CPU between this process (the load generator), the
servers and every other process on the machine (other jobs on shared cores move latencies)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from musicrec.config import REPO_ROOT, Settings


class SetupFailed(Exception):
    """The benchmark could not be set up (a server did not start, a service is missing)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(settings: Settings, ml_url: str | None = None) -> dict[str, str]:
    """The environment a `musicrec` subprocess reads its settings from (nothing inherited)."""
    fields = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in fields}
    values = settings.model_dump(exclude_none=True)
    for name in ("var_dir", "database_url", "feast_redis_host", "feast_project"):
        if name in values:
            env[name.upper()] = str(values[name])
    env |= {
        "SEQUENTIAL_MODEL_PATH": str(settings.sequential_model_path),
        "MODEL_POLL_SECONDS": "0",
        "RATE_LIMIT_PER_SECOND": str(settings.rate_limit_per_second),
        "RATE_LIMIT_BURST": str(settings.rate_limit_burst),
        "FEAST_USAGE": "False",
    }
    if ml_url:
        env["ML_SERVICE_URL"] = ml_url
    return env


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


class Server:
    """`musicrec <command>` on a free port; its log in `log_dir`."""

    def __init__(self, name: str, command: str, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.port = name, free_port()
        self.log_path = log_dir / f"{name}.log"
        args = [sys.executable, "-m", "apps.cli", command, "--host", "127.0.0.1"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*args, "--port", str(self.port)], env=env, cwd=REPO_ROOT, stdout=log, stderr=log
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupFailed(f"{self.name} exited ({self.proc.returncode}): {self._last()}")
            try:
                status, body = get(self.port, path)
                if status == 200:
                    return dict(json.loads(body))
            except OSError:
                pass
            time.sleep(0.25)
        raise SetupFailed(f"{self.name} not ready after {timeout:.0f} s: {self._last()}")

    def _last(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return f"{lines[-1] if lines else 'no output'} (log: {self.log_path})"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def machine_busy_seconds() -> float:
    """CPU seconds all processes used since boot (/proc/stat: all but idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of this process (the client), of the servers and of everything else on the
    machine (other jobs on these shared cores) over a phase."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = servers

    @contextmanager
    def phase(self) -> Iterator[dict[str, Any]]:
        """Yields a dict that holds the phase's CPU use once the block is left."""
        cpu: dict[str, Any] = {}
        wall, client = time.perf_counter(), time.process_time()
        servers, machine = [s.cpu_seconds() for s in self.servers], machine_busy_seconds()
        yield cpu
        wall, client = time.perf_counter() - wall, time.process_time() - client
        used = {s.name: s.cpu_seconds() - b for s, b in zip(self.servers, servers, strict=True)}
        others = machine_busy_seconds() - machine - client - sum(used.values())
        cpu["client_s"] = round(client, 2)
        cpu["servers_s"] = {name: round(v, 2) for name, v in used.items()}
        cpu["cores_busy"] = round((client + sum(used.values())) / wall, 2)
        cpu["other_processes_cores"] = round(max(others, 0.0) / wall, 2)
