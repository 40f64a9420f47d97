"""Running the ASGI apps under uvicorn: in the foreground (the `serve` commands) or in a
background thread (the demo, tests)."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from musicrec.errors import UserError

log = logging.getLogger(__name__)

FACTORY_VARIABLE = "MUSICREC_APP_FACTORY"  # module:function of the app a server process runs


def run_server(
    factory: str,
    host: str,
    port: int,
    workers: int,
    *,
    embedded_only_single: bool = False,
    worker_healthcheck_timeout_seconds: float = 60.0,
) -> None:
    if embedded_only_single and workers > 1:
        # Each worker would run its own in-process event queue consumer on the same file.
        raise UserError("--workers > 1 needs services mode (KAFKA_BOOTSTRAP_SERVERS)")
    if not sys.flags.optimize:
        # Feast's @typechecked classes are re-parsed and recompiled by typeguard at import
        # unless Python runs optimized: about 2.5 s of CPU per process (the image sets it).
        log.warning("start-up is slower without PYTHONOPTIMIZE=1 (see docs/operations.md)")
    # Every process that serves (this one, or each worker uvicorn spawns) calls the guarded
    # factory, which blocks torch before it imports the app: the variable carries the factory
    # to spawned workers.
    os.environ[FACTORY_VARIABLE] = factory
    uvicorn.run(
        f"{__name__}:guarded_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvicorn's 5 s kills workers still loading the model on a busy machine, forever.
        timeout_worker_healthcheck=max(1, round(worker_healthcheck_timeout_seconds)),
        log_level="info",
        access_log=False,  # per-request logs cost more than the request; /metrics counts them
    )


def guarded_factory() -> Any:
    """The app of the factory `run_server` was given, built with torch and transformers blocked
    (inference.guard): a serving process runs on numpy and onnxruntime."""
    from inference import guard

    if loaded := guard.install():
        log.warning("loaded before the serving guard: %s", ", ".join(loaded))
    target = os.environ.get(FACTORY_VARIABLE, "")
    module, _, name = target.partition(":")
    if not module or not name:
        raise RuntimeError(f"{FACTORY_VARIABLE} must name an app factory as module:function")
    return getattr(importlib.import_module(module), name)()


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        """Shut the server down and wait for it: when this returns, nothing answers on the port
        (setting should_exit alone left it answering for a while on a busy machine)."""
        self.server.should_exit = True
        self.thread.join(15)


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """`preferred` if it can be bound, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise UserError(f"no free port on {host}")


@contextmanager
def serve_in_background(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[Served]:
    """An ASGI app under uvicorn in a thread (start-up complete on entry) until the block
    ends. Port 0: a free one."""
    port = free_port(host, port)
    server = _ThreadServer(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise UserError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    served = Served(f"http://{host}:{port}", server, thread)
    try:
        yield served
    finally:
        served.stop()
