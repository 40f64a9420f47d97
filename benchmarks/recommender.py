"""The two-stage recommender served by the API, end to end: a model trained (with the tuned
source parameters) on the training files of the continuation split, served by `musicrec serve`,
and asked through `POST /predict` about the held-out test files' playlists (1 or 5 seeds by
title, artist and URI, or the title alone), as an app would:

- quality: the answers' NDCG@10 and R-precision (k=500), which must equal what the offline
  evaluation computes for the same model (the served path is the evaluated one);
- latency: each stage in process, and /predict?k=10 over HTTP in closed loop and open loop at a
  fixed rate, beside `/healthz` on the same server in the same run, with the load average.

    python -m benchmarks.recommender --data ../shared/data/mpd_reduced

Writes results/benchmarks/recommender.json.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from benchmarks.common import emit, load_average, log
from benchmarks.loadgen import Route, closed_loop, encode, latency_ms, open_loop
from benchmarks.servers import Server, server_env
from inference.recommender import artifact
from inference.recommender.recommender import TwoStageRecommender
from ml_pipeline.data.playlists import load_playlists, split_files
from ml_pipeline.evaluation.continuation import DEPTH, Case, case_metrics, evaluate, make_cases
from ml_pipeline.experiments.continuation import as_recommend
from ml_pipeline.jobs.train_recommender import TUNING, tuned
from ml_pipeline.training.recommender import train_two_stage
from musicrec.config import Settings
from musicrec.db.engine import make_engine
from musicrec.db.migrate import upgrade

app = typer.Typer(add_completion=False)
QUERIES = {"5 seeds": 5, "1 seed": 1, "title only": 0}


def stage_timings(recommender: TwoStageRecommender, cases: list[Case], k: int) -> dict[str, Any]:
    """Per stage, in ms: candidates (every source and the union), features, ranker, and the
    whole `recommend` call; and how many candidates were ranked."""
    stages: dict[str, list[int]] = {"candidates": [], "features": [], "ranker": [], "total": []}
    sizes = []
    for case in cases * 2:  # the first pass warms caches; both are recorded
        query = recommender.query(list(case.seeds), case.title)
        t0 = time.perf_counter_ns()
        found = recommender.candidates(query)
        t1 = time.perf_counter_ns()
        x = found.features(recommender.items, recommender.artist_popularity)
        t2 = time.perf_counter_ns()
        if recommender.ranker is not None:
            recommender.ranker.score(x)
        t3 = time.perf_counter_ns()
        recommender.recommend(query, k)
        t4 = time.perf_counter_ns()
        for name, ns in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[name].append(ns)
        sizes.append(len(found.items))
    return {
        **{name: latency_ms(ns) for name, ns in stages.items()},
        "candidates_mean": round(float(np.mean(sizes)), 1),
        "load_average": load_average(),
    }


def predict_body(case: Case) -> dict[str, Any]:
    tracks = [
        {"track_name": s.track_name, "artist_name": s.artist_name, "track_uri": s.track_uri}
        for s in case.seeds
    ]
    return {"tracks": tracks, "name": case.title} if tracks else {"name": case.title}


def served_quality(port: int, cases: list[Case]) -> dict[str, float]:
    """Mean metrics of /predict?k=500's answers."""
    import httpx

    rows = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for case in cases:
            reply = client.post("/predict", params={"k": DEPTH}, json=predict_body(case))
            reply.raise_for_status()
            ranked = [t["track_uri"] for t in reply.json()["recommended_tracks"]]
            rows.append(case_metrics(ranked, case.targets))
    return {m: round(float(np.mean([r[m] for r in rows])), 5) for m in rows[0]}


def over_http(model: Path, cases: dict[str, list[Case]], rate: int, seconds: float) -> Any:
    """From `musicrec serve` (one worker): /predict's quality, then /predict?k=10 and /healthz
    in closed loop and open loop at `rate` requests/s."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # no rate limit: the load generator is one client address
            var_dir=Path(tmp) / "var",
            recommender_path=model,
            rate_limit_per_second=1e6,
            rate_limit_burst=10**6,
        )
        engine = make_engine(settings=settings)
        upgrade(engine)
        engine.dispose()
        env = server_env(settings) | {"RECOMMENDER_PATH": str(model), "PYTHONOPTIMIZE": "1"}
        del env["SEQUENTIAL_MODEL_PATH"]  # none in the empty var dir: the two-stage model alone
        server = Server("api", "serve", env, Path(tmp))
        try:
            server.wait_ready("/readyz")
            quality = {name: served_quality(server.port, chosen) for name, chosen in cases.items()}
            log(f"through /predict: {quality}")
            routes = {"healthz": Route("healthz", [encode("GET", "/healthz", {})], b"ok")}
            for name, chosen in cases.items():
                requests = [encode("POST", "/predict?k=10", {}, predict_body(c)) for c in chosen]
                routes[name] = Route(name, requests, b'"recommended_tracks"')
            out: dict[str, Any] = {}
            rng = np.random.default_rng(0)
            for name, route in routes.items():
                closed = asyncio.run(closed_loop(server.port, route, 300, rng))
                opened = asyncio.run(open_loop(server.port, route, rate, seconds, rng))
                out[name] = {
                    "closed_loop": closed,
                    f"open_loop_{rate}_rps": {
                        k: v for k, v in opened.items() if k not in ("steps", "statuses")
                    },
                    "load_average": load_average(),
                }
                log(f"{name}: {out[name]}")
            return quality, out
        finally:
            server.stop()


@app.command()
def main(
    data: Annotated[Path, typer.Option(help="MPD folder")],
    tuning: Annotated[Path, typer.Option(help="tuned source parameters")] = TUNING,
    rate: int = 50,
    seconds: float = 20.0,
) -> None:
    playlists = load_playlists([data])
    splits = split_files(playlists.files())
    test = playlists.where(splits["test"])
    cases = {name: make_cases(test, playlists.tracks, n) for name, n in QUERIES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recommender"
        log("training on the training files")
        fitted, ranker, record = train_two_stage(
            playlists.where(splits["train"]), playlists.tracks, tuned(tuning)
        )
        artifact.save(path, fitted, ranker, record)
        recommender, _ = artifact.load(path)
        offline = {
            name: {
                m: round(float(v.mean()), 5)
                for m, v in evaluate(as_recommend(recommender), chosen).per_case.items()
            }
            for name, chosen in cases.items()
        }
        before = load_average()
        in_process = {
            name: stage_timings(recommender, chosen, 10) for name, chosen in cases.items()
        }
        log(f"in process: {in_process}")
        served, latency = over_http(path, cases, rate, seconds)
    emit(
        {
            "benchmark": "recommender",
            "items": len(recommender.items),
            "test_playlists": len(test),
            "quality_offline_k500": offline,
            "quality_through_predict_k500": served,
            "served_equals_offline": served == offline,
            "load_average_before": before,
            "in_process_k10": in_process,
            "http_predict_k10": latency,
        }
    )


if __name__ == "__main__":
    app()
