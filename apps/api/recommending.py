"""Asking the ML service, and the API's own last line of defence: when the ML service is
unreachable or fails, popularity from the API's catalog (flagged), never a 5xx."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from apps.api import metrics
from apps.api.state import ApiState
from apps.ml.client import MLUnavailable
from apps.ml.responses import popular
from apps.ml.schemas import Recommendations

log = logging.getLogger(__name__)


async def recommendations(
    state: ApiState,
    route: str,
    call: Awaitable[Recommendations],
    k: int,
    diversity: float,
) -> Recommendations:
    try:
        return _observed(route, await call)
    except MLUnavailable as exc:
        reason = str(exc)
    except Exception:  # a bug or a broken model must not take recommendations down
        log.exception("recommendation failed on %s", route)
        reason = "recommender error"
    return _observed(route, popular(state.catalog(), k, diversity, set(), reason, None))


def _observed(route: str, result: Recommendations) -> Recommendations:
    """Count a fallback by its reason and note the model version that answered."""
    if result.fallback and result.fallback_reason:
        reason = result.fallback_reason.split(" (")[0]  # bounded label values
        metrics.FALLBACKS.labels(route=route, reason=reason).inc()
    metrics.MODEL_INFO.set(result.model_version)
    return result
