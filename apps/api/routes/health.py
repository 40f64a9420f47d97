from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.api.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    """Readiness, with the state of the database, the online store, the model and the event
    transport. The process answers only once start-up is complete; an unavailable dependency
    then makes it degraded, not unready: recommendations fall back (taking every replica out of
    rotation for a shared outage would turn it into a total one)."""
    checks: dict[str, Any] = await state.ml.ready()
    checks["event_transport"] = state.settings.event_transport
    degraded = any(
        isinstance(v, str) and v.startswith(("unavailable", "none", "ML service"))
        for v in checks.values()
    )
    return JSONResponse({"status": "degraded" if degraded else "ok", "checks": checks})


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
