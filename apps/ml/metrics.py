"""Prometheus metrics of the ML service (names: musicrec_ml_<what>_<unit>), and who may read
/metrics (the API's and the ML service's)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import HTTPException, Request, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import SecretStr

FEATURE_READ_SECONDS = Histogram(
    "musicrec_ml_feature_read_latency_seconds",
    "Online feature store reads per request",
    ["kind"],  # user (sequence, stats, context) or candidates (listener-track interactions)
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
FALLBACKS = Counter(
    "musicrec_ml_fallback_total",
    "Responses not served by the model as intended, by reason",
    ["reason"],
)
RECOMMENDATIONS = Counter(
    "musicrec_ml_recommendations_total", "Responses by what produced them", ["route", "source"]
)
EXPOSURES = Counter(
    "musicrec_ml_exposures_total",
    "Model answers logged for the canary comparison, by outcome",
    ["outcome"],  # written, dropped (the queue was full) or failed (the database refused)
)
MODEL_RELOADS = Counter("musicrec_ml_model_reloads_total", "Model (re)loads", ["outcome"])
DIVERSITY = Histogram(
    "musicrec_ml_intra_list_diversity",
    "Achieved intra-list diversity of the responses",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)


class VersionInfo:
    """A gauge with one series, labelled with the current model version, at 1. (The old series
    is removed, not clear()ed: Feast's import may switch prometheus_client's env to
    multi-process mode, where clear() only warns.)"""

    def __init__(self, name: str, documentation: str) -> None:
        self.gauge = Gauge(name, documentation, ["version"])
        self.current: str | None = None

    def set(self, version: str | None) -> None:
        value = version or "none"
        if value == self.current:
            return
        if self.current is not None:
            self.gauge.remove(self.current)
        self.gauge.labels(version=value).set(1)
        self.current = value


MODEL_INFO = VersionInfo(
    "musicrec_ml_model_info", "The model being served (1 for the current version)"
)


def metrics_response(request: Request, token: SecretStr | None) -> Response:
    """GET /metrics of both services. With METRICS_TOKEN set, only for `Authorization: Bearer
    <token>` (401 otherwise); unset, only for clients on loopback (403 to others): the metrics
    name routes, models and rates that are nobody else's business."""
    if token is not None:
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not _same_secret(credentials, token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid metrics token (Authorization: Bearer <METRICS_TOKEN>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not is_loopback(request.client.host if request.client else None):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "metrics are served to loopback only: set METRICS_TOKEN"
        )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback; False for a name or no address."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _same_secret(given: str, token: SecretStr) -> bool:
    # Compare digests: compare_digest on the tokens themselves would reveal the length.
    expected = token.get_secret_value()
    return bool(expected) and hmac.compare_digest(
        hashlib.sha256(given.strip().encode()).digest(),
        hashlib.sha256(expected.encode()).digest(),
    )
