"""Playlist continuation, measured as the ACM RecSys Challenge 2018 did: a held-out playlist's
title and its first n tracks (n = 0: the title alone) are the query; every later distinct track
that is not a seed is the answer. Every system answers through the same interface with up to 500
track URIs, and is scored by NDCG@10, HR@10, Recall@10, R-precision and NDCG@500, each with a
bootstrap 95% interval over the playlists.

R-precision here credits exact tracks only (the challenge also gave a quarter of a hit for the
right artist): stricter, and the same for every system.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.recommender.items import Seed
from ml_pipeline.data.playlists import Playlist, TrackInfo

SEED_COUNTS = (0, 1, 5, 10, 25)
# Also measured with the title withheld: an app may send the seed tracks alone.
UNTITLED_SEED_COUNTS = (1, 5)
DEPTH = 500  # recommendations per query, as in the challenge
METRICS = ("ndcg@10", "hr@10", "recall@10", "r_precision", "ndcg@500", "recall@500")
BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class Case:
    title: str
    seeds: tuple[Seed, ...]
    targets: frozenset[str]

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


# A system under evaluation: (seeds, title, how many) -> track URIs, best first.
Recommend = Callable[[Sequence[Seed], str, int], Sequence[str]]


def make_cases(
    playlists: Sequence[Playlist],
    tracks: dict[str, TrackInfo],
    n_seeds: int,
    titled: bool = True,
) -> list[Case]:
    """One case per playlist long enough to keep at least one target after n_seeds seeds;
    without its title unless `titled`."""
    cases = []
    for p in playlists:
        seeds = p.tracks[:n_seeds]
        if len(seeds) < n_seeds:
            continue
        targets = frozenset(p.tracks[n_seeds:]) - set(seeds)
        if targets:
            named = tuple(Seed(tracks[u].name, tracks[u].artist, u) for u in seeds)
            cases.append(Case(p.name if titled else "", named, targets))
    return cases


def dcg(hits: Sequence[bool]) -> float:
    return sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)


def case_metrics(ranked: Sequence[str], targets: frozenset[str]) -> dict[str, float]:
    """The metrics of one ranked list (duplicates after the first count as misses)."""
    seen: set[str] = set()
    hits = []
    for uri in ranked[:DEPTH]:
        hits.append(uri in targets and uri not in seen)
        seen.add(uri)
    n = len(targets)
    top10 = sum(hits[:10])
    return {
        "ndcg@10": dcg(hits[:10]) / dcg([True] * min(n, 10)),
        "hr@10": float(top10 > 0),
        "recall@10": top10 / n,
        "r_precision": sum(hits[:n]) / n,
        "ndcg@500": dcg(hits) / dcg([True] * min(n, DEPTH)),
        "recall@500": sum(hits) / n,
    }


def bootstrap_interval(
    values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile interval of the mean, resampling the cases."""
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class Scored:
    per_case: dict[str, np.ndarray]
    seconds: float
    ranked: list[list[str]]  # each case's recommendations, as scored

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"cases": len(next(iter(self.per_case.values())))}
        for name, values in self.per_case.items():
            low, high = bootstrap_interval(values)
            out[name] = round(float(values.mean()), 5)
            out[f"{name}_ci95"] = [round(low, 5), round(high, 5)]
        out["ms_per_query"] = round(1000 * self.seconds / max(int(out["cases"]), 1), 3)  # type: ignore[call-overload]
        return out


def evaluate(recommend: Recommend, cases: Sequence[Case], depth: int = DEPTH) -> Scored:
    started = time.perf_counter()
    ranked = [list(recommend(c.seeds, c.title, depth)) for c in cases]
    seconds = time.perf_counter() - started
    rows = [case_metrics(r, c.targets) for r, c in zip(ranked, cases, strict=True)]
    per_case = {m: np.array([r[m] for r in rows]) for m in METRICS}
    return Scored(per_case, seconds, ranked)


def cold_share(
    scored: Scored, cases: Sequence[Case], trained: set[str], k: int = 10
) -> dict[str, float]:
    """Tracks never heard in training: the share of the correct top-k that are such tracks,
    and their recall@500 (how many of the cold targets the system finds)."""
    correct = correct_cold = cold_targets = cold_found = 0
    for c, ranked in zip(cases, scored.ranked, strict=True):
        cold = {t for t in c.targets if t not in trained}
        hits = [u for u in ranked[:k] if u in c.targets]
        correct += len(hits)
        correct_cold += sum(u in cold for u in hits)
        cold_targets += len(cold)
        cold_found += len(cold.intersection(ranked))
    return {
        "cold_share_of_correct_top10": correct_cold / correct if correct else 0.0,
        "cold_recall@500": cold_found / cold_targets if cold_targets else 0.0,
        "cold_targets": float(cold_targets),
    }
