"""Does the interest graph improve ranking? Measured on playlists the model never saw.

The catalog's playlists (an ingested MPD, e.g. ../shared/data/mpd_reduced) are split by a
stable hash: 80% train SASRec and make the facets (playlist names included, so no evaluated
playlist's own name can leak into a track's labels), 10% validation, 10% test. For each
evaluated playlist, the first half is the listener's history and the rest the tracks to find.
SASRec's top CANDIDATES for the history are re-ranked by

    standardized model score + weight x affinity(history's local interest graph, track)

with the weight chosen on validation and NDCG@10 reported on test, against weight 0 (the model
alone), for the whole graph and for its artist nodes and its genre/mood/era nodes apart. The
graphs come from the offline `local` provider (the language-model providers need a network).

    VAR_DIR=var/mpd musicrec ingest mpd ../shared/data/mpd_reduced   # + ingest audio-features
    VAR_DIR=var/mpd python -m ml_pipeline.evaluation.evaluate_interest_graph --epochs 40
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from sqlalchemy import Engine, select

from inference.interest_graph.affinity import InterestProfile, rerank_scores
from inference.interest_graph.facets import Facets
from ml_pipeline.evaluation.metrics import hit_rate_at_k, ndcg_at_k, recall_at_k
from ml_pipeline.interest_graph.local import build_graph
from ml_pipeline.interest_graph.storage import facet_rows
from ml_pipeline.interest_graph.summary import AUDIO_STATS, Listen, summarize
from musicrec.config import REPO_ROOT
from musicrec.db.models import Artist, Playlist, PlaylistTrack, Track
from musicrec.events import EventType

CANDIDATES = 100
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
VARIANTS = ("graph", "artists", "labels")
MIN_TRACKS = 10
RESULT = REPO_ROOT / "results" / "interest_graph_mpd.json"
# Playlists have no play times; the summaries' time of day is not used by the local graph.
PLAYED_AT = datetime(2017, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PlaylistRows:
    key: str
    name: str
    uris: list[str]


def load_playlists(engine: Engine) -> list[PlaylistRows]:
    p, pt, t = Playlist.__table__.c, PlaylistTrack.__table__.c, Track.__table__.c
    rows: dict[int, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        names = dict(conn.execute(select(p.id, p.name)).all())
        query = (
            select(pt.playlist_id, t.spotify_uri)
            .join(Track.__table__, t.id == pt.track_id)
            .order_by(pt.playlist_id, pt.position)
        )
        for playlist, uri in conn.execute(query):
            rows[playlist].append(uri)
    return [PlaylistRows(str(k), names[k], uris) for k, uris in sorted(rows.items())]


def track_listen_data(engine: Engine) -> dict[str, tuple[str, tuple[float | None, ...]]]:
    """uri -> (artist name, audio features or ())."""
    t, a = Track.__table__.c, Artist.__table__.c
    columns = [t[name] for name in AUDIO_STATS]
    query = select(t.spotify_uri, a.name, *columns).join(Artist.__table__, a.id == t.artist_id)
    with engine.connect() as conn:
        return {
            uri: (artist, tuple(f) if any(v is not None for v in f) else ())
            for uri, artist, *f in conn.execute(query)
        }


def part_of(key: str) -> str:
    bucket = zlib.crc32(key.encode()) % 10
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


@dataclass
class Case:
    history: list[str]
    targets: set[int]
    candidates: np.ndarray  # item indices, model order
    model_scores: np.ndarray
    artist: np.ndarray  # affinity parts of the candidates
    labels: np.ndarray


def evaluate(engine: Engine, *, epochs: int, min_item_count: int, seed: int) -> dict[str, Any]:
    import torch

    from ml_pipeline.data.sequences import SequenceData, pad_left
    from ml_pipeline.data.splits import Split
    from ml_pipeline.models.sasrec import SASRec, SASRecConfig
    from ml_pipeline.training.train_transformer import train_sasrec

    started = time.perf_counter()
    playlists = load_playlists(engine)
    parts = {pl.key: part_of(pl.key) for pl in playlists}
    train = [pl for pl in playlists if parts[pl.key] == "train"]
    counts = Counter(uri for pl in train for uri in pl.uris)
    vocabulary = [
        "<pad>",
        *sorted(
            (u for u, n in counts.items() if n >= min_item_count), key=lambda u: (-counts[u], u)
        ),
    ]
    index = {uri: i for i, uri in enumerate(vocabulary) if i}
    sequences = [[index[u] for u in pl.uris if u in index] for pl in train]
    sequences = [s for s in sequences if len(s) >= 2]
    data = SequenceData(sequences, vocabulary, [str(i) for i in range(len(sequences))])
    config = SASRecConfig(
        n_items=data.n_items,
        embedding_dim=64,
        dropout=0.2,
        loss="sampled_softmax",
        num_negatives=min(256, data.n_items),
        sparse_items=True,
    )
    split = Split("train-all", sequences, [], [], [], [], [], [])
    torch.manual_seed(seed)
    model = SASRec(config)
    train_sasrec(data, config, epochs=epochs, eval_every=0, split=split, model=model, seed=seed)
    model.eval()

    memberships, track_rows = facet_rows(engine)
    facets = Facets.build([m for m in memberships if parts[m[0]] == "train"], track_rows)
    listen_data = track_listen_data(engine)
    cases: dict[str, list[Case]] = {"valid": [], "test": []}
    for pl in playlists:
        part = parts[pl.key]
        if part == "train" or len(pl.uris) < MIN_TRACKS:
            continue
        half = len(pl.uris) // 2
        history, rest = pl.uris[:half], pl.uris[half:]
        known = [index[u] for u in history if u in index]
        targets = {index[u] for u in rest if u in index} - set(known)
        if not known or not targets:
            continue
        seq = torch.from_numpy(pad_left([known], config.max_seq_len))
        with torch.no_grad():
            scores = model.full_sort_scores(seq)[0].numpy()
        scores[0] = -np.inf
        scores[known] = -np.inf
        top = np.argsort(-scores)[:CANDIDATES]
        listens = [
            Listen(u, listen_data[u][0], EventType.PLAY.value, PLAYED_AT, listen_data[u][1])
            for u in history
        ]
        profile = InterestProfile.from_graph(build_graph(summarize(pl.key, listens, facets)))
        artist, labels = profile.scores(facets, [vocabulary[i] for i in top])
        cases[part].append(Case(history, targets, top, scores[top], artist, labels))

    results: dict[str, Any] = {}
    for variant in VARIANTS:
        by_weight = {w: _metrics(cases["valid"], variant, w) for w in WEIGHTS}
        best = max(WEIGHTS, key=lambda w: by_weight[w]["ndcg@10"])
        base, tuned = (
            _per_case(cases["test"], variant, 0.0),
            _per_case(cases["test"], variant, best),
        )
        delta = tuned - base
        results[variant] = {
            "weight": best,
            "valid_ndcg@10_by_weight": {
                str(w): round(m["ndcg@10"], 5) for w, m in by_weight.items()
            },
            "test_model_only": _metrics(cases["test"], variant, 0.0),
            "test_reranked": _metrics(cases["test"], variant, best),
            "test_ndcg@10_delta": round(float(delta.mean()), 5),
            "test_ndcg@10_delta_ci95": round(
                float(1.96 * delta.std(ddof=1) / np.sqrt(len(delta))), 5
            ),
        }
    return {
        "dataset": "mpd",
        "playlists": {p: sum(v == p for v in parts.values()) for p in ("train", "valid", "test")},
        "evaluated": {p: len(c) for p, c in cases.items()},
        "items": data.n_items,
        "epochs": epochs,
        "min_item_count": min_item_count,
        "candidates": CANDIDATES,
        "provider": "local",
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ranked(case: Case, variant: str, weight: float) -> list[int]:
    affinity = {"graph": case.artist + case.labels, "artists": case.artist, "labels": case.labels}
    final = rerank_scores(case.model_scores, affinity[variant], weight)
    return [int(i) for i in case.candidates[np.argsort(-final, kind="stable")]]


def _per_case(cases: list[Case], variant: str, weight: float) -> np.ndarray:
    return np.array([ndcg_at_k(_ranked(c, variant, weight), c.targets, 10) for c in cases])


def _metrics(cases: list[Case], variant: str, weight: float) -> dict[str, float]:
    ranked = [(_ranked(c, variant, weight), c.targets) for c in cases]
    n = max(len(ranked), 1)
    return {
        "ndcg@10": sum(ndcg_at_k(r, t, 10) for r, t in ranked) / n,
        "recall@10": sum(recall_at_k(r, t, 10) for r, t in ranked) / n,
        "hit_rate@20": sum(hit_rate_at_k(r, t, 20) for r, t in ranked) / n,
    }


def main(
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    min_item_count: Annotated[int, typer.Option(min=1)] = 5,
    seed: int = 42,
    output: Path = RESULT,
) -> None:
    import torch

    from musicrec.config import get_settings
    from musicrec.console import cli_errors, console
    from musicrec.db.engine import make_engine

    settings = get_settings()
    torch.set_num_threads(settings.torch_threads)
    with cli_errors():
        document = evaluate(
            make_engine(settings=settings),
            epochs=epochs,
            min_item_count=min_item_count,
            seed=seed,
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n")
    for variant, found in document["results"].items():
        console.print(
            f"{variant}: weight {found['weight']}, test NDCG@10 "
            f"{found['test_model_only']['ndcg@10']:.4f} -> {found['test_reranked']['ndcg@10']:.4f}"
            f" ({found['test_ndcg@10_delta']:+.4f} ± {found['test_ndcg@10_delta_ci95']:.4f})"
        )
    console.print(f"wrote {output}")


if __name__ == "__main__":
    typer.run(main)
