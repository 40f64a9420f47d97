"""Fault injectors for benchmarks/chaos/: a TCP proxy whose link can be cut or frozen (Redis and
Postgres are shared with other users of the machine, so they are never stopped themselves), a
Kafka broker that can be taken down and brought back (librdkafka's mock cluster through its C
API), and the launcher of `musicrec` commands against that broker.

    python -m benchmarks.faults consume-feedback     # `musicrec consume-feedback`, mock-ready

kafka-python cannot detect the mock broker's protocol version (its probe times out, "Unable to
bootstrap"): clients must pass api_version=(2, 3). The `musicrec` commands leave it to
detection, so the launcher runs the unchanged CLI with that one default filled in for every
KafkaProducer and KafkaConsumer the process creates; nothing else differs.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

# kafka-python clients must speak this protocol version to the mock cluster.
MOCK_API_VERSION = (2, 3)


# --- TCP proxy -----------------------------------------------------------------------------------


def _spare_port() -> int:
    """A free port below the kernel's ephemeral range: after `refuse` closes the listener, no
    outgoing connection can take the port before `restore` binds it again."""
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randrange(max(low - 12000, 1024), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class FaultProxy:
    """127.0.0.1:`port` forwarded to `target`, with two faults (tests/apps/tcp_proxy.py has the
    one-way `stop`; this one comes back):

    - `refuse()`: the server is down. Open connections are cut and the port refuses new ones
      (ECONNREFUSED) until `restore()`.
    - `hang()`: the server is frozen (SIGSTOP, a full disk, a network that drops packets).
      Connections stay open and new ones are accepted, but nothing is forwarded either way;
      `restore()` delivers what waited, as a resumed server would.

    The proxy runs in a process of its own (`python -m benchmarks.faults proxy ...`, asyncio),
    so the harness's load threads cannot slow the traffic it carries; each call here returns
    once the proxy has applied the change."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _spare_port()
        self.mode = "up"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.faults", "proxy", target[0], str(target[1])]
            + [str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if line != word:
            self.close()
            raise RuntimeError(f"fault proxy to {self.target}: {line or 'exited'}")

    def _command(self, word: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(word + "\n")
        self._proc.stdin.flush()
        self._expect("ok")
        self.mode = "up" if word == "restore" else word

    def refuse(self) -> None:
        self._command("refuse")

    def hang(self) -> None:
        self._command("hang")

    def restore(self) -> None:
        self._command("restore")

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc.wait(10)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()


class _ProxyServer:
    """The proxy process: asyncio, one task per direction of each connection."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target, self.port = target, port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(
            self._link, "127.0.0.1", self.port, reuse_address=True, backlog=256
        )

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self.links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.links.discard(link)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()  # hang: held until restore
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def apply(self, command: str) -> None:
        if command == "refuse":
            if self.server is not None:
                self.server.close()
                self.server = None
            for link in list(self.links):
                for w in link:
                    w.transport.abort()
            self.flowing.set()
        elif command == "hang":
            self.flowing.clear()
        elif command == "restore":
            if self.server is None:
                await self.listen()
            self.flowing.set()
        else:
            raise ValueError(command)


def _proxy_main(host: str, port: str, listen: str) -> None:
    async def serve() -> None:
        proxy = _ProxyServer((host, int(port)), int(listen))
        await proxy.listen()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            await proxy.apply(line.strip())
            print("ok", flush=True)

    asyncio.run(serve())  # stdin closed (the harness gone): the proxy ends


# --- Kafka ---------------------------------------------------------------------------------------


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka that confluent-kafka bundles (its mock cluster functions are exported)."""
    import confluent_kafka

    package = Path(confluent_kafka.__file__).resolve().parent
    found = sorted((package.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not found:
        raise RuntimeError(f"librdkafka not found beside {package}")
    lib = ctypes.CDLL(str(found[0]))
    void, text = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_conf_new.restype = void
    lib.rd_kafka_conf_set.argtypes = [void, text, text, text, ctypes.c_size_t]
    lib.rd_kafka_new.restype = void
    lib.rd_kafka_new.argtypes = [ctypes.c_int, void, text, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [void]
    lib.rd_kafka_mock_cluster_new.restype = void
    lib.rd_kafka_mock_cluster_new.argtypes = [void, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [void]
    lib.rd_kafka_mock_cluster_bootstraps.restype = text
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [void]
    for name in ("rd_kafka_mock_broker_set_down", "rd_kafka_mock_broker_set_up"):
        getattr(lib, name).argtypes = [void, ctypes.c_int32]
    return lib


class MockKafka:
    """A one-broker librdkafka mock cluster (topics auto-created with 4 partitions) that lives
    in this process until close(). `down()` disconnects every client and refuses new
    connections, keeping the topics, messages and committed offsets; `up()` accepts them again.
    confluent-kafka's Python API can start such a cluster but not stop its broker, hence the C
    API through ctypes."""

    BROKER_ID = 1

    def __init__(self) -> None:
        self._lib = _librdkafka()
        error = ctypes.create_string_buffer(512)
        conf = self._lib.rd_kafka_conf_new()
        self._lib.rd_kafka_conf_set(conf, b"log_level", b"3", error, len(error))
        self._rk = self._lib.rd_kafka_new(0, conf, error, len(error))  # 0: a producer handle
        if not self._rk:
            raise RuntimeError(f"librdkafka: {error.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._rk, 1)
        if not self._cluster:
            self._lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("librdkafka could not start a mock cluster")
        self.bootstrap = self._lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def down(self) -> None:
        self._call("rd_kafka_mock_broker_set_down")

    def up(self) -> None:
        self._call("rd_kafka_mock_broker_set_up")

    def _call(self, name: str) -> None:
        code = getattr(self._lib, name)(self._cluster, self.BROKER_ID)
        if code:
            raise RuntimeError(f"{name}: librdkafka error {code}")

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None


# --- the launcher --------------------------------------------------------------------------------


def _default_api_version() -> None:
    """Every KafkaProducer and KafkaConsumer created from now on gets MOCK_API_VERSION unless
    its caller names a version."""
    import kafka

    def patch(cls: Any) -> None:
        original = cls.__init__

        def init(self: Any, *args: Any, **config: Any) -> None:
            if config.get("api_version") is None:
                config["api_version"] = MOCK_API_VERSION
            original(self, *args, **config)

        cls.__init__ = init

    patch(kafka.KafkaProducer)
    patch(kafka.KafkaConsumer)


def main(argv: list[str] | None = None) -> None:
    """`musicrec <argv>` with kafka-python clients ready for the mock broker; or, with
    `proxy HOST PORT LISTEN_PORT`, the fault proxy's process."""
    import warnings

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["proxy"]:
        _proxy_main(*args[1:4])
        return

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    _default_api_version()
    from apps.cli import app

    app(args, prog_name="musicrec")


if __name__ == "__main__":
    main()
