from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from apps.api.deps import CLIENT_ERRORS, AdminKey, StateDep
from apps.api.ops import feature_freshness, serving_stats
from apps.api.schemas import OpsSummary
from apps.ml.client import MLUnavailable
from musicrec.config import REPO_ROOT

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/ops", tags=["operations"], responses=CLIENT_ERRORS)


@router.get("/summary", response_model=OpsSummary)
async def summary(state: StateDep, _: AdminKey) -> OpsSummary:
    """The operations view in one answer: the production and canary models with their offline
    metrics and training curves, this process's request latency and fallback rate, and how
    fresh the features are. A part that cannot be read comes with its error, not a 5xx.
    Needs a key with the admin scope."""
    models, models_error = None, None
    try:
        models = await state.ml.models()
    except MLUnavailable as exc:
        models_error = str(exc)
    except Exception as exc:  # e.g. an unreachable registry: the rest of the view still helps
        log.warning("ops summary: models not read: %s", exc)
        models_error = f"models not read ({type(exc).__name__})"
    features, features_error = None, None
    try:
        features = await run_in_threadpool(
            feature_freshness, state.engine, state.settings.online_store
        )
    except Exception as exc:
        log.warning("ops summary: feature freshness not read: %s", exc)
        features_error = f"database unavailable ({type(exc).__name__})"
    logdir = state.settings.tensorboard_dir
    shown = logdir.relative_to(REPO_ROOT) if logdir.is_relative_to(REPO_ROOT) else logdir
    return OpsSummary(
        models=models,
        models_error=models_error,
        serving=serving_stats(),
        features=features,
        features_error=features_error,
        tensorboard=f"tensorboard --logdir {shown}",
    )
