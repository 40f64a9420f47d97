"""The production model: where it is, and loaded for serving.

Where: SEQUENTIAL_MODEL_PATH when set; else the registered model's version under the MLflow
alias (MODEL_ALIAS, default `production`), downloaded once into var/serving/ (with the two-stage
recommender trained with it, when the version has one); else the demo's var/models/hybrid.pt
when present. None of them: the service serves popularity.

Loaded from the files exported beside the checkpoint (inference.files), never the checkpoint
itself: the int8 ONNX scoring graph (with its in-graph top candidates) in onnxruntime, the item
vocabulary, unit item vectors (for "because you played X"), and, for a hybrid, the text path
that reads /predict seeds the catalog does not know (inference.cold_start).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from inference.cold_start import TextSeeds
from inference.files import ServingFiles
from inference.scoring import OnnxScorer, pad_left
from musicrec.config import Settings
from musicrec.errors import UserError

log = logging.getLogger(__name__)

# A registered version's two-stage recommender: a folder beside its checkpoint, logged with it
# by the retraining job, so one version number is the pair.
RECOMMENDER_DIR = "recommender"


@dataclass(frozen=True)
class ModelSource:
    checkpoint: Path
    version: str  # changes whenever the model does: what hot reload compares
    registered: int | None = None  # the MLflow model version, for a registered model
    # The two-stage recommender trained with it (a registered version's `recommender/`).
    recommender: Path | None = None


def locate_model(settings: Settings) -> ModelSource | None:
    if settings.sequential_model_path is not None:
        return file_source(settings.sequential_model_path)
    registered = _registered_source(settings)
    if registered is not None:
        return registered
    demo = settings.var_dir / "models" / "hybrid.pt"
    return file_source(demo) if demo.is_file() else None


def serving_files(checkpoint: Path) -> tuple[Path, Path]:
    """(serving checkpoint, its int8 graph): a hybrid serves as the SASRec written beside it."""
    files = ServingFiles(checkpoint)
    return files.serving, files.graph


def file_source(checkpoint: Path) -> ModelSource:
    files = ServingFiles(checkpoint)
    for path in (checkpoint, files.graph):
        if not path.is_file():
            raise UserError(f"{path}: no such model file (train and export the model first)")
    present = [p for p in (checkpoint, files.serving, *files.runtime()) if p.is_file()]
    stamp = max(p.stat().st_mtime_ns for p in present)
    changed = datetime.fromtimestamp(stamp / 1e9, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return ModelSource(checkpoint, f"{checkpoint.stem}@{changed}")


def locate_canary(settings: Settings) -> ModelSource | None:
    """The registered model's `canary` version, when the registry has one (a model given by
    SEQUENTIAL_MODEL_PATH has no canary)."""
    if settings.sequential_model_path is not None or settings.canary_share <= 0:
        return None
    return _registered_source(settings, "canary")


def in_canary(user_id: str, share: float) -> bool:
    """Whether a listener is in the canary's share: a stable hash, so a listener keeps one
    model for the whole canary (and the promotion job can tell the groups apart)."""
    bucket = int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:4], "big")
    return bucket / 2**32 < share


def _registered_source(settings: Settings, alias: str | None = None) -> ModelSource | None:
    """The alias's model version, its artifacts downloaded once per version."""
    if not registry_exists(settings):
        return None
    uri = settings.mlflow_tracking_uri
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    name, alias = settings.registered_model_name, alias or settings.model_alias
    try:
        version = MlflowClient(uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs
    folder = settings.var_dir / "serving" / f"{name}-v{version.version}"
    if not folder.is_dir():
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        download_artifacts(artifact_uri=version.source, dst_path=str(partial), tracking_uri=uri)
        partial.rename(folder)  # a folder that exists is complete
    checkpoints = [p for p in folder.rglob("*.pt") if not p.name.endswith(".serving.pt")] or list(
        folder.rglob("*.pt")
    )
    if not checkpoints:
        raise UserError(f"model version {version.version} of {name} has no checkpoint")
    number = int(version.version)
    recommender = checkpoints[0].parent / RECOMMENDER_DIR
    return ModelSource(
        checkpoints[0],
        registered_name(name, number),
        registered=number,
        recommender=recommender if recommender.is_dir() else None,
    )


def registered_name(name: str, version: int) -> str:
    """A registered version as answers (and exposures) name it."""
    return f"{name}@v{version}"


def registry_exists(settings: Settings) -> bool:
    """False for a local registry file not created yet: asking MLflow would create an empty
    one. A server (or any other URI) is taken to exist."""
    uri = settings.mlflow_tracking_uri
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


@dataclass
class ServingModel:
    source: ModelSource
    vocabulary: list[str]
    index: dict[str, int]
    scorer: OnnxScorer
    unit_vectors: NDArray[np.float32]  # [n_items + 1, d], rows of norm 1
    text_path: TextSeeds | None = None  # a hybrid's: seeds read from text
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def load(cls, source: ModelSource, engine: Engine) -> ServingModel:
        files = ServingFiles(source.checkpoint)
        if missing := files.missing():
            names = ", ".join(p.name for p in missing)
            raise UserError(
                f"{source.checkpoint}: the files serving reads are missing ({names}): a model "
                f"exported before they existed; {files.rewrite_hint()}"
            )
        with np.load(files.items, allow_pickle=False) as saved:
            vocabulary = [str(uri) for uri in saved["vocabulary"]]
            vectors = saved["vectors"].astype(np.float32)
        scorer = OnnxScorer(files.graph)
        files.check_items(files.graph, scorer.n_items + 1, len(vocabulary) - 1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.maximum(norms, 1e-12)
        text_path = TextSeeds(files, vocabulary, vectors, engine) if files.hybrid else None
        index = {uri: i for i, uri in enumerate(vocabulary) if i}
        return cls(source, vocabulary, index, scorer, unit, text_path)

    @property
    def version(self) -> str:
        return self.source.version

    @property
    def n_items(self) -> int:
        return len(self.vocabulary) - 1

    def candidates(self, items: list[int], n: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The n best next items after a history of item ids (oldest first), best first."""
        seqs = pad_left([items], self.scorer.max_len)
        scores, best = self.scorer.top_k(seqs, min(n, self.n_items))
        return best[0], scores[0]

    def because(self, picks: list[int], history: list[int]) -> list[int]:
        """For each picked item, the history item most like it (by item vectors)."""
        similarity = self.unit_vectors[picks] @ self.unit_vectors[history].T
        return [history[j] for j in similarity.argmax(axis=1)]
