"""Instants as timezone-aware UTC datetimes, whatever form a database or pandas hands them in
(SQLite returns naive UTC; pandas returns Timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd


def as_utc(value: Any) -> datetime:
    """A datetime, pandas Timestamp or ISO string as an aware UTC datetime (naive means UTC)."""
    if isinstance(value, datetime) and not isinstance(value, pd.Timestamp):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()
