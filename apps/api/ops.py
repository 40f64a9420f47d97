"""The operations view's numbers, read where they live: request latency and fallbacks from this
process's Prometheus metrics (apps/api/metrics.py), feature freshness from the database (the
feature batch job's runs and the newest events). Quantiles are estimated from the histogram
buckets the way Prometheus' histogram_quantile does (linear within a bucket)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from apps.api import metrics
from apps.api.schemas import FeatureFreshness, RouteLatency, ServingStats
from feature_store.compute import latest_event_time
from musicrec.db.models import FeatureJobRun, ListeningEvent
from musicrec.timeutil import as_utc

# The routes the view reports on (route templates, as the metrics label them).
ROUTES = (
    "/v1/users/{user_id}/recommendations",
    "/predict",
    "/v1/feedback",
    "/v1/tracks/search",
)
RECOMMENDATION_ROUTES = ROUTES[:2]


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram given as (upper bound, cumulative count), in increasing
    order of bound (+Inf last); None without observations. Past the last finite bound: that
    bound (as Prometheus answers)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def serving_stats() -> ServingStats:
    """Latency per route (p50, p95, p99) and the share of recommendation answers that were
    fallbacks, since this API process started."""
    buckets: dict[str, dict[float, float]] = defaultdict(dict)
    for family in metrics.REQUEST_SECONDS.collect():
        for sample in family.samples:
            route = sample.labels.get("route")
            if sample.name.endswith("_bucket") and route in ROUTES:
                bound = float(sample.labels["le"])
                buckets[route][bound] = buckets[route].get(bound, 0.0) + sample.value
    answered: dict[str, float] = defaultdict(float)
    for family in metrics.REQUESTS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("status", "").startswith("2"):
                answered[sample.labels["route"]] += sample.value
    fallbacks = sum(
        sample.value
        for family in metrics.FALLBACKS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    routes = []
    for route in ROUTES:
        series = sorted(buckets.get(route, {}).items())
        routes.append(
            RouteLatency(
                route=route,
                requests=int(series[-1][1]) if series else 0,
                p50_ms=_ms(quantile(0.5, series)),
                p95_ms=_ms(quantile(0.95, series)),
                p99_ms=_ms(quantile(0.99, series)),
            )
        )
    recommendations = sum(answered[r] for r in RECOMMENDATION_ROUTES)
    return ServingStats(
        routes=routes,
        recommendations=int(recommendations),
        fallbacks=int(fallbacks),
        fallback_rate=fallbacks / recommendations if recommendations else None,
        model_version=metrics.MODEL_INFO.current,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def feature_freshness(engine: Engine, online_store: str) -> FeatureFreshness:
    """The feature batch job's last run (its as-of watermark: batch features hold events up to
    it), the newest event, and when the last event arrived in the last day (feedback pushes
    fresh features online as it is stored, so that is how fresh the pushed ones are)."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        run = conn.execute(
            select(FeatureJobRun.as_of, FeatureJobRun.finished_at)
            .order_by(FeatureJobRun.started_at.desc())
            .limit(1)
        ).first()
        received = conn.execute(
            select(func.max(ListeningEvent.created_at)).where(
                ListeningEvent.occurred_at >= now - timedelta(days=1)
            )
        ).scalar()
    newest = latest_event_time(engine)
    as_of = as_utc(run.as_of) if run else None
    return FeatureFreshness(
        online_store=online_store,
        batch_as_of=as_of,
        batch_finished_at=as_utc(run.finished_at) if run else None,
        newest_event_at=newest,
        last_event_received_at=as_utc(received) if received is not None else None,
        batch_lag_seconds=(newest - as_of).total_seconds() if newest and as_of else None,
        checked_at=now,
    )
