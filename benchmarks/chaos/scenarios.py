"""The faults: what each one does to the stack (kill -9 and restart, a proxy refusing or
freezing, the broker down, the relay killed while the outbox drains), and the wait after it
until requests are healthy and events reach the database again. A process that exits on its
own meanwhile is restarted like a killed one and reported."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.chaos.ledger import outbox_rows, stored_since
from benchmarks.chaos.load import Load
from benchmarks.chaos.plan import Plan, log
from benchmarks.chaos.stack import Proc, Stack
from benchmarks.common import load_average

PROXY_FAULTS = ("redis_refuse", "redis_hang", "postgres_refuse", "postgres_hang")


@dataclass
class Phase:
    name: str
    kind: str
    what: str
    start: float  # when the fault began (epoch seconds)
    end: float  # when it ended (a kill: the kill itself; the process is restarted at once)
    window_end: float = 0.0  # next phase's start
    recovered_at: float | None = None  # the live check's view (the report recomputes it)
    notes: list[str] = field(default_factory=list)
    load_start: list[float] = field(default_factory=list)
    load_end: list[float] = field(default_factory=list)
    outbox_at_kills: list[int] = field(default_factory=list)
    running_again_s: float | None = None  # a killed consumer: its restart's first poll


class Runner:
    def __init__(self, stack: Stack, load: Load, plan: Plan) -> None:
        self.stack, self.load, self.plan = stack, load, plan

    def watch(self) -> None:
        """Supervision: a process that exits on its own is restarted and the exit reported."""

        def noticed(proc: Proc, code: int) -> None:
            proc.unexpected_exits.append(
                {"at": round(time.time(), 3), "code": code, "log_tail": proc.tail(3)}
            )
            log(f"{proc.name} exited on its own ({code}); restarting it")

        self.stack.restart_exited(noticed)

    def hold(self, seconds: float) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.watch()
            time.sleep(min(0.2, max(deadline - time.time(), 0)))

    def hold_until(self, done: Callable[[], bool], limit: float) -> bool:
        deadline = time.time() + limit
        while time.time() < deadline:
            self.watch()
            try:
                if done():
                    return True
            except Exception:  # the harness's own view: never fatal
                pass
            time.sleep(0.1)
        return False

    def inject(self, name: str, kind: str) -> Phase:
        """`plan.pre_s` of steady load, the fault, then the wait for recovery (_observe)."""
        self.hold(self.plan.pre_s)
        load_start = load_average()
        start = time.time()
        phase = Phase(name, kind, "", start, start, load_start=load_start)
        log(f"fault {name}")
        if kind in ("api_kill", "consumer_kill"):
            self._kill(phase)  # phase.end stays at the kill
        elif kind in PROXY_FAULTS:
            self._proxy_outage(phase)
            phase.end = time.time()
        elif kind == "kafka_outage":
            self._kafka_outage(phase)
            phase.end = time.time()
        elif kind == "relay_kill":
            self._relay_kill(phase)  # sets phase.end
        else:
            raise ValueError(f"unknown fault {kind!r}")
        self._observe(phase)
        phase.load_end = load_average()
        return phase

    def _kill(self, phase: Phase) -> None:
        proc = self.stack.api if phase.kind == "api_kill" else self.stack.consumer
        proc.restart()
        phase.what = f"kill -9 of the {proc.name} process group, restarted at once"

    def _proxy_outage(self, phase: Phase) -> None:
        stack, outage = self.stack, self.plan.outage_s
        proxy = stack.redis if phase.kind.startswith("redis") else stack.postgres
        refuse = phase.kind.endswith("refuse")
        proxy.refuse() if refuse else proxy.hang()
        self.hold(outage)
        proxy.restore()
        phase.what = (
            f"{'refused' if refuse else 'frozen'} {phase.kind.split('_')[0]} connections for "
            f"{outage:g} s ("
            + (
                "open ones cut, new ones refused"
                if refuse
                else "open and new connections held, nothing forwarded"
            )
            + "), through the proxy"
        )

    def _kafka_outage(self, phase: Phase) -> None:
        self.stack.kafka.down()
        self.hold(self.plan.outage_s)
        self.stack.kafka.up()
        phase.what = (
            f"Kafka broker down for {self.plan.outage_s:g} s (clients disconnected, connections "
            "refused; topic data and offsets kept)"
        )

    def _relay_kill(self, phase: Phase) -> None:
        stack, limit = self.stack, self.plan.restart_observe_s
        engine = stack.engine
        stack.kafka.down()
        # Feedback reaches the outbox once a publish timed out: wait for rows there, and a
        # moment more, so the relay is blocked publishing rows it holds locked.
        self.hold_until(lambda: outbox_rows(engine) >= 10, limit)
        self.hold(1.0)
        phase.outbox_at_kills.append(outbox_rows(engine))
        stack.relay.restart()
        restarted = time.time()
        # Kafka comes back once the new relay runs (its first heartbeat), so that it is
        # publishing the outbox when it is killed again, 0.05 s later.
        self.hold_until(lambda: stack.relay.beat_since(restarted) is not None, limit)
        stack.kafka.up()
        phase.end = time.time()
        time.sleep(0.05)
        phase.outbox_at_kills.append(outbox_rows(engine))
        stack.relay.restart()
        phase.what = (
            f"Kafka down for {phase.end - phase.start:.0f} s: the outbox fills; the relay "
            "killed -9 while blocked publishing rows it holds locked, restarted at once; Kafka "
            "back once the new relay runs, which is killed -9 0.05 s later (while it retries or "
            "publishes; the moment between Kafka's acknowledgement and the delete lasts "
            "milliseconds and is not targeted) and restarted at once"
        )

    def _observe(self, phase: Phase) -> None:
        """Until requests are healthy again and events acknowledged after the fault reach the
        database (and the outbox is empty), at most max_observe_s; then settle_s more."""
        limit = self.plan.restart_observe_s if phase.kind.endswith("_kill") else None
        limit = limit or self.plan.max_observe_s
        deadline = phase.end + limit
        proc = self.stack.consumer if phase.kind == "consumer_kill" else None
        while time.time() < deadline:
            self.watch()
            if proc is not None and phase.running_again_s is None:
                phase.running_again_s = proc.beat_since(phase.end)
            if self.load.recovered(phase.end) and self._flowing(phase.end):
                phase.recovered_at = time.time()
                break
            time.sleep(0.25)
        else:
            phase.notes.append(f"not recovered within {limit:g} s of the fault's end")
        self.hold(self.plan.settle_s)

    def _flowing(self, since: float) -> bool:
        """Events stored again since `since`, and the outbox empty."""
        try:
            engine = self.stack.engine
            return stored_since(engine, since) > 0 and outbox_rows(engine) == 0
        except Exception:  # the harness's own view: never fatal
            return False
