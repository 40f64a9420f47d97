"""The ML service as its own HTTP process (services mode): the API calls these internal routes.
They carry no client authentication: expose them on the cluster network only (infra/).

    uvicorn --factory apps.ml.main:create_app --port 8001
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from apps.ml.metrics import metrics_response
from apps.ml.schemas import (
    ModelsReport,
    ModelStatus,
    PredictQuery,
    Recommendations,
    UserQuery,
)
from apps.ml.service import MLService
from musicrec.config import get_settings
from musicrec.db.engine import make_engine


def create_app(service: MLService | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal service
        if service is None:
            settings = get_settings()
            service = await run_in_threadpool(
                MLService, settings, make_engine(settings=settings, serving=True)
            )
        service.start_polling()
        app.state.service = service
        yield
        service.close()

    app = FastAPI(title="musicrec ML service (internal)", lifespan=lifespan)

    def svc(request: Request) -> MLService:
        return request.app.state.service

    @app.post("/internal/recommendations", response_model=Recommendations)
    async def recommendations(query: UserQuery, request: Request) -> Recommendations:
        return svc(request).recommend_user(query)

    @app.post("/internal/predict", response_model=Recommendations)
    async def predict(query: PredictQuery, request: Request) -> Recommendations:
        return svc(request).predict(query)

    @app.post("/internal/reload", response_model=ModelStatus)
    async def reload(request: Request) -> ModelStatus:
        return await run_in_threadpool(svc(request).reload)

    @app.get("/internal/status", response_model=ModelStatus)
    async def status(request: Request) -> ModelStatus:
        return svc(request).status()

    @app.get("/internal/models", response_model=ModelsReport)
    async def models(request: Request) -> ModelsReport:
        return await run_in_threadpool(svc(request).models)

    @app.get("/internal/ready")
    async def ready(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(svc(request).ready)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: METRICS_TOKEN as a bearer token, or loopback when it is unset."""
        return metrics_response(request, svc(request).settings.metrics_token)

    return app
