"""Scheduled jobs never overlap: the second run of a job fails at once while the first runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from musicrec.config import Settings
from musicrec.joblock import JobLocked, job_lock
from tests.conftest import backends


@backends
def test_a_second_run_is_refused_until_the_first_ends(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    with job_lock("retrain", engine, settings):
        with pytest.raises(JobLocked, match="another retrain run is in progress"):
            with job_lock("retrain", engine, settings):
                pass
        with job_lock("materialize", engine, settings):  # other jobs are independent
            pass
    with job_lock("retrain", engine, settings):  # released
        pass


@backends
def test_the_lock_is_released_when_the_job_fails(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    with pytest.raises(RuntimeError), job_lock("promote", engine, settings):
        raise RuntimeError("job failed")
    with job_lock("promote", engine, settings):
        pass
