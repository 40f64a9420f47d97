"""Redis memory per listener, per track and per listener–track pair, measured on real data: the
MPD playlists loaded into a scratch Postgres schema, their features materialized into the real
Redis (and their interest-graph profiles pushed), then every key of this run's Feast project
sized with MEMORY USAGE and classed by the views it holds. The sizing table of infra/README.md
is computed from this result (`--users`/`--tracks` scale it).

    python -m benchmarks.redis_sizing --data ../shared/data/mpd_reduced
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated, Any, cast

import redis
import typer

from benchmarks.common import DEFAULT_PG_URL, emit, scratch_schema
from feature_store.store import materialize, open_store, resolve_as_of
from ml_pipeline.ingest.audio_features import join_audio_features
from ml_pipeline.ingest.loader import load_mpd
from ml_pipeline.interest_graph.generate import generate_interest_graphs
from ml_pipeline.interest_graph.local import LocalProvider
from musicrec.config import Settings

app = typer.Typer(add_completion=False)
KINDS = ("pair", "track", "user")  # the first kind whose view a key holds names it
FIRST_VIEW = {
    "pair": b"_ts:user_track_interactions",
    "track": b"_ts:track_",
    "user": b"_ts:user_",
}
SCALES = [(100_000, 1_000_000), (1_000_000, 5_000_000), (10_000_000, 10_000_000)]


def key_kind(fields: list[bytes]) -> str:
    for kind in KINDS:
        if any(f.startswith(FIRST_VIEW[kind]) for f in fields):
            return kind
    return "other"


def measure(client: redis.Redis, project: str) -> dict[str, dict[str, float]]:
    sizes: dict[str, list[int]] = {kind: [] for kind in (*KINDS, "other")}
    for key in client.scan_iter(match=f"*{project}".encode(), count=1000):
        fields = cast(list[bytes], client.hkeys(key))
        sizes[key_kind(fields)].append(int(cast(int, client.memory_usage(key, samples=0))))
    return {
        kind: {"keys": len(found), "mean_bytes": round(sum(found) / len(found), 1)}
        for kind, found in sizes.items()
        if found
    }


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def sizing_table(per: dict[str, dict[str, float]], pairs_per_user: float) -> list[dict[str, Any]]:
    rows = []
    for users, tracks in SCALES:
        total = (
            users * per["user"]["mean_bytes"]
            + tracks * per["track"]["mean_bytes"]
            + users * pairs_per_user * per["pair"]["mean_bytes"]
        )
        rows.append({"users": users, "tracks": tracks, "gib": round(total / 2**30, 1)})
    return rows


@app.command()
def main(
    data: Annotated[Path, typer.Option(help="MPD slice folder")],
    audio_features: Annotated[Path | None, typer.Option(help="audio-feature CSV folder")] = None,
    files: Annotated[int, typer.Option(min=1, help="MPD files to load")] = 10_000,
) -> None:
    started = time.perf_counter()
    project = f"sizing{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host="127.0.0.1", port=6379)
    with scratch_schema(DEFAULT_PG_URL) as engine:
        load_mpd(engine, sorted(data.glob("*.json"))[:files])
        for path in sorted(audio_features.glob("**/*.csv")) if audio_features else []:
            join_audio_features(engine, path, skip_bad=True)
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            feast_redis_host="127.0.0.1",
            feast_project=project,
            var_dir=Path("/tmp") / project,
        )
        before = used_memory(client)
        try:
            materialize(settings, engine, resolve_as_of(engine, "latest"))
            graphs = generate_interest_graphs(engine, settings, LocalProvider(), batch_size=500)
            per_key = measure(client, project)
            used = used_memory(client) - before
        finally:
            open_store(settings).teardown()
    users = per_key["user"]["keys"]
    pairs_per_user = per_key["pair"]["keys"] / users
    emit(
        {
            "benchmark": "redis_sizing",
            "listeners": users,
            "graphs": graphs.done,
            "per_key": per_key,
            "pairs_per_listener": round(pairs_per_user, 1),
            "used_memory_delta_bytes": used,
            "sum_of_keys_bytes": round(sum(v["keys"] * v["mean_bytes"] for v in per_key.values())),
            "sizing": sizing_table(per_key, pairs_per_user),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


if __name__ == "__main__":
    app()
