"""A model's training record: its per-epoch curve (loss, and validation metrics when measured)
and its offline test metrics, as `<checkpoint>.training.json` beside the checkpoint. It travels
with the model files (the registry logs it with them), so whoever serves a model can show how
it was trained; TensorBoard keeps the full view of runs that logged there.

    {"model": "hybrid", "trained_at": "...", "epochs": [{"epoch": 1, "loss": 4.1, ...}],
     "metrics": {"ndcg@10": 0.12, ...}, "baselines": {"most_popular": {"ndcg@10": 0.05}}}
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_pipeline.evaluation.results import write_result

log = logging.getLogger(__name__)

SUFFIX = ".training.json"


def record_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(SUFFIX)


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


def read_training_record(checkpoint: Path) -> dict[str, Any] | None:
    """The record beside `checkpoint`; None when there is none or it cannot be read."""
    path = record_path(checkpoint)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable training record: %s", path, exc)
        return None
    return document if isinstance(document, dict) else None


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN
