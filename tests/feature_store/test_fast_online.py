"""The fast Redis read path returns exactly what Feast's SDK returns, on a real Redis.

A throwaway Feast project (unique name) is applied, filled by Feast itself (materialize and
write_to_online_store), read both ways and torn down. A missing Redis fails the tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.types import Array, Bool, Float32, Float64, Int64, String, UnixTimestamp
from feast.value_type import ValueType

from feature_store.fast_online import RedisFeatureReader, validate_feature_refs

REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))
NOW = datetime.now(UTC).replace(microsecond=0)
N_USERS, N_TRACKS = 5, 60  # u0..u4 and t0..t59 exist; "ghost", t1000, "nope" never do

USER_REFS = [
    "user_fv:age",
    "user_fv:score",
    "user_fv:weight",
    "user_fv:country",
    "user_fv:premium",
    "user_fv:signup",
    "user_fv:top_genres",
]
TRACK_REFS = [
    "track_fv:plays",
    "track_fv:energy",
    "track_fv:tempo",
    "track_fv:title",
    "track_fv:explicit",
    "track_fv:released",
]
PAIR_REFS = ["user_track_fv:plays_by_user", "user_track_fv:affinity", "user_track_fv:skipped"]


@dataclass
class Repo:
    store: FeatureStore
    reader: RedisFeatureReader
    client: CountingRedis

    def sdk(
        self, refs: Sequence[str], rows: Sequence[Mapping[str, Any]], full: bool = False
    ) -> dict[str, list[Any]]:
        return self.store.get_online_features(
            list(refs), [dict(r) for r in rows], full_feature_names=full
        ).to_dict()


class CountingRedis(redis.Redis):
    """Counts pipelines and their commands, so a test can see the reader's round trips."""

    pipelines = 0
    commands = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        pipe = super().pipeline(*args, **kwargs)
        execute = pipe.execute

        def counting_execute(*a: Any, **kw: Any) -> Any:
            self.commands += len(pipe.command_stack)
            return execute(*a, **kw)

        pipe.execute = counting_execute  # type: ignore[method-assign]
        return pipe


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 == 1.0 == True would hide a bug)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def _ts(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def _parquet(path: Path, rows: dict[str, Any]) -> FileSource:
    n = len(next(iter(rows.values())))
    frame = pd.DataFrame({**rows, "event_timestamp": [_ts(0.01)] * n, "created": [NOW] * n})
    frame.to_parquet(path)
    return FileSource(
        path=str(path), timestamp_field="event_timestamp", created_timestamp_column="created"
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    client = CountingRedis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_HOST}:{REDIS_PORT}: {exc}", pytrace=False)
    tmp = tmp_path_factory.mktemp("feast_repo")
    config = RepoConfig(
        project=f"test_{uuid.uuid4().hex[:8]}",
        provider="local",
        registry=str(tmp / "registry.db"),
        online_store={"type": "redis", "connection_string": f"{REDIS_HOST}:{REDIS_PORT}"},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=str(tmp),
    )
    store = FeatureStore(config=config)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    track = Entity(name="track", join_keys=["track_id"], value_type=ValueType.STRING)
    users = [f"u{i}" for i in range(N_USERS)]
    tracks = [f"t{i}" for i in range(N_TRACKS)]
    user_fv = FeatureView(
        name="user_fv",
        entities=[user],
        ttl=timedelta(days=1),
        schema=[
            Field(name="user_id", dtype=String),
            Field(name="age", dtype=Int64),
            Field(name="score", dtype=Float64),
            Field(name="weight", dtype=Float32),
            Field(name="country", dtype=String),
            Field(name="premium", dtype=Bool),
            Field(name="signup", dtype=UnixTimestamp),
            Field(name="top_genres", dtype=Array(String)),
        ],
        source=_parquet(
            tmp / "users.parquet",
            {
                "user_id": users,
                "age": [20 + i for i in range(N_USERS)],
                "score": [i / 3 for i in range(N_USERS)],
                "weight": [0.1 * i for i in range(N_USERS)],
                "country": ["SE", "", "FR", "日本", "US"],
                "premium": [i % 2 == 0 for i in range(N_USERS)],
                "signup": [_ts(100 + i) for i in range(N_USERS)],
                "top_genres": [["rock", "jazz"][: i % 3] for i in range(N_USERS)],
            },
        ),
    )
    track_fv = FeatureView(
        name="track_fv",
        entities=[track],
        ttl=timedelta(days=1),
        schema=[
            Field(name="track_id", dtype=String),
            Field(name="plays", dtype=Int64),
            Field(name="energy", dtype=Float64),
            Field(name="tempo", dtype=Float32),
            Field(name="title", dtype=String),
            Field(name="explicit", dtype=Bool),
            Field(name="released", dtype=UnixTimestamp),
        ],
        source=_parquet(
            tmp / "tracks.parquet",
            {
                "track_id": tracks,
                "plays": [i * 1_000_003 - 5 for i in range(N_TRACKS)],  # big and negative ints
                "energy": [i / 7 for i in range(N_TRACKS)],
                "tempo": [60.5 + i * 1.1 for i in range(N_TRACKS)],
                "title": [f"song {i}" for i in range(N_TRACKS)],
                "explicit": [i % 3 == 0 for i in range(N_TRACKS)],
                "released": [_ts(1000 + i) for i in range(N_TRACKS)],
            },
        ),
    )
    pair_fv = FeatureView(
        name="user_track_fv",
        entities=[user, track],
        ttl=timedelta(days=1),
        schema=[
            Field(name="user_id", dtype=String),
            Field(name="track_id", dtype=String),
            Field(name="plays_by_user", dtype=Int64),
            Field(name="affinity", dtype=Float64),
            Field(name="skipped", dtype=Bool),
        ],
        source=_parquet(
            tmp / "pairs.parquet",
            {"user_id": ["u0"], "track_id": ["t0"], "plays_by_user": [0], "affinity": [0.0]}
            | {"skipped": [False]},
        ),
    )
    store.apply([user, track, user_fv, track_fv, pair_fv])
    try:
        store.materialize(start_date=_ts(30), end_date=NOW + timedelta(minutes=1))
        # Pairs through the push-style path, with an older event time than the TTL allows.
        store.write_to_online_store(
            "user_track_fv",
            pd.DataFrame(
                {
                    "user_id": ["u1", "u1", "u2"],
                    "track_id": ["t3", "t4", "t3"],
                    "plays_by_user": [3, 4, 7],
                    "affinity": [0.25, -1.5, 2.0],
                    "skipped": [False, True, False],
                    "event_timestamp": [_ts(0.5), _ts(0.5), _ts(3)],
                    "created": [NOW] * 3,
                }
            ),
        )
        yield Repo(store, RedisFeatureReader(store, client=client), client)
    finally:
        store.teardown()  # Feast's own cleanup; then anything it might have missed
        leftovers = list(client.scan_iter(match=f"*{config.project}"))
        if leftovers:
            client.delete(*leftovers)
        client.close()


def test_one_user_and_fifty_tracks_in_one_round_trip(repo: Repo) -> None:
    user_rows = [{"user_id": "u2"}]
    track_rows = [{"track_id": f"t{i}"} for i in range(50)]
    pipelines, commands = repo.client.pipelines, repo.client.commands
    fast = repo.reader.read([(USER_REFS, user_rows), (TRACK_REFS, track_rows)])
    assert (repo.client.pipelines - pipelines, repo.client.commands - commands) == (1, 51)
    assert same(fast, [repo.sdk(USER_REFS, user_rows), repo.sdk(TRACK_REFS, track_rows)])
    # Sanity: the data really is there (and not all None on both sides).
    assert fast[0]["country"] == ["FR"] and fast[0]["top_genres"] == [["rock", "jazz"]]
    assert all(v is not None for column in fast[1].values() for v in column)
    assert fast[1]["track_id"] == [r["track_id"] for r in track_rows]


def test_sdk_shaped_user_plus_tracks_call_matches_and_reads_the_user_once(repo: Repo) -> None:
    refs = USER_REFS + TRACK_REFS
    rows = [{"user_id": "u3", "track_id": f"t{i}"} for i in range(50)]
    commands = repo.client.commands
    assert same(repo.reader.get_online_features(refs, rows), repo.sdk(refs, rows))
    assert repo.client.commands - commands == 51


def test_missing_entities_and_coerced_keys_match_sdk(repo: Repo) -> None:
    track_rows = [{"track_id": t} for t in ["t1", "t1000", "t7", "nope", "t1"]] + [{"track_id": 5}]
    user_rows = [{"user_id": "ghost"}]
    fast = repo.reader.read([(TRACK_REFS, track_rows), (USER_REFS, user_rows)])
    assert same(fast, [repo.sdk(TRACK_REFS, track_rows), repo.sdk(USER_REFS, user_rows)])
    assert fast[0]["plays"][1] is None and fast[0]["plays"][3] is None
    assert fast[0]["track_id"][-1] == "5"  # coerced to str, as the SDK does
    assert all(v is None for k, column in fast[1].items() if k != "user_id" for v in column)


def test_two_key_entity_and_mixed_views_match_sdk(repo: Repo) -> None:
    rows = [
        {"user_id": "u1", "track_id": "t3", "unused": 1},  # a non-join key is not echoed
        {"track_id": "t4", "unused": 2, "user_id": "u1"},  # key order must not matter
        {"user_id": "u1", "track_id": "t5", "unused": 3},  # no such pair
        {"user_id": "u2", "track_id": "t3", "unused": 4},
    ]
    fast = repo.reader.get_online_features(PAIR_REFS, rows)
    assert same(fast, repo.sdk(PAIR_REFS, rows)) and "unused" not in fast
    mixed = ["user_fv:age", "track_fv:title", *PAIR_REFS]
    for full in (False, True):
        fast = repo.reader.get_online_features(mixed, rows, full_feature_names=full)
        assert same(fast, repo.sdk(mixed, rows, full=full))
    assert fast["user_track_fv__plays_by_user"] == [3, 4, None, 7]


def test_values_past_the_ttl_are_returned_like_feast_does(repo: Repo) -> None:
    # u1/t3 was written 0.5 days ago and u2/t3 3 days ago, with a 1-day view TTL; a user
    # written 10 days ago too. Feast 0.67's Redis read ignores the view TTL: so must we.
    stale = {"user_id": ["u9"], "age": [99], "score": [9.5], "weight": [9.0]}
    repo.store.write_to_online_store(
        "user_fv",
        pd.DataFrame(
            stale
            | {"country": ["XX"], "premium": [True], "signup": [_ts(400)], "top_genres": [[]]}
            | {"event_timestamp": [_ts(10)], "created": [NOW]}
        ),
    )
    rows = [{"user_id": "u9"}]
    sdk = repo.sdk(USER_REFS, rows)
    assert sdk["age"] == [99]  # what Feast does today
    assert same(repo.reader.get_online_features(USER_REFS, rows), sdk)
    pair_rows = [{"user_id": "u2", "track_id": "t3"}]
    fast = repo.reader.get_online_features(PAIR_REFS, pair_rows)
    assert same(fast, repo.sdk(PAIR_REFS, pair_rows)) and fast["plays_by_user"] == [7]


def test_new_writes_are_seen_at_once(repo: Repo) -> None:
    frame = pd.DataFrame(
        {"user_id": ["u4"], "track_id": ["t9"], "plays_by_user": [42], "affinity": [0.5]}
        | {"skipped": [True], "event_timestamp": [NOW], "created": [NOW]}
    )
    rows = [{"user_id": "u4", "track_id": "t9"}]
    assert repo.reader.get_online_features(PAIR_REFS, rows)["plays_by_user"] == [None]
    repo.store.write_to_online_store("user_track_fv", frame)
    fast = repo.reader.get_online_features(PAIR_REFS, rows)
    assert same(fast, repo.sdk(PAIR_REFS, rows)) and fast["plays_by_user"] == [42]


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        (["user_fv:age", "user_fv:agee"], "'user_fv' has no feature 'agee'"),
        (["usr_fv:age"], "unknown feature view 'usr_fv'"),
        (["user_fv.age"], "not of the form 'feature_view:feature'"),
        (["track_fv:title", "track_fv:title"], "'title' requested twice"),
    ],
)
def test_bad_feature_refs_raise_value_error(repo: Repo, refs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        repo.reader.get_online_features(refs, [{"user_id": "u1", "track_id": "t1"}])
    if "twice" not in message:  # validate_feature_refs checks names, not collisions
        with pytest.raises(ValueError, match=message):
            validate_feature_refs(repo.store, refs)
    with pytest.raises(Exception):  # noqa: B017 - Feast raises its own, varied errors
        repo.sdk(refs, [{"user_id": "u1", "track_id": "t1"}])


def test_missing_join_key_raises_value_error(repo: Repo) -> None:
    with pytest.raises(ValueError, match="lacks join key 'track_id'"):
        repo.reader.get_online_features(PAIR_REFS, [{"user_id": "u1"}])
