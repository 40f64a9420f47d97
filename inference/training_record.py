"""A model's training record: its per-epoch curve (loss, and validation metrics when measured)
and its offline test metrics, as `<checkpoint>.training.json` beside the checkpoint. It travels
with the model files (the registry logs it with them), so whoever serves a model can show how
it was trained; TensorBoard keeps the full view of runs that logged there. Training writes it
(ml_pipeline.training.training_record); serving only reads it, hence here.

    {"model": "hybrid", "trained_at": "...", "protocol": "...",
     "epochs": [{"epoch": 1, "loss": 4.1, ...}], "metrics": {"ndcg@10": 0.12, ...},
     "baselines": {"most_popular": {"ndcg@10": 0.05}}}

Numbers that are not finite are null (JSON has no NaN).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".training.json"


def record_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(SUFFIX)


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
