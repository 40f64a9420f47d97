"""The exposure log: model answers written in batches off the request path, on both backends;
a full queue or a failing database never fails the caller."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from apps.ml import metrics
from apps.ml.exposures import EXPOSURES, ExposureLog
from musicrec.db.engine import make_engine
from tests.conftest import backends


def _count(outcome: str) -> float:
    return metrics.EXPOSURES.labels(outcome=outcome)._value.get()


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite gives naive UTC back


@backends
def test_exposures_are_written_in_the_background_and_on_close(engine: Engine) -> None:
    log = ExposureLog(engine, flush_seconds=0.05)
    before = datetime.now(UTC)
    log.record("tests:u1", "musicrec-sasrec@v2", ["spotify:track:a", "spotify:track:b"], "r-1")
    log.record("tests:u2", "musicrec-sasrec@v1", ["spotify:track:c"])
    log.close()
    with engine.connect() as conn:
        rows = conn.execute(select(EXPOSURES).order_by(EXPOSURES.c.id)).all()
    assert [(r.user_id, r.model_version, r.tracks, r.request_id) for r in rows] == [
        ("tests:u1", "musicrec-sasrec@v2", ["spotify:track:a", "spotify:track:b"], "r-1"),
        ("tests:u2", "musicrec-sasrec@v1", ["spotify:track:c"], None),
    ]
    assert all(before <= _aware(r.served_at) <= datetime.now(UTC) for r in rows)


def test_a_full_queue_drops_and_a_failed_write_is_counted(engine: Engine, tmp_path: Path) -> None:
    log = ExposureLog(engine, max_queued=2, flush_seconds=3600)  # flushed by hand only
    dropped = _count("dropped")
    for n in range(3):
        log.record(f"u{n}", "v1", ["spotify:track:a"])
    assert _count("dropped") == dropped + 1
    log.close()

    unmigrated = ExposureLog(make_engine(f"sqlite:///{tmp_path / 'none.db'}"), flush_seconds=3600)
    failed = _count("failed")
    unmigrated.record("u1", "v1", ["spotify:track:a"])
    unmigrated.close()  # no table: logged and counted, not raised
    assert _count("failed") == failed + 1
