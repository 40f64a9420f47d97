"""Prometheus metrics of the ML service (names: musicrec_ml_<what>_<unit>)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
