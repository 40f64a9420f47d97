"""The feature batch job against numbers computed by hand, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from feature_store.compute import compute_features
from feature_store.state_views import RECENT_TRACKS
from musicrec.db.bulk import write_batch
from musicrec.db.models import (
    FEAT_TRACK_AUDIO_FEATURES,
    FEAT_TRACK_POPULARITY,
    FEAT_USER_AUDIO_PREFERENCES,
    FEAT_USER_LISTENING_STATS,
    FEAT_USER_RECENT_TRACKS,
    FEAT_USER_TRACK_INTERACTIONS,
    Track,
)
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord
from musicrec.timeutil import as_utc
from tests.conftest import backends
from tests.feature_store.event_set import T0, T1, T2, T3, batch

MINUTE = timedelta(minutes=1)


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


@backends
def test_rerun_after_a_track_changed_replaces_its_row_at_the_same_time(events: Engine) -> None:
    """Historical data: every run is as of the newest event, T0. A track whose audio features
    change after the first run (a newer features file) is written again at T0, as of which it
    is known: the row of that key is replaced, not added (it used to fail on the key)."""
    compute_features(events, T0)
    counts = _table_counts(events)
    with events.begin() as conn:  # what an audio-features join does to a track
        conn.execute(
            update(Track)
            .where(Track.spotify_uri == T1)
            .values(energy=0.9, updated_at=datetime.now(UTC))
        )
    report = compute_features(events, T0)
    assert report.rows["track_audio_features"] == 1
    assert _table_counts(events) == counts
    row = _latest(events, FEAT_TRACK_AUDIO_FEATURES, track_id=T1)
    assert row["energy"] == 0.9 and as_utc(row["event_timestamp"]) == T0
    assert sum(compute_features(events, T0).rows.values()) == 0


def _table_counts(engine: Engine) -> dict[str, int]:
    tables = (
        FEAT_TRACK_AUDIO_FEATURES,
        FEAT_TRACK_POPULARITY,
        FEAT_USER_AUDIO_PREFERENCES,
        FEAT_USER_LISTENING_STATS,
        FEAT_USER_RECENT_TRACKS,
        FEAT_USER_TRACK_INTERACTIONS,
    )
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables
        }


# --- user_recent_tracks -----------------------------------------------------------------------


def _add_events(
    engine: Engine, events: list[tuple[str, str, EventType, datetime]], **ids: uuid.UUID
) -> None:
    """Store (user, track, type, time) events; `ids` pins the id of the event at index "e<i>"."""
    b = CatalogBatch(users={user: None for user, *_ in events})
    b.events = [
        EventRecord(ids.get(f"e{i}", uuid.uuid4()), user, track, kind, when)
        for i, (user, track, kind, when) in enumerate(events)
    ]
    write_batch(engine, b)


def _sequence(engine: Engine, user: str, at: datetime | None = None) -> tuple[list[str], datetime]:
    row = (
        _latest(engine, FEAT_USER_RECENT_TRACKS, user_id=user)
        if at is None
        else _at(engine, FEAT_USER_RECENT_TRACKS, at, user_id=user)
    )
    assert row["n_tracks"] == len(row["track_ids"].split())
    assert row["created"] == row["event_timestamp"]
    return row["track_ids"].split(), as_utc(row["event_timestamp"])


def _row_count(engine: Engine, user: str) -> int:
    table = FEAT_USER_RECENT_TRACKS
    with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.user_id == user)
        return int(conn.execute(query).scalar_one())


@backends
def test_recent_tracks_are_plays_clicks_and_likes_oldest_first_as_of_each_run(
    events: Engine,
) -> None:
    compute_features(events, T0 - timedelta(hours=36))
    report = compute_features(events, T0)
    assert report.rows["user_recent_tracks"] == 2  # u1 and u2 both played since the first run
    # u1: plays at -10d, -2d and -1d and the like at -3d; the skip (-1d + 5 min) is left out.
    assert _sequence(events, "u1") == ([T3, T3, T1, T1], T0 - timedelta(days=1))
    assert _sequence(events, "u2") == ([T1, T1], T0 - timedelta(hours=1))
    # Point in time: the first run's rows hold only what had happened by then, and are
    # stamped no later than their newest event.
    early = T0 - timedelta(hours=36)
    assert _sequence(events, "u1", early) == ([T3, T3, T1], T0 - timedelta(days=2))
    assert _sequence(events, "u2", early) == ([T1], T0 - timedelta(days=12))


@backends
def test_recent_tracks_keep_the_last_fifty_and_rewrite_only_changed_users(events: Engine) -> None:
    compute_features(events, T0)
    start = T0 + timedelta(hours=1)
    cycle = [T1, T2, T3]
    u3 = [
        ("u3", cycle[i % 3], EventType.PLAY if i % 2 else EventType.CLICK, start + i * MINUTE)
        for i in range(RECENT_TRACKS + 10)
    ]
    last = start + (RECENT_TRACKS + 10) * MINUTE
    tie = [("u3", T3, EventType.PLAY, last), ("u3", T2, EventType.CLICK, last)]
    after = [
        ("u3", T1, EventType.SKIP, last + MINUTE),
        ("u3", T1, EventType.DISLIKE, last + MINUTE),
        ("u1", T2, EventType.SKIP, last),  # u1 has nothing new for the sequence
    ]
    # Same time: the larger event id counts as the later event (stored first here).
    _add_events(events, tie + u3 + after, e0=uuid.UUID(int=2), e1=uuid.UUID(int=1))
    report = compute_features(events, T0 + timedelta(days=1))
    assert report.rows["user_recent_tracks"] == 1
    expected = ([t for _, t, _, _ in u3] + [T2, T3])[-RECENT_TRACKS:]
    assert _sequence(events, "u3") == (expected, last)
    assert (_row_count(events, "u1"), _row_count(events, "u2")) == (1, 1)

    _add_events(events, [("u1", T2, EventType.CLICK, T0 + timedelta(days=1, hours=1))])
    report = compute_features(events, T0 + timedelta(days=2))
    assert report.rows["user_recent_tracks"] == 1
    assert _sequence(events, "u1") == ([T3, T3, T1, T1, T2], T0 + timedelta(days=1, hours=1))
    # The old row stays for point-in-time joins before the click.
    assert _sequence(events, "u1", T0 + timedelta(days=1))[0] == [T3, T3, T1, T1]
    assert _row_count(events, "u3") == 1
