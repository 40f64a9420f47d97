"""No training/serving skew in the online features: for the same events, what the feedback
consumer pushes (feature_store.push) equals what the batch job computes and materializes
(feature_store.compute), feature by feature, in both modes; and the online sequence of recent
tracks is the one the sequence model is trained on."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from feature_store.online import OnlineFeatures, recent_tracks
from feature_store.push import push_events
from feature_store.state_views import RECENT_TRACKS
from feature_store.store import apply, materialize, open_store
from ml_pipeline.data.sequences import load_from_database
from musicrec.config import Settings
from musicrec.db.bulk import write_batch
from musicrec.events import EventContext, EventType, ListeningEvent
from musicrec.records import CatalogBatch
from tests.feature_store.event_set import T1, T2, T3, batch, store_events

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 45  # longer than both windows (7 and 30 days)
EXTRA = [f"spotify:track:{n:022d}" for n in range(4, 9)]
TRACKS = [T1, T2, T3, *EXTRA]
# Weighted like a real stream: mostly plays, some skips, a few of the rest.
KINDS = [
    *[EventType.PLAY] * 5,
    *[EventType.SKIP] * 3,
    EventType.LIKE,
    EventType.CLICK,
    EventType.DISLIKE,
]
BATCH = 12  # events per consumer batch
# What both paths write: the listener's stats and sequence, the listener–track interaction.
PUSHED = ("user_listening_stats__", "user_recent_tracks__", "user_track_interactions__")


def _catalog() -> CatalogBatch:
    """Five more tracks, two of them by a third artist."""
    model = batch().tracks[T1]
    tracks = {
        uri: dataclasses.replace(
            model, uri=uri, artist_name="Artist C" if i < 2 else "Artist A", duration_ms=150_000
        )
        for i, uri in enumerate(EXTRA)
    }
    return CatalogBatch(tracks=tracks)


def _event(rng: random.Random, user: str, when: datetime, kind: EventType) -> ListeningEvent:
    ms = {EventType.PLAY: rng.randrange(5_000, 240_000), EventType.SKIP: rng.randrange(30_000)}
    session = rng.choice([None, f"{user}-{when:%j}", f"{user}-{when:%j}-late"])
    return ListeningEvent(
        user_id=user,
        track_id=rng.choice(TRACKS),
        event_type=kind,
        occurred_at=when,
        ms_played=ms.get(kind),
        context=EventContext(session_id=session),
    )


def _stream() -> list[ListeningEvent]:
    """Three listeners over DAYS days at random minutes (c pauses for longer than a week, so
    their counts must drop to the new week's), d, who never clicks, every 9 hours, and e."""
    rng = random.Random(22)
    events = []
    for user in ("a", "b", "c"):
        for day in range(DAYS):
            if rng.random() < 0.3 or (user == "c" and 12 <= day < 22):
                continue
            for _ in range(rng.randint(1, 6)):
                when = START + timedelta(days=day, minutes=rng.randrange(24 * 60))
                events.append(_event(rng, user, when, rng.choice(KINDS)))
    d_kinds = [EventType.PLAY, EventType.PLAY, EventType.LIKE, EventType.SKIP, EventType.DISLIKE]
    for hour in range(0, DAYS * 24, 9):
        events.append(_event(rng, "d", START + timedelta(hours=hour), rng.choice(d_kinds)))
    # Events at the same instant: their order in the sequence must not depend on the path.
    for original in events[:40:8]:
        events.append(_event(rng, original.user_id, original.occurred_at, EventType.PLAY))
    # e plays every 20 hours up to the end; their sequence is cut between two plays at once.
    last = START + timedelta(days=DAYS, hours=-1)
    times = [last - timedelta(hours=20 * i) for i in range(RECENT_TRACKS + 4)]
    times[RECENT_TRACKS] = times[RECENT_TRACKS - 1]
    events += [_event(rng, "e", when, EventType.PLAY) for when in times]
    return sorted(events, key=lambda e: e.occurred_at)


@pytest.fixture
def two_stores(
    feature_env: tuple[Settings, Engine],
) -> Iterator[tuple[Engine, OnlineFeatures, Settings, OnlineFeatures]]:
    """One database; two Feast projects: one fed by pushes, one by the batch job."""
    settings, engine = feature_env
    write_batch(engine, _catalog())
    batch_settings = settings.model_copy(
        update={
            "feast_project": f"{settings.feast_project}b",
            "var_dir": settings.var_dir / "batch",
        }
    )
    for each in (settings, batch_settings):  # registered before readers are opened
        apply(each, engine)
    pushed = OnlineFeatures.for_settings(settings)
    yield engine, pushed, batch_settings, OnlineFeatures.for_settings(batch_settings)
    open_store(batch_settings).teardown()


def _values(features: OnlineFeatures, users: list[str], pairs: list[tuple[str, str]]) -> dict:
    """The pushed views' values by (entity, feature), floats rounded off."""
    out: dict[tuple[Any, str], Any] = {}
    rows = zip(
        [*users, *pairs],
        [*features.stored_user_features(users), *features.pair_features(pairs)],
        strict=True,
    )
    for key, row in rows:
        for name, value in row.items():
            if name.startswith(PUSHED):
                out[key, name] = round(value, 9) if isinstance(value, float) else value
    return out


def test_pushed_features_equal_the_batch_jobs(
    two_stores: tuple[Engine, OnlineFeatures, Settings, OnlineFeatures],
) -> None:
    """The consumer's batches are stored and pushed one after another; at checkpoints the batch
    job runs as of the newest event, and every listener and pair of the batch just pushed must
    read the same online in both stores. (An entity without events since its last push is left
    as it was by pushes, until the next batch run: it is not compared.)"""
    engine, pushed, batch_settings, batched = two_stores
    events = _stream()
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    rng = random.Random(4)
    compared = 0
    for n, chunk in enumerate(batches):
        store_events(engine, chunk)
        push_events(pushed, rng.sample(chunk, len(chunk)), engine)  # any arrival order
        if n % 10 != 9 and n != len(batches) - 1:
            continue
        materialize(batch_settings, engine, max(e.occurred_at for e in chunk))
        users = sorted({e.user_id for e in chunk})
        pairs = sorted({(e.user_id, e.track_id) for e in chunk})
        assert _values(pushed, users, pairs) == _values(batched, users, pairs), f"batch {n}"
        compared += 1
    assert compared >= 4 and "e" in users
    # The window did drop events: a's plays online are a fraction of all of a's plays.
    total = sum(e.user_id == "a" and e.event_type == EventType.PLAY for e in events)
    (a,) = pushed.stored_user_features(["a"])
    assert 0 < a["user_listening_stats__plays"] < total / 3


def test_the_online_sequence_is_the_training_sequence(
    two_stores: tuple[Engine, OnlineFeatures, Settings, OnlineFeatures],
) -> None:
    """d never clicks (clicks are serving-only seeds): d's recent tracks online, pushed or
    materialized, are the last RECENT_TRACKS of the history the model trains on (plays and
    likes)."""
    engine, pushed, batch_settings, batched = two_stores
    events = [e for e in _stream() if e.user_id == "d"]
    for i in range(0, len(events), BATCH):
        store_events(engine, events[i : i + BATCH])
        push_events(pushed, events[i : i + BATCH], engine)
    materialize(batch_settings, engine, events[-1].occurred_at)

    data = load_from_database(engine)
    history = [data.vocabulary[item] for item in data.sequences[data.users.index("d")]]
    assert len(history) > RECENT_TRACKS
    assert any(e.event_type == EventType.LIKE for e in events)
    for features in (pushed, batched):
        assert recent_tracks(features.stored_user_features(["d"])[0]) == history[-RECENT_TRACKS:]
