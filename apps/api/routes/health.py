from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from apps.api.deps import StateDep
from apps.api.schemas import Problem
from apps.ml.metrics import metrics_response

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
    budget = state.settings.database_timeout_seconds + 1
    try:
        with anyio.fail_after(budget):
            checks: dict[str, Any] = await state.ml.ready()
    except TimeoutError:
        checks = {"ml": f"unavailable: readiness checks took over {budget:g} s"}
    checks["event_transport"] = state.transport.status()
    degraded = any(
        isinstance(v, str) and v.startswith(("unavailable", "none", "ML service", "degraded"))
        for v in checks.values()
    )
    return JSONResponse({"status": "degraded" if degraded else "ok", "checks": checks})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        401: {"model": Problem, "description": "METRICS_TOKEN is set: missing or wrong token"},
        403: {"model": Problem, "description": "METRICS_TOKEN is unset: not from loopback"},
    },
)
async def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus metrics: with `Authorization: Bearer <METRICS_TOKEN>`, or from loopback when
    METRICS_TOKEN is unset."""
    return metrics_response(request, state.settings.metrics_token)
