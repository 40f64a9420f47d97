"""The second stage: a LightGBM learning-to-rank model (listwise, rank_xendcg) that scores
candidates from their features. Serving loads it from LightGBM's own text format and predicts
on one thread (a request's few hundred rows gain nothing from more on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray


class Ranker:
    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster
        self.features: list[str] = booster.feature_name()

    def score(self, features: NDArray[np.float32]) -> NDArray[np.float64]:
        if not len(features):
            return np.empty(0)
        return np.asarray(self.booster.predict(features, num_threads=1), np.float64)

    def importance(self) -> dict[str, float]:
        """Each feature's share of the total split gain."""
        gain = self.booster.feature_importance(importance_type="gain")
        total = float(gain.sum()) or 1.0
        return {f: round(float(g) / total, 4) for f, g in zip(self.features, gain, strict=True)}

    def save(self, path: Path) -> None:
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, path: Path) -> Ranker:
        return cls(lgb.Booster(model_file=str(path)))
