"""The load: open-loop recommendation and feedback requests at fixed rates for the whole run,
each recorded as a Call (status, connection error or timeout, latency from its due time, the
event_ids a feedback request carried)."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.chaos.plan import CLIENT_TIMEOUT_S, HEALTHY_LATENCY_S, LISTENERS, TRACKS, Plan


@dataclass
class Call:
    kind: str  # "rec" or "feedback"
    due: float  # epoch seconds
    done: float = 0.0
    status: int | None = None
    error: str | None = None  # refused, reset, timeout, or the exception's name
    fallback: bool = False
    event_ids: tuple[str, ...] = ()
    # When it counts for the report: its due time, or the start of a fault that began while
    # it was in flight (a request cut by a kill belongs to the kill, not to the steady load).
    key: float = 0.0

    @property
    def latency(self) -> float:
        return self.done - self.due

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def healthy(self) -> bool:
        return self.ok and self.latency <= HEALTHY_LATENCY_S


class Load:
    """Open-loop requests at fixed rates until stop(); each recorded as a Call when answered
    (or failed). Latency counts from the due time, so a backlog in this client shows too."""

    def __init__(self, port: int, key: str, plan: Plan, seed: int = 0) -> None:
        from tests.apps.serving_env import uri

        self.port, self.key, self.plan = port, key, plan
        self.rng = random.Random(seed)  # its calls are atomic: shared by the load's threads
        self.tracks = [uri(i) for i in range(TRACKS)]
        self.calls: list[Call] = []
        self.pending: dict[int, Call] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Enough threads for every request of a client timeout in flight at once: a hung server
        # must not make this client queue requests (and report its own backlog as latency).
        per_second = plan.rec_per_s + plan.events_per_s / plan.batch
        workers = int(per_second * (CLIENT_TIMEOUT_S + 2))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._schedule, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True)  # every request ends within the client timeout

    def _schedule(self) -> None:
        rec_every = 1 / self.plan.rec_per_s
        fb_every = self.plan.batch / self.plan.events_per_s
        next_rec = next_fb = time.time()
        while not self._stopping.is_set():
            now = time.time()
            while next_rec <= now:
                self._submit(self._recommend, Call("rec", next_rec))
                next_rec += rec_every
            while next_fb <= now:
                self._submit(self._feedback, Call("feedback", next_fb))
                next_fb += fb_every
            time.sleep(max(min(next_rec, next_fb) - time.time(), 0.0))

    def _submit(self, send: Callable[[Call], None], call: Call) -> None:
        with self._lock:
            self.pending[id(call)] = call
        self._pool.submit(send, call)

    def _recommend(self, call: Call) -> None:
        user = f"u{self.rng.randrange(LISTENERS)}"
        self._request(call, "GET", f"/v1/users/{user}/recommendations?k=10", None)

    def _feedback(self, call: Call) -> None:
        at = datetime.now(UTC).isoformat()
        events = []
        for _ in range(self.plan.batch):
            events.append(
                {
                    "event_id": str(uuid.uuid4()),
                    "user_id": f"u{self.rng.randrange(LISTENERS)}",
                    "track_id": self.rng.choice(self.tracks),
                    "event_type": "play",
                    "occurred_at": at,
                    "ms_played": 180_000,
                }
            )
        call.event_ids = tuple(str(e["event_id"]) for e in events)
        self._request(call, "POST", "/v1/feedback", json.dumps({"events": events}).encode())

    def _request(self, call: Call, method: str, path: str, body: bytes | None) -> None:
        headers = {"X-API-Key": self.key}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            call.status = reply.status
            if call.kind == "rec" and reply.status == 200:
                call.fallback = bool(json.loads(data).get("fallback"))
        except ConnectionRefusedError:
            call.error = "refused"
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            call.error = "reset"
        except TimeoutError:
            call.error = "timeout"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            call.error = type(exc).__name__
        finally:
            call.done = time.time()
            conn.close()
            with self._lock:
                self.calls.append(call)
                self.pending.pop(id(call), None)

    def snapshot(self) -> tuple[list[Call], list[Call]]:
        with self._lock:
            return list(self.calls), list(self.pending.values())

    def recovered(self, since: float, window: float = 1.0) -> bool:
        """Whether every request of each kind due in the last `window` seconds (and after
        `since`) was healthy, with none older in flight."""
        now = time.time()
        done, pending = self.snapshot()
        if any(c.due < now - HEALTHY_LATENCY_S for c in pending):
            return False
        start = max(since, now - window - HEALTHY_LATENCY_S)
        for kind in ("rec", "feedback"):
            recent = [c for c in done if c.kind == kind and c.due >= start]
            if not recent or not all(c.healthy for c in recent):
                return False
        return True
