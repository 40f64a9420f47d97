"""What the ML service tells the operations view about its models: the production and canary
models it serves, with their offline metrics and training curves (the training record beside
each checkpoint, inference/training_record.py) and, for registered versions, the
registry's aliases and the retraining job's decision (MLflow model-version tags)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Literal

from apps.ml.schemas import ModelCard, ModelsReport
from inference.model import ServingModel, registry_exists
from inference.training_record import read_training_record
from musicrec.config import Settings

log = logging.getLogger(__name__)
ALIASES = ("staging", "canary", "production")
Role = Literal["production", "canary"]

_records: dict[str, dict[str, Any]] = {}  # by model version: a version's files never change
_lock = threading.Lock()


def models_report(
    settings: Settings,
    production: ServingModel | None,
    canary: ServingModel | None,
    last_error: str | None,
) -> ModelsReport:
    registry = _Registry(settings)
    roles: list[tuple[Role, ServingModel | None]] = [("production", production), ("canary", canary)]
    cards = [_card(role, model, registry) for role, model in roles if model is not None]
    return ModelsReport(
        models=cards,
        canary_share=settings.canary_share if canary is not None else 0.0,
        aliases=registry.aliases(),
        last_error=last_error,
    )


def _card(role: Role, model: ServingModel, registry: _Registry) -> ModelCard:
    record = _record(model)
    number = model.source.registered
    decision = registry.decision(number) if number is not None else {}
    return ModelCard(
        role=role,
        version=model.version,
        loaded_at=model.loaded_at.isoformat(),
        items=model.n_items,
        text_seeds=model.text_path is not None,
        registered_version=number,
        trained_at=record.get("trained_at"),
        protocol=record.get("protocol"),
        # A version registered before training records existed: the retraining job's numbers.
        metrics=_numbers(record.get("metrics") or decision.get("candidate")),
        baselines={k: _numbers(v) for k, v in (record.get("baselines") or {}).items()},
        curve=[_numbers(row) for row in record.get("epochs") or []],
        decision=decision.get("reason"),
    )


def _record(model: ServingModel) -> dict[str, Any]:
    with _lock:
        cached = _records.get(model.version)
    if cached is not None:
        return cached
    record = read_training_record(model.source.checkpoint) or {}
    if record:  # a model without one may get it later (written after the checkpoint)
        with _lock:
            _records[model.version] = record
    return record


def _numbers(values: Any) -> dict[str, float | None]:
    if not isinstance(values, dict):
        return {}
    return {
        str(k): (float(v) if isinstance(v, int | float) else None)
        for k, v in values.items()
        if v is None or isinstance(v, int | float)
    }


class _Registry:
    """The MLflow registry, read only when there is one (MLflow would create an empty one)."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.registered_model_name
        self.client: Any = None
        if registry_exists(settings):
            from mlflow import MlflowClient

            self.client = MlflowClient(settings.mlflow_tracking_uri)

    def aliases(self) -> dict[str, int]:
        if self.client is None:
            return {}
        try:
            model = self.client.get_registered_model(self.name)
        except Exception as exc:  # no such model yet, or the server is unreachable
            log.debug("registry: %s", exc)
            return {}
        return {a: int(v) for a, v in (model.aliases or {}).items() if a in ALIASES}

    def decision(self, number: int) -> dict[str, Any]:
        """The retraining job's decision on that version (reason, candidate metrics...)."""
        if self.client is None:
            return {}
        try:
            tags = self.client.get_model_version(self.name, str(number)).tags or {}
            decision = json.loads(tags.get("retrain_decision", "null"))
        except Exception as exc:
            log.debug("registry: %s", exc)
            return {}
        return decision if isinstance(decision, dict) else {}
