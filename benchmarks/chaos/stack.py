"""The services-mode stack under test: a Postgres schema and a Redis project of its own behind
fault proxies, the mock Kafka broker, and the `musicrec` processes (`serve`, `consume-feedback`,
`relay-outbox`), each in a process group of its own that can be killed -9 and restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.chaos.plan import TRACKS, log
from benchmarks.faults import FaultProxy, MockKafka
from musicrec.config import REPO_ROOT


class Proc:
    """A `musicrec` command (through benchmarks.faults' launcher) in a process group of its
    own, so kill -9 takes the whole group; its output appended to log_dir/<name>.log."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path):
        self.name, self.args, self.env = name, list(args), env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.unexpected_exits: list[dict[str, Any]] = []

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log_file:
            log_file.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            log_file.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.faults", *self.args],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill9(self) -> None:
        if self.proc is not None:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def restart(self) -> None:
        """kill -9 and start again at once, as a supervisor would."""
        self.kill9()
        self.start()

    def beat_since(self, moment: float) -> float | None:
        """Seconds from `moment` to the process's first heartbeat after it (None: none yet, or
        no heartbeat file)."""
        if "--heartbeat-file" not in self.args:
            return None
        path = Path(self.args[self.args.index("--heartbeat-file") + 1])
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        return round(mtime - moment, 2) if mtime >= moment else None

    def exited(self) -> int | None:
        """The exit code if the process ended (not by our kill), else None."""
        return None if self.proc is None else self.proc.poll()

    def signal_group(self, signum: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 5) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []


def stop_all(procs: Sequence[Proc], grace_s: float = 10.0) -> None:
    """SIGTERM to every process group at once, up to `grace_s` in all for them to end, then
    SIGKILL to whatever is left of each group."""
    started = [(p, p.proc) for p in procs if p.proc is not None]
    for p, popen in started:
        if popen.poll() is None:
            p.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for _, popen in started:
        _wait(popen, max(deadline - time.monotonic(), 0.1))
    for p, popen in started:
        p.signal_group(signal.SIGKILL)  # whatever is left of the group
        _wait(popen, 10)


def _wait(popen: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        popen.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class Stack:
    settings: Any  # musicrec.config.Settings, direct to Postgres and Redis (the harness's view)
    engine: Any  # sqlalchemy Engine, direct
    kafka: MockKafka
    postgres: FaultProxy
    redis: FaultProxy
    api: Proc
    consumer: Proc
    relay: Proc
    api_port: int
    key: str
    topic: str
    log_dir: Path

    @property
    def procs(self) -> list[Proc]:
        return [self.api, self.consumer, self.relay]

    def restart_exited(self, noticed: Callable[[Proc, int], None] | None = None) -> None:
        """Start again each process that ended on its own (as compose or Kubernetes would),
        telling `noticed` (the process and its exit code) first."""
        for proc in self.procs:
            code = proc.exited()
            if code is not None:
                if noticed is not None:
                    noticed(proc, code)
                proc.start()


def _model(folder: Path) -> Path:
    """An untrained SASRec over the serving setup's 36 tracks, exported for serving."""
    import torch

    from ml_pipeline.export.serving import export_serving
    from ml_pipeline.models.sasrec import SASRec, SASRecConfig
    from tests.apps.serving_env import uri

    path = folder / "model" / "sasrec.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = SASRecConfig(
        n_items=TRACKS, embedding_dim=32, max_seq_len=10, num_layers=1, num_heads=1
    )
    model = SASRec(config).eval()
    vocabulary = ["<pad>", *[uri(i) for i in range(TRACKS)]]
    model.save(path, vocabulary)
    export_serving(model, path, vocabulary)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(stack: Stack, timeout: float = 240.0) -> None:
    from benchmarks.serving import _get

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = stack.api.exited()
        if code is not None:
            raise RuntimeError(f"the API exited ({code}): {stack.api.tail()}")
        try:
            if _get(stack.api_port, "/healthz", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the API is not ready after {timeout:.0f} s: {stack.api.tail()}")


@contextmanager
def services_stack(
    folder: Path, log_dir: Path, process_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Everything up (the API answering /healthz); everything stopped and removed afterwards,
    whatever happened (process groups killed, proxies closed, broker, schema and Redis keys
    dropped). `process_env`: settings for the `musicrec` processes beyond the harness's."""
    from apps.api.security import ApiKeys
    from benchmarks.common import scratch_schema
    from benchmarks.serving import _server_env
    from feature_store.store import open_store
    from tests.apps.serving_env import build_env

    with ExitStack() as cleanup:
        kafka = MockKafka()
        cleanup.callback(kafka.close)
        engine = cleanup.enter_context(scratch_schema())
        log("loading the serving setup (Postgres schema, Redis project, model)")
        with redirect_stdout(sys.stderr):  # Feast prints progress; stdout is for the result
            model = _model(folder)
            env = build_env("services", folder, model, engine)
        cleanup.callback(lambda: open_store(env.settings).teardown())
        postgres = FaultProxy((engine.url.host or "127.0.0.1", engine.url.port or 5432))
        cleanup.callback(postgres.close)
        redis_proxy = FaultProxy((env.settings.feast_redis_host or "127.0.0.1", 6379))
        cleanup.callback(redis_proxy.close)
        key = ApiKeys(engine, 0).create("chaos")

        proxied = env.settings.model_copy(
            update={
                "database_url": engine.url.set(port=postgres.port).render_as_string(
                    hide_password=False
                )
            }
        )
        topic = f"chaos-{uuid.uuid4().hex[:8]}"
        environ = _server_env(proxied) | {
            "FEAST_REDIS_PORT": str(redis_proxy.port),
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "KAFKA_FEEDBACK_TOPIC": topic,
            # The load uses one key: its rate limit out of the way (the default is 100/s).
            "RATE_LIMIT_PER_SECOND": "100000",
            "RATE_LIMIT_BURST": "100000",
            "PYTHONUNBUFFERED": "1",
            "PYTHONOPTIMIZE": "1",  # as deployed (the image): a restart's start-up time
            **(process_env or {}),
        }
        api_port = _free_port()
        api = Proc(
            "api", ["serve", "--host", "127.0.0.1", "--port", str(api_port)], environ, log_dir
        )
        # Touched after every poll: when a restarted process is running again.
        beat = ["--heartbeat-file"]
        consumer = Proc(
            "consumer",
            ["consume-feedback", *beat, str(log_dir / "consumer.beat")],
            environ,
            log_dir,
        )
        relay = Proc(
            "relay", ["relay-outbox", *beat, str(log_dir / "relay.beat")], environ, log_dir
        )
        stack = Stack(
            env.settings, engine, kafka, postgres, redis_proxy, api, consumer, relay, api_port,
            key, topic, log_dir,
        )  # fmt: skip
        # Registered first, so it runs after a start below fails too.
        cleanup.callback(stop_all, stack.procs)
        for proc in stack.procs:
            proc.start()
        cleanup.callback(log, "stopping the stack")  # runs first
        log(f"waiting for the API on port {api_port} (logs: {log_dir})")
        _wait_ready(stack)
        yield stack
