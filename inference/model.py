"""The production model: where it is, and loaded for serving.

Where: SEQUENTIAL_MODEL_PATH when set; else the registered model's version under the MLflow
alias (MODEL_ALIAS, default `production`), downloaded once into var/serving/; else the demo's
var/models/hybrid.pt when present. None of them: the service serves popularity.

Loaded: the int8 ONNX scoring graph (with its in-graph top candidates) in onnxruntime, the item
vocabulary, unit item vectors (for "because you played X"), and, for a hybrid checkpoint, the
text path that reads /predict seeds the catalog does not know.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from musicrec.config import Settings
from musicrec.errors import UserError

if TYPE_CHECKING:
    from ml_pipeline.export.onnx import OnnxScorer
    from ml_pipeline.models.cold_start import ColdStartRecommender
    from ml_pipeline.models.text_encoder import TextEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    checkpoint: Path
    version: str  # changes whenever the model does: what hot reload compares
    registered: int | None = None  # the MLflow model version, for a registered model


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
    baked = checkpoint.with_suffix(".serving.pt")
    serving = baked if baked.is_file() else checkpoint
    return serving, serving.with_suffix(".int8.onnx")


def file_source(checkpoint: Path) -> ModelSource:
    serving, graph = serving_files(checkpoint)
    for path in (checkpoint, graph):
        if not path.is_file():
            raise UserError(f"{path}: no such model file (train and export the model first)")
    stamp = max(p.stat().st_mtime_ns for p in (checkpoint, serving, graph))
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
    return ModelSource(checkpoints[0], f"{name}@v{number}", registered=number)


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
    text_path: ColdStartRecommender | None = None  # a hybrid's: seeds read from text
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def load(
        cls, source: ModelSource, engine: Engine, encoder: TextEncoder | None = None
    ) -> ServingModel:
        """`encoder`: a TextEncoder to share across reloads (loading one takes seconds)."""
        import torch

        from ml_pipeline.export.onnx import OnnxScorer, load_checkpoint
        from ml_pipeline.models.cold_start import ColdStartRecommender

        serving, graph = serving_files(source.checkpoint)
        model, vocabulary, _ = load_checkpoint(serving)
        with torch.no_grad():
            vectors = model.all_item_vectors().numpy().astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.maximum(norms, 1e-12)
        text_path = None
        if serving != source.checkpoint:  # a hybrid: unknown seeds are read from their text
            text_path = ColdStartRecommender(source.checkpoint, engine, encoder)
        index = {uri: i for i, uri in enumerate(vocabulary) if i}
        return cls(source, vocabulary, index, OnnxScorer(graph), unit, text_path)

    @property
    def version(self) -> str:
        return self.source.version

    @property
    def n_items(self) -> int:
        return len(self.vocabulary) - 1

    def candidates(self, items: list[int], n: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The n best next items after a history of item ids (oldest first), best first."""
        from ml_pipeline.data.sequences import pad_left

        seqs = pad_left([items], self.scorer.max_len)
        scores, best = self.scorer.top_k(seqs, min(n, self.n_items))
        return best[0], scores[0]

    def because(self, picks: list[int], history: list[int]) -> list[int]:
        """For each picked item, the history item most like it (by item vectors)."""
        similarity = self.unit_vectors[picks] @ self.unit_vectors[history].T
        return [history[j] for j in similarity.argmax(axis=1)]
