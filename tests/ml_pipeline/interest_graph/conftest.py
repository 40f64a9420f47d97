"""A database holding the first real MPD playlists (both backends, through `engine`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from ml_pipeline.ingest.loader import load_mpd


@pytest.fixture
def mpd(engine: Engine, shared_data: Path) -> Engine:
    load_mpd(engine, sorted((shared_data / "mpd_reduced").glob("*.json"))[:6])
    return engine
