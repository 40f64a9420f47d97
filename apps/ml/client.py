"""One interface to the ML service for the API: in the same process (embedded mode) or over
HTTP with keep-alive and timeouts (services mode, ML_SERVICE_URL)."""

from __future__ import annotations

import json
from typing import Any, Protocol

import anyio
import httpx
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from apps.ml.schemas import (
    ModelsReport,
    ModelStatus,
    PredictQuery,
    Recommendations,
    UserQuery,
)
from apps.ml.service import MLService


class MLUnavailable(Exception):
    """The ML service did not answer in time (the API then serves its own fallback)."""


class MLBackend(Protocol):
    async def recommend_user(self, query: UserQuery) -> Recommendations: ...
    async def predict(self, query: PredictQuery) -> Recommendations: ...
    async def reload(self) -> ModelStatus: ...
    async def status(self) -> ModelStatus: ...
    async def models(self) -> ModelsReport: ...
    async def ready(self) -> dict[str, Any]: ...
    async def aclose(self) -> None: ...


class EmbeddedML:
    """The ML service in this process. A request takes a few milliseconds of CPU (GIL-bound:
    a worker thread would add a hop and no parallelism), so it runs inline on the event loop;
    reloads and probes run in worker threads."""

    def __init__(self, service: MLService) -> None:
        self.service = service

    async def recommend_user(self, query: UserQuery) -> Recommendations:
        return self.service.recommend_user(query)

    async def predict(self, query: PredictQuery) -> Recommendations:
        return self.service.predict(query)

    async def reload(self) -> ModelStatus:
        return await run_in_threadpool(self.service.reload)

    async def status(self) -> ModelStatus:
        return self.service.status()

    async def models(self) -> ModelsReport:
        return await run_in_threadpool(self.service.models)

    async def ready(self) -> dict[str, Any]:
        # Abandonable: the caller bounds the wait (a probe must not hang with a dependency).
        return await anyio.to_thread.run_sync(self.service.ready, abandon_on_cancel=True)

    async def aclose(self) -> None:
        self.service.close()


class RemoteML:
    """The ML service behind ML_SERVICE_URL (apps.ml.main)."""

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def _call(self, method: str, path: str, body: BaseModel | None = None) -> bytes:
        """The answer's JSON bytes (parsed by the caller straight into its model)."""
        try:
            reply = await self.client.request(
                method,
                path,
                content=body.model_dump_json() if body is not None else None,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise MLUnavailable(f"ML service unreachable ({type(exc).__name__})") from exc
        if reply.status_code >= 400:
            raise MLUnavailable(f"ML service answered {reply.status_code}")
        return reply.content

    async def recommend_user(self, query: UserQuery) -> Recommendations:
        body = await self._call("POST", "/internal/recommendations", query)
        return Recommendations.model_validate_json(body)

    async def predict(self, query: PredictQuery) -> Recommendations:
        body = await self._call("POST", "/internal/predict", query)
        return Recommendations.model_validate_json(body)

    async def reload(self) -> ModelStatus:
        return ModelStatus.model_validate_json(await self._call("POST", "/internal/reload"))

    async def status(self) -> ModelStatus:
        return ModelStatus.model_validate_json(await self._call("GET", "/internal/status"))

    async def models(self) -> ModelsReport:
        return ModelsReport.model_validate_json(await self._call("GET", "/internal/models"))

    async def ready(self) -> dict[str, Any]:
        try:
            checks: dict[str, Any] = json.loads(await self._call("GET", "/internal/ready"))
        except MLUnavailable as exc:
            return {"ml_service": str(exc)}
        return {"ml_service": "ok", **checks}

    async def aclose(self) -> None:
        await self.client.aclose()
