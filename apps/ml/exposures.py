"""Exposures: which model version answered which listener with which tracks, and when (this
server's clock, not the client's). The promotion job (ml_pipeline/jobs/promote.py) compares the
canary with production on the listeners each version actually served.

Logging must never slow or fail a request: `record` only puts the exposure on a bounded queue
(when it is full, the exposure is dropped and counted); a background thread writes the queue
to the `exposures` table in batches every FLUSH_SECONDS, and at `close` what is left. A
failed write is logged and counted, and its batch dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table

from apps.ml import metrics
from musicrec.db.models import Exposure

log = logging.getLogger(__name__)

EXPOSURES = cast(Table, Exposure.__table__)
# At most this many answers wait in memory (about 1 kB each at k=10; 20 kB at k=500).
MAX_QUEUED = 5_000
BATCH_ROWS = 500
FLUSH_SECONDS = 1.0


class ExposureLog:
    def __init__(
        self, engine: Engine, max_queued: int = MAX_QUEUED, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.engine = engine
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queued)
        self._write_lock = threading.Lock()  # the writer thread's flush and an explicit one
        self._stop = threading.Event()
        self._flush_seconds = flush_seconds
        self._writer = threading.Thread(target=self._run, name="exposure-writer", daemon=True)
        self._writer.start()

    def record(
        self, user_id: str, model_version: str, tracks: list[str], request_id: str | None = None
    ) -> None:
        row = {
            "served_at": datetime.now(UTC),
            "user_id": user_id,
            "model_version": model_version,
            "request_id": request_id,
            "tracks": tracks,
        }
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            metrics.EXPOSURES.labels(outcome="dropped").inc()

    def flush(self) -> None:
        """Write everything queued so far, BATCH_ROWS to a transaction."""
        with self._write_lock:
            while batch := self._take(BATCH_ROWS):
                try:
                    with self.engine.begin() as conn:
                        conn.execute(EXPOSURES.insert(), batch)
                except Exception as exc:  # the database is down or slow: serving goes on
                    log.warning("%d exposures not written: %s", len(batch), exc)
                    metrics.EXPOSURES.labels(outcome="failed").inc(len(batch))
                else:
                    metrics.EXPOSURES.labels(outcome="written").inc(len(batch))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, waiting at most `timeout`: a hung database must not hang the
        shutdown (the writer thread makes the last write, and is left to it)."""
        self._stop.set()
        self._writer.join(timeout)
        if self._writer.is_alive():
            log.warning("exposure writer still busy at close: queued exposures may be lost")

    def _take(self, n: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < n:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()
        self.flush()  # what was left at close
