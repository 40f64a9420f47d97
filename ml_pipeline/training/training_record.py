"""Writing a model's training record beside its checkpoint; the file's name and format are
defined where serving reads it (inference.training_record)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from inference.training_record import record_path
from ml_pipeline.evaluation.results import write_result


def write_training_record(
    checkpoint: Path,
    *,
    model: str,
    epochs: Sequence[Mapping[str, float]],
    metrics: Mapping[str, float],
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    protocol: str = "full_ranking, each listener's last track",
) -> Path:
    """Write the record beside `checkpoint` (atomically: readers never see half of one).
    Returns its path."""
    document = {
        "model": model,
        "trained_at": datetime.now(UTC).isoformat(),
        "protocol": protocol,
        "epochs": [{k: _number(v) for k, v in row.items()} for row in epochs],
        "metrics": {k: _number(v) for k, v in metrics.items()},
        "baselines": {
            name: {k: _number(v) for k, v in values.items()}
            for name, values in (baselines or {}).items()
        },
    }
    return write_result(document, record_path(checkpoint))


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN
