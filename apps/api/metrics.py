"""Prometheus metrics of the public API (names: musicrec_api_<what>_<unit>) and the middleware
that times every request by route template (the latency / failure-rate middleware)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.ml.metrics import VersionInfo

REQUEST_SECONDS = Histogram(
    "musicrec_api_request_latency_seconds",
    "Time to answer a request, by route template",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REQUESTS = Counter(
    "musicrec_api_requests_total", "Requests answered", ["route", "method", "status"]
)
FAILURES = Counter(
    "musicrec_api_request_failures_total",
    "Requests answered with a 5xx or not answered (failure rate: this over requests_total)",
    ["route", "method"],
)
FALLBACKS = Counter(
    "musicrec_api_fallback_total",
    "Recommendation responses not from the model as intended, by reason",
    ["route", "reason"],
)
MODEL_INFO = VersionInfo(  # set from each answer: it changes on hot reload
    "musicrec_api_model_info", "The model version of the latest recommendation"
)


class MetricsMiddleware:
    """Pure ASGI (BaseHTTPMiddleware would add a task and a copy per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            REQUEST_SECONDS.labels(template, method).observe(time.perf_counter() - started)
            REQUESTS.labels(template, method, str(status)).inc()
            if status >= 500:
                FAILURES.labels(template, method).inc()
