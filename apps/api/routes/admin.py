from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from starlette.concurrency import run_in_threadpool

from apps.api.deps import StateDep, admin
from apps.api.schemas import Problem
from apps.ml.schemas import ModelStatus
from musicrec.config import Settings

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(admin)],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)


@router.get("/model", response_model=ModelStatus)
async def model_status(state: StateDep) -> ModelStatus:
    """The model being served."""
    return await state.ml.status()


@router.post("/model/reload", response_model=ModelStatus)
async def reload_model(state: StateDep) -> ModelStatus:
    """Load the production model now if it changed (requests keep being served meanwhile)."""
    return await state.ml.reload()


@router.post(
    "/models/{version}/aliases/{alias}",
    response_model=ModelStatus,
    responses={404: {"model": Problem}},
)
async def promote(
    state: StateDep,
    version: Annotated[int, Path(ge=1, description="Registered model version")],
    alias: Annotated[str, Path(pattern="^(staging|canary|production)$")],
) -> ModelStatus:
    """Point an alias (staging, canary, production) of the registered model at a version;
    promoting to production reloads the served model."""
    await run_in_threadpool(_set_alias, state.settings, version, alias)
    if alias == state.settings.model_alias:
        return await state.ml.reload()
    return await state.ml.status()


def _set_alias(settings: Settings, version: int, alias: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri)
    try:
        client.get_model_version(settings.registered_model_name, str(version))
        client.set_registered_model_alias(settings.registered_model_name, alias, str(version))
    except MlflowException as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no version {version} of model {settings.registered_model_name}",
        ) from exc
