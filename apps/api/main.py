"""The public API (FastAPI): what web and mobile apps call.

    uvicorn --factory apps.api.main:create_app        # or: musicrec serve

Embedded mode (no ML_SERVICE_URL): the ML service runs in this process, feedback goes through
the in-process queue to a consumer thread here. Services mode: the ML service is its own
process (apps.ml.main) reached over HTTP, feedback goes to Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from apps.api import errors
from apps.api.errors import UnhandledErrors
from apps.api.metrics import MetricsMiddleware
from apps.api.routes import (
    admin,
    feedback,
    health,
    listeners,
    ops,
    predict,
    recommendations,
    tracks,
    webapp,
)
from apps.api.schemas import Problem
from apps.api.security import ApiKeys, BodySizeLimitMiddleware, RateLimiter
from apps.api.state import ApiState
from apps.ml.catalog import Catalog
from apps.ml.client import EmbeddedML, MLBackend, RemoteML
from apps.ml.service import MLService
from apps.workers.feedback import FeedbackSink, InProcessConsumer
from apps.workers.outbox import transport_for
from apps.workers.transport import EventTransport, InProcessTransport
from feature_store.online import OnlineFeatures
from musicrec.config import Settings, get_settings
from musicrec.db.engine import make_engine

log = logging.getLogger(__name__)

DESCRIPTION = """What to play next, learning from every play and skip.

* `POST /predict` — recommendations for a new listener from a few tracks named by title and
  artist (no key needed).
* `/v1/...` — for apps with an API key (header `X-API-Key`; create one with
  `musicrec api-keys create NAME`): a listener's recommendations, feedback events, search.
* `/v1/ops/summary` — the operations view's numbers (models, latency, fallbacks, freshness).
* `/v1/admin/...` — model reload and promotion with the admin token.
* `/app` — a web page to try it all in a browser (docs/webapp.md).

Recommendations never fail for a missing dependency: they fall back to the listener's last
response or to popularity, and say so (`source`, `fallback`, `fallback_reason`)."""


def create_app(
    settings: Settings | None = None,
    *,
    ml: MLBackend | None = None,
    transport: EventTransport | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings=settings, serving=True)
        backend, catalog, service = ml, None, None
        if backend is None and settings.ml_service_url:
            backend = RemoteML(settings.ml_service_url, settings.ml_timeout_seconds)
        if backend is None:
            service = await run_in_threadpool(MLService, settings, engine)
            service.start_polling()
            backend = EmbeddedML(service)
        if isinstance(backend, EmbeddedML):
            service = backend.service
            current: Callable[[], Catalog] = lambda: service.catalog  # noqa: E731
        else:
            catalog = await run_in_threadpool(Catalog.load, engine)
            current = lambda: catalog  # noqa: E731
        keys = ApiKeys(engine, settings.api_key_cache_seconds)
        try:
            await run_in_threadpool(keys.load)
        except SQLAlchemyError as exc:  # the first request with a key tries again
            log.warning("API keys not loaded at start-up: %s", exc)
        events = transport or transport_for(settings, engine)
        consumer = None
        if isinstance(events, InProcessTransport):
            features = service.features if service else _online_features(settings)
            consumer = InProcessConsumer(events, FeedbackSink(engine, features))
            consumer.start()
        app.state.api = ApiState(
            settings=settings,
            engine=engine,
            ml=backend,
            transport=events,
            keys=keys,
            limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
            catalog=current,
            consumer=consumer,
        )
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop()
            await backend.aclose()
            events.close()
            engine.dispose()

    app = FastAPI(
        title="musicrec",
        version=version("musicrec"),
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={
            400: {"model": Problem, "description": "Malformed request"},
            413: {"model": Problem, "description": "Request body too large"},
        },
        openapi_tags=[
            {"name": "recommendations", "description": "What to play next"},
            {"name": "feedback", "description": "Plays, clicks, skips and likes"},
            {"name": "catalog", "description": "Finding tracks"},
            {"name": "operations", "description": "Probes and metrics"},
            {"name": "admin", "description": "Model reload and promotion (admin token)"},
        ],
    )
    for module in (predict, recommendations, feedback, tracks, listeners, health, ops, admin):
        app.include_router(module.router)
    app.include_router(webapp.router)
    app.mount("/app/static", webapp.static, name="webapp")

    errors.install(app)
    # Last added runs first: metrics time everything, including refused bodies and errors.
    app.add_middleware(UnhandledErrors)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        read_timeout_seconds=settings.body_read_timeout_seconds,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type", "Authorization"],
            expose_headers=["X-Recommendation-Source", "X-Model-Version", "X-Fallback-Reason"],
        )
    app.add_middleware(MetricsMiddleware)
    return app


def _online_features(settings: Settings) -> OnlineFeatures | None:
    try:
        return OnlineFeatures.for_settings(settings)
    except Exception as exc:  # the consumer still stores events; features catch up in batch
        log.warning("feedback will not update online features: %s", exc)
        return None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, without starting anything (docs and schema tests)."""
    return create_app(Settings()).openapi()
