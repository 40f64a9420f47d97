"""Quality of /predict on real playlists the product has never seen, through the API.

For MPD playlists whose pid is not in the served database: the first SEEDS tracks, by title and
artist only (as an app would send them), are the request; the rest are the targets.
HitRate@k and Recall@k of `POST /predict?k=` against, on the same requests: the catalog's
popularity list (the service's own fallback), and two standard baselines fitted on the served
database's listening history — most-popular and item-kNN (cosine, 100 neighbours, the
item-based recommender of Gorse and RecBole). The baselines get the seeds' exact track URIs where
the database has them (the API gets titles and artists only): the comparison favours them.

    python -m benchmarks.predict_quality --data ../shared/data/mpd_reduced   # after make demo
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi.testclient import TestClient
from sqlalchemy import select

from apps.api.main import create_app
from benchmarks.common import emit
from ml_pipeline.data.sequences import load_from_database
from ml_pipeline.models.baselines import Baseline, ItemKNN, MostPopular
from musicrec.config import get_settings
from musicrec.db.engine import make_engine
from musicrec.db.models import Playlist

app = typer.Typer(add_completion=False)


def unseen_playlists(data: Path, known: set[int], count: int, min_tracks: int) -> list[Any]:
    """Playlists of the MPD files under `data` (last files first) not in the database."""
    found: list[Any] = []
    for path in sorted(data.glob("*.json"), reverse=True):
        for playlist in json.loads(path.read_text())["playlists"]:
            if playlist["pid"] not in known and len(playlist["tracks"]) >= min_tracks:
                found.append(playlist)
                if len(found) == count:
                    return found
    return found


def _seed(track: dict[str, Any]) -> dict[str, str]:
    return {"track_name": track["track_name"], "artist_name": track["artist_name"]}


@app.command()
def main(
    data: Annotated[Path, typer.Option(help="MPD slice folder")],
    playlists: int = 200,
    seeds: int = 5,
    k: int = 20,
) -> None:
    settings = get_settings().model_copy(update={"model_poll_seconds": 0})
    engine = make_engine(settings=settings)
    with engine.connect() as conn:
        known = set(conn.execute(select(Playlist.pid)).scalars())
    chosen = unseen_playlists(data, known, playlists, min_tracks=seeds + 10)
    totals = {name: [0.0, 0.0] for name in ("model", "popularity", "most_popular", "item_knn")}
    sources: dict[str, int] = {}
    started = time.perf_counter()
    history = load_from_database(engine)
    index = {uri: i for i, uri in enumerate(history.vocabulary)}
    baselines = {
        "most_popular": MostPopular().fit(history.sequences, history.n_items),
        "item_knn": ItemKNN(neighbours=100).fit(history.sequences, history.n_items),
    }
    with TestClient(create_app(settings)) as client:
        popular = client.app.state.api.catalog().popular  # type: ignore[attr-defined]
        for playlist in chosen:
            given, rest = playlist["tracks"][:seeds], playlist["tracks"][seeds:]
            targets = {t["track_uri"] for t in rest}
            reply = client.post(f"/predict?k={k}", json={"tracks": [_seed(t) for t in given]})
            reply.raise_for_status()
            source = reply.headers["X-Recommendation-Source"]
            sources[source] = sources.get(source, 0) + 1
            got = [t["track_uri"] for t in reply.json()["recommended_tracks"]]
            heard = {t["track_uri"] for t in given}
            ranked_by = {
                "model": got,
                "popularity": [uri for uri in popular if uri not in heard][:k],
            }
            seeds_known = [index[t["track_uri"]] for t in given if t["track_uri"] in index]
            for name, baseline in baselines.items():
                ranked_by[name] = _top(baseline, seeds_known, history.vocabulary, heard, k)
            for name, ranked in ranked_by.items():
                hits = len(set(ranked) & targets)
                totals[name][0] += hits > 0
                totals[name][1] += hits / len(targets)
    n = max(len(chosen), 1)
    metrics = {
        name: {f"hit_rate@{k}": round(h / n, 4), f"recall@{k}": round(r / n, 4)}
        for name, (h, r) in totals.items()
    }
    emit(
        {
            "benchmark": "predict_quality",
            "setup": {
                "data": str(data),
                "playlists": len(chosen),
                "seeds": seeds,
                "k": k,
                "served": str(settings.var_dir),
                "unseen": "pid not in the served database",
            },
            "metrics": metrics,
            "recall_ratio_over_popularity": _ratio(metrics, "popularity", k),
            "recall_ratio_over_item_knn": _ratio(metrics, "item_knn", k),
            "sources": sources,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


def _top(
    baseline: Baseline,
    seeds: list[int],
    vocabulary: list[str],
    heard: set[str],
    k: int,
) -> list[str]:
    """The baseline's k best tracks after the seeds, seeds excluded (most-popular without them)."""
    scores = baseline.full_sort_predict([seeds])[0].numpy()
    order = scores.argsort()[::-1][: k + len(heard) + 1]
    return [vocabulary[i] for i in order if i and vocabulary[i] not in heard][:k]


def _ratio(metrics: dict[str, dict[str, float]], baseline: str, k: int) -> float:
    return round(metrics["model"][f"recall@{k}"] / max(metrics[baseline][f"recall@{k}"], 1e-9), 2)


if __name__ == "__main__":
    app()
