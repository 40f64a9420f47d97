"""The feature store end to end: materialized values read back online (embedded: SQLite online
store; services: Postgres offline store + the real Redis), defaults, pushes, training joins."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine

from feature_store.online import OnlineFeatures, UnknownFeature, recent_tracks
from feature_store.push import push_events
from feature_store.state_views import RECENT_TRACKS
from feature_store.store import materialize, open_store
from musicrec.config import Settings
from musicrec.events import EventType, ListeningEvent
from tests.feature_store.event_set import T0, T1, T2, T3, store_events


@pytest.fixture
def online(feature_env: tuple[Settings, Engine]) -> OnlineFeatures:
    settings, engine = feature_env
    materialize(settings, engine, T0)
    return OnlineFeatures.for_settings(settings)


def test_online_values_are_the_materialized_ones(online: OnlineFeatures) -> None:
    u1 = online.user_features("u1", device="desktop", request_time=T0)
    assert (u1["user_listening_stats__plays"], u1["user_listening_stats__skips"]) == (2, 1)
    assert u1["user_audio_preferences__pref_energy"] == pytest.approx(3.0 / 4.5)
    assert u1["context_aware_features__device_type"] == "desktop"
    assert u1["context_aware_features__hour_of_day"] == 12
    # last event: the skip 1 day minus 5 minutes before T0
    assert u1["context_aware_features__seconds_since_last_play"] == pytest.approx(86_100)
    assert u1["user_recent_tracks__track_ids"] == f"{T3} {T3} {T1} {T1}"  # the like at -3d too
    assert u1["user_recent_tracks__n_tracks"] == 4
    assert recent_tracks(u1) == [T3, T3, T1, T1]

    t1, t2 = online.track_features([T1, T2])
    assert (t1["track_popularity__plays"], t1["track_popularity__trend"]) == (3, 2.0)
    assert (t1["track_audio_features__energy"], t2["track_audio_features__energy"]) == (0.8, 0.2)
    pair = online.user_track_features("u1", [T1])[0]
    assert pair["user_track_interactions__plays"] == 2


def test_unknown_entities_get_defaults_and_bad_names_a_clear_error(online: OnlineFeatures) -> None:
    nobody = online.user_features("nobody")
    assert nobody["user_listening_stats__plays"] == 0
    assert nobody["user_listening_stats__skip_rate"] == 0
    assert nobody["user_audio_preferences__pref_energy"] is None  # unknown taste
    assert (nobody["user_recent_tracks__track_ids"], nobody["user_recent_tracks__n_tracks"]) == (
        "",
        0,
    )
    assert recent_tracks(nobody) == []
    (unknown_track,) = online.track_features(["spotify:track:unknown"])
    assert unknown_track["track_popularity__plays"] == 0
    assert unknown_track["track_audio_features__energy"] is None
    with pytest.raises(UnknownFeature, match="track_popularity__playz"):
        online.track_features([T1], ["track_popularity__playz"])


def _consume(online: OnlineFeatures, engine: Engine, events: list[ListeningEvent]) -> None:
    """What the feedback consumer does with a batch: store the events, then push them."""
    store_events(engine, events)
    push_events(online, events, engine)


def test_a_pushed_event_is_visible_at_once(
    online: OnlineFeatures, feature_env: tuple[Settings, Engine]
) -> None:
    event = ListeningEvent(
        user_id="u1",
        track_id=T2,
        event_type=EventType.PLAY,
        occurred_at=T0 + timedelta(minutes=1),
        ms_played=95_000,
    )
    _consume(online, feature_env[1], [event])
    u1 = online.user_features("u1", request_time=T0 + timedelta(minutes=2))
    assert (u1["user_listening_stats__plays"], u1["user_listening_stats__skips"]) == (3, 1)
    assert u1["user_listening_stats__completed_play_ratio"] == pytest.approx(2 / 3)
    assert u1["context_aware_features__seconds_since_last_play"] == pytest.approx(60)
    pair = online.user_track_features("u1", [T2])[0]
    assert (pair["user_track_interactions__plays"], pair["user_track_interactions__skips"]) == (
        1,
        1,
    )
    assert recent_tracks(u1) == [T3, T3, T1, T1, T2]
    assert u1["user_recent_tracks__n_tracks"] == 5


def test_a_batch_pushes_what_its_events_push_one_at_a_time(
    online: OnlineFeatures, feature_env: tuple[Settings, Engine]
) -> None:
    """The consumer pushes a whole batch at once; the result must not depend on that. Two sets
    of listeners get the same history, one event at a time, then the same events: one set one
    at a time, the other as one batch."""
    minute = timedelta(minutes=1)

    def events(prefix: str, start: int, rows: list[tuple]) -> list[ListeningEvent]:
        return [
            ListeningEvent(
                user_id=prefix + user,
                track_id=track,
                event_type=kind,
                occurred_at=T0 + (start + i) * minute,
                ms_played=ms,
            )
            for i, (user, track, kind, ms) in enumerate(rows)
        ]

    history = [("a", T2, EventType.PLAY, 95_000), ("a", T1, EventType.SKIP, 1_000)]
    batch_rows = [
        ("a", T2, EventType.PLAY, 95_000),
        ("b", T1, EventType.SKIP, 3_000),  # a new listener: no sequence yet
        ("a", T2, EventType.SKIP, 1_000),  # the same pair twice in one batch
        ("b", T3, EventType.CLICK, None),
        ("a", T1, EventType.PLAY, 10_000),
        ("b", T3, EventType.PLAY, 200_000),
    ]
    engine = feature_env[1]
    for prefix in ("single-", "batch-"):
        for event in events(prefix, 0, history):
            _consume(online, engine, [event])
    for event in events("single-", 10, batch_rows):
        _consume(online, engine, [event])
    _consume(online, engine, events("batch-", 10, batch_rows))

    single, batched = _pushed(online, "single-"), _pushed(online, "batch-")
    assert batched == single
    assert single["b"]["user_recent_tracks__track_ids"] == f"{T3} {T3}"
    assert single["a"]["user_recent_tracks__track_ids"] == f"{T2} {T2} {T1}"
    assert single["a"]["user_listening_stats__plays"] == 3
    assert single[("a", T2)]["user_track_interactions__plays"] == 2
    assert single[("a", T2)]["user_track_interactions__skips"] == 1


def _pushed(online: OnlineFeatures, prefix: str) -> dict[object, dict]:
    users = ["a", "b"]
    pairs = [(user, track) for user in users for track in (T1, T2, T3)]
    return {
        **dict(zip(users, online.stored_user_features([prefix + u for u in users]), strict=True)),
        **dict(
            zip(
                pairs,
                online.pair_features([(prefix + u, t) for u, t in pairs]),
                strict=True,
            )
        ),
    }


def test_pushed_plays_clicks_and_likes_extend_the_sequence_up_to_its_cap(
    online: OnlineFeatures, feature_env: tuple[Settings, Engine]
) -> None:
    minute = 0

    def push(events: list[tuple[EventType, str]]) -> list[str]:
        nonlocal minute
        batch = []
        for kind, track in events:
            minute += 1
            when = T0 + timedelta(minutes=minute)
            batch.append(
                ListeningEvent(user_id="u9", track_id=track, event_type=kind, occurred_at=when)
            )
        _consume(online, feature_env[1], batch)
        values = online.user_features("u9")
        assert values["user_recent_tracks__n_tracks"] == len(recent_tracks(values))
        return recent_tracks(values)

    assert push([(EventType.SKIP, T1)]) == []  # a new listener's skip starts no sequence
    assert push([(EventType.CLICK, T2)]) == [T2]
    more = [T1, T2, T3] * (RECENT_TRACKS // 3 + 1)  # one batch past the cap
    full = [T2, *more][-RECENT_TRACKS:]
    assert push([(EventType.PLAY, t) for t in more]) == full
    assert push([(EventType.PLAY, T3)]) == [*full[1:], T3]  # the oldest one drops out
    for kind in (EventType.SKIP, EventType.DISLIKE):
        assert push([(kind, T1)]) == [*full[1:], T3]  # skips and dislikes do not count
    assert push([(EventType.LIKE, T1)]) == [*full[2:], T3, T1]


def test_training_join_is_point_in_time(feature_env: tuple[Settings, Engine]) -> None:
    settings, engine = feature_env
    materialize(settings, engine, T0 + timedelta(days=20))
    store = open_store(settings)
    entity_df = pd.DataFrame(
        {
            "user_id": ["u1"] * 4,
            # before any event; 36 h before T0; after the events left the 7-day window;
            # more than the 7-day TTL after the last row
            "event_timestamp": [
                T0 - timedelta(days=30),
                T0 - timedelta(hours=36),
                T0 + timedelta(days=8),
                T0 + timedelta(days=15),
            ],
        }
    )
    df = store.get_historical_features(
        entity_df=entity_df,
        features=["user_listening_stats:plays", "user_listening_stats:skips"],
    ).to_df()
    # Feast's Postgres store keeps entity rows without a value (NaN); its file store drops them.
    found = {
        _utc(ts): (plays, skips)
        for ts, plays, skips in zip(df["event_timestamp"], df["plays"], df["skips"], strict=True)
        if not pd.isna(plays)
    }
    before, at_36h, after, expired = (_utc(t) for t in entity_df["event_timestamp"])
    assert before not in found  # nothing known yet: no value from the future leaks in
    assert found[at_36h] == (1, 0)  # the midnight snapshot 36 h before T0: the -2d play only
    assert found[after] == (0, 0)  # a zero row replaced the counts when they left the window
    assert expired not in found  # that zero row is older than the view's 7-day TTL
    # Separately: the file store drops an entity row that misses any requested view's value.
    df = store.get_historical_features(
        entity_df=entity_df, features=["user_recent_tracks:track_ids"]
    ).to_df()
    sequences = {
        _utc(ts): tracks
        for ts, tracks in zip(df["event_timestamp"], df["track_ids"], strict=True)
        if isinstance(tracks, str)
    }
    # One row, stamped with u1's last play (1 day before T0), which never expires.
    assert sequences == {after: f"{T3} {T3} {T1} {T1}", expired: f"{T3} {T3} {T1} {T1}"}


def _utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def test_fast_path_returns_what_the_sdk_returns(online: OnlineFeatures) -> None:
    """Redis: the fast reader; SQLite: the SDK's reads with the context computed here, against
    the SDK's reads and on-demand view."""
    sdk = OnlineFeatures(online.store, fast=False)
    assert (online.reader is None) == (online.store.config.online_store.type == "sqlite")
    for user in ("u1", "u2", "nobody"):
        kwargs = {"device": "web", "position_in_session": 4, "request_time": T0}
        assert online.user_features(user, **kwargs) == sdk.user_features(user, **kwargs)
    tracks = [T1, T2, "spotify:track:unknown"]
    assert online.track_features(tracks) == sdk.track_features(tracks)
    assert online.user_track_features("u1", tracks) == sdk.user_track_features("u1", tracks)
    wanted = ["user_listening_stats__plays", "context_aware_features__hour_of_day"]
    assert online.user_features("u1", features=wanted, request_time=T0) == {
        "user_listening_stats__plays": 2,
        "context_aware_features__hour_of_day": 12,
    }
