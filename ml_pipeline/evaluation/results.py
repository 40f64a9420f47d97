"""Evaluation results as data: every evaluation command writes one JSON document per (model,
dataset, split) under results/, and docs/results.md is generated from them
(ml_pipeline.evaluation.report).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from musicrec.config import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "results"


def git_commit() -> str:
    """The checked-out commit, with "-dirty" when tracked files differ from it."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        commit = run("rev-parse", "--short", "HEAD")
        return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def result_document(
    *,
    dataset: str,
    split: str,
    model: str,
    metrics: dict[str, dict[str, float]],
    config: dict[str, Any],
    seconds: float,
    commit: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields every result file has; `metrics` maps a protocol to its metrics. `commit`:
    the code the run started from (git_commit() then); by default the one checked out now."""
    return {
        "dataset": dataset,
        "split": split,
        "model": model,
        "metrics": metrics,
        "config": config,
        "seconds": round(seconds, 1),
        **extra,
        "commit": commit or git_commit(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def result_path(document: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    split = "" if document["split"] == "leave-one-out" else "_" + document["split"]
    return results_dir / f"{document['model']}_{document['dataset']}{split}.json"


def write_result(document: dict[str, Any], path: Path | None = None) -> Path:
    """Write atomically (a reader never sees half a file) and return the path."""
    path = path or result_path(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(document, indent=2, default=str) + "\n")
    partial.replace(path)
    return path
