"""Experiment tracking for training runs: TensorBoard event files (loss, validation metrics and
learning rate per epoch) and an MLflow run (parameters, metrics, checkpoint and ONNX artifacts, a
registered model version). Locations come from the settings (`musicrec.config`).

    with TrainingRun("sasrec-mpd", params) as run:
        run.log_epoch(row, lr)           # every epoch
        run.log_metrics(test_metrics)    # at the end
        version = run.register(checkpoint, onnx_files)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from inference.files import ServingFiles
from musicrec.config import Settings, get_settings

# MLflow and its dependencies log at INFO on import and on every run: keep the console readable.
for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def flatten_metrics(
    metrics: Mapping[str, Mapping[str, float]], prefix: str = ""
) -> dict[str, float]:
    """{"full_ranking": {"ndcg@10": x}} -> {"test_full_ranking_ndcg_10": x}: MLflow metric names
    allow no "@"."""
    return {
        f"{prefix}{protocol}_{name}".replace("@", "_"): float(value)
        for protocol, values in metrics.items()
        for name, value in values.items()
    }


class TrainingRun:
    """One training run in TensorBoard and MLflow; a context manager that ends both."""

    def __init__(
        self, name: str, params: Mapping[str, Any], settings: Settings | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.name = name
        self.params = dict(params)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.tensorboard_dir = self.settings.tensorboard_dir / f"{name}-{stamp}"

    def __enter__(self) -> TrainingRun:
        import mlflow
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir))
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        # set_tracking_uri also exports MLFLOW_TRACKING_URI, which later Settings() of this
        # process would read: restored on exit.
        self._env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.settings.mlflow_tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.settings.mlflow_experiment)
        if experiment is None:
            root = self.settings.mlflow_artifact_root
            assert root is not None  # derived by the settings
            if "://" not in root:  # a local folder (else an object store URI, e.g. s3://)
                folder = Path(root)
                folder.mkdir(parents=True, exist_ok=True)
                root = folder.resolve().as_uri()
            mlflow.create_experiment(self.settings.mlflow_experiment, root)
        mlflow.set_experiment(self.settings.mlflow_experiment)
        self.run = mlflow.start_run(run_name=self.name)
        mlflow.log_params(self.params)
        mlflow.set_tag("tensorboard_dir", str(self.tensorboard_dir))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        import mlflow

        self.writer.close()
        mlflow.end_run(status="FINISHED" if exc is None else "FAILED")
        if self._env_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self._env_uri

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    def log_epoch(self, row: Mapping[str, float], lr: float) -> None:
        import mlflow

        step = int(row["epoch"])
        values = {k.replace("@", "_"): v for k, v in row.items() if k != "epoch"} | {"lr": lr}
        for key, value in values.items():
            self.writer.add_scalar(key.replace("valid_", "valid/"), value, step)
        self.writer.flush()
        mlflow.log_metrics(values, step=step)

    def log_metrics(
        self, metrics: Mapping[str, Mapping[str, float]], prefix: str = "test_"
    ) -> None:
        import mlflow

        flat = flatten_metrics(metrics, prefix)
        for key, value in flat.items():
            self.writer.add_scalar(key.replace(prefix, prefix.rstrip("_") + "/", 1), value)
        mlflow.log_metrics(flat)

    def register(
        self,
        checkpoint: Path,
        extra_files: Sequence[Path] = (),
        folders: Mapping[str, Path] | None = None,
    ) -> int:
        """Log the checkpoint (and e.g. its ONNX exports) under the run's `model` artifact
        folder, and each of `folders` as its subfolder of that name (e.g. the two-stage
        recommender trained with it), and register it all as a new version of the settings'
        registered model. Returns the version number; promotion (aliases) is a separate step."""
        import mlflow
        from mlflow.exceptions import MlflowException

        # With every file serving reads beside the checkpoint, whoever exported them: the
        # version is downloaded as this folder and served from it (inference.model).
        runtime = [p for p in ServingFiles(checkpoint).runtime() if p.is_file()]
        for path in dict.fromkeys([checkpoint, *extra_files, *runtime]):
            mlflow.log_artifact(str(path), artifact_path="model")
        for name, folder in (folders or {}).items():
            mlflow.log_artifacts(str(folder), artifact_path=f"model/{name}")
        client = mlflow.MlflowClient()
        name = self.settings.registered_model_name
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        # The low-level call: MLflow 3's register_model() wants an MLflow-format logged model.
        version = client.create_model_version(
            name, source=f"{self.run.info.artifact_uri}/model", run_id=self.run_id
        )
        return int(version.version)
