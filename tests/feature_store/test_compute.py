"""The feature batch job against numbers computed by hand, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from feature_store.compute import compute_features
from musicrec.db.bulk import write_batch
from musicrec.db.models import (
    FEAT_TRACK_AUDIO_FEATURES,
    FEAT_TRACK_POPULARITY,
    FEAT_USER_AUDIO_PREFERENCES,
    FEAT_USER_LISTENING_STATS,
    FEAT_USER_TRACK_INTERACTIONS,
)
from tests.conftest import backends
from tests.feature_store.event_set import T0, T1, batch


def _latest(engine: Engine, table, **keys):  # type: ignore[no-untyped-def]
    query = select(table).order_by(table.c.event_timestamp.desc()).limit(1)
    for name, value in keys.items():
        query = query.where(table.c[name] == value)
    with engine.connect() as conn:
        return conn.execute(query).mappings().one()


def _at(engine: Engine, table, at, **keys):  # type: ignore[no-untyped-def]
    """The row a point-in-time join at `at` would pick: the newest one not after it."""
    query = select(table).where(table.c.event_timestamp <= at)
    for name, value in keys.items():
        query = query.where(table.c[name] == value)
    with engine.connect() as conn:
        return (
            conn.execute(query.order_by(table.c.event_timestamp.desc()).limit(1)).mappings().one()
        )


@pytest.fixture
def events(engine: Engine) -> Engine:
    write_batch(engine, batch())
    return engine


@backends
def test_values_match_hand_computation(events: Engine) -> None:
    report = compute_features(events, T0)
    assert report.rows["track_audio_features"] == 3

    s = _latest(events, FEAT_USER_LISTENING_STATS, user_id="u1")
    # 7 days back: plays at -1d and -2d, a skip at -1d, a like at -3d (the -10d play is out).
    assert (s["plays"], s["skips"], s["distinct_tracks"], s["distinct_artists"]) == (2, 1, 3, 2)
    assert s["skip_rate"] == pytest.approx(1 / 3)
    assert s["completed_play_ratio"] == pytest.approx(0.5)  # 100 of 200 s is not completed
    assert s["listening_minutes"] == pytest.approx(310_000 / 60_000)
    assert s["sessions"] == 2 and s["mean_session_minutes"] == pytest.approx(310_000 / 120_000)

    p = _latest(events, FEAT_USER_AUDIO_PREFERENCES, user_id="u1")
    # Weights play 1, like 2, skip -0.5 over 30 days: (.8 - .1 + .8 + 1.0 + .5) / 4.5
    assert p["pref_energy"] == pytest.approx(3.0 / 4.5)
    assert p["spread_energy"] == pytest.approx(0.15)  # std of .8 .8 .5 .5 (plays and likes)

    pop = _latest(events, FEAT_TRACK_POPULARITY, track_id=T1)
    assert (pop["plays"], pop["unique_listeners"], pop["skip_rate"]) == (3, 2, 0.0)
    assert pop["trend"] == pytest.approx((3 - 1) / 1)  # one play in the week before

    i = _latest(events, FEAT_USER_TRACK_INTERACTIONS, user_id="u1", track_id=T1)
    assert (i["plays"], i["skips"]) == (2, 0)
    assert i["last_played_at"].replace(tzinfo=None) == (T0 - timedelta(days=1)).replace(tzinfo=None)

    t = _latest(events, FEAT_TRACK_AUDIO_FEATURES, track_id=T1)
    assert (t["energy"], t["duration_ms"], t["genre"]) == (0.8, 200_000, "pop")
    assert len(t["text_embedding_id"]) == 40


@backends
def test_snapshots_are_point_in_time_and_expire(events: Engine) -> None:
    compute_features(events, T0 - timedelta(hours=36))
    compute_features(events, T0 + timedelta(days=40))
    early = _at(events, FEAT_USER_LISTENING_STATS, T0 - timedelta(hours=36), user_id="u1")
    # Only what happened by then: the -2d play and the -3d like.
    assert (early["plays"], early["skips"]) == (1, 0)
    at_t0 = _at(events, FEAT_USER_LISTENING_STATS, T0, user_id="u1")
    assert (at_t0["plays"], at_t0["skips"]) == (2, 1)  # the daily snapshot at T0's midnight
    # Long after, the events have left the window: a row of zeros, not the old counts.
    late = _latest(events, FEAT_USER_LISTENING_STATS, user_id="u1")
    assert (late["plays"], late["skips"], late["listening_minutes"]) == (0, 0, 0.0)
    assert late["event_timestamp"].replace(tzinfo=None) <= (T0 + timedelta(days=40)).replace(
        tzinfo=None
    )


@backends
def test_rerun_writes_nothing_and_rebuild_is_identical(events: Engine) -> None:
    first = compute_features(events, T0)
    assert sum(compute_features(events, T0).rows.values()) == 0
    rebuilt = compute_features(events, T0, rebuild=True)
    assert rebuilt.rows == first.rows
