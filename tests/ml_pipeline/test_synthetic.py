"""The synthetic demo dataset: determinism, valid values, and the signals it plants."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from ml_pipeline.data.synthetic import (
    GENRES,
    GroundTruth,
    SyntheticConfig,
    generate,
    generate_with_truth,
)
from musicrec.db.bulk import write_batch
from musicrec.db.models import (
    AUDIO_FEATURES,
    Artist,
    ListeningEvent,
    Playlist,
    PlaylistTrack,
    Track,
    User,
)
from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord
from tests.conftest import backends

AS_OF = datetime(2024, 6, 1, 9, 30, 15, 123456, tzinfo=UTC)
SMALL = SyntheticConfig(n_users=40, n_artists=30, n_tracks=300, days=10, seed=3)
LISTENS = (EventType.PLAY, EventType.SKIP)  # one per session position
UNIT_FEATURES = "danceability energy speechiness acousticness instrumentalness liveness valence"


@pytest.fixture(scope="module")
def data() -> tuple[CatalogBatch, GroundTruth]:
    return generate_with_truth(SyntheticConfig(), AS_OF)


@pytest.fixture(scope="module")
def batch(data: tuple[CatalogBatch, GroundTruth]) -> CatalogBatch:
    return data[0]


@pytest.fixture(scope="module")
def truth(data: tuple[CatalogBatch, GroundTruth]) -> GroundTruth:
    return data[1]


def listens(batch: CatalogBatch) -> list[EventRecord]:
    return [e for e in batch.events if e.event_type in LISTENS]


def sessions(batch: CatalogBatch) -> dict[str, list[EventRecord]]:
    """Each session's events in batch order: per position click, listen, like or dislike."""
    out: defaultdict[str, list[EventRecord]] = defaultdict(list)
    for e in batch.events:
        assert e.session_id is not None
        out[e.session_id].append(e)
    return out


def rate(events: list[EventRecord], kind: EventType) -> float:
    return sum(e.event_type == kind for e in events) / len(events)


def test_same_config_gives_the_same_batch() -> None:
    np.random.seed(1)  # global state must not matter
    first = generate(SMALL, AS_OF)
    np.random.seed(2)
    assert generate(SMALL, AS_OF) == first
    other = generate(replace(SMALL, seed=4), AS_OF)
    assert set(other.tracks).isdisjoint(first.tracks)
    # Event ids name the event's place, not its time: a regenerated batch loads as a no-op.
    later = generate(SMALL, AS_OF + timedelta(days=3))
    assert [e.event_id for e in later.events] == [e.event_id for e in first.events]


@pytest.mark.parametrize(
    ("config", "as_of"),
    [
        (SyntheticConfig(), AS_OF),
        # A short window right after midnight: sessions may neither start before the window nor
        # run past as_of.
        (
            SyntheticConfig(n_users=60, n_artists=30, n_tracks=300, days=1, seed=5),
            datetime(2024, 6, 1, 0, 0, 30, tzinfo=UTC),
        ),
    ],
)
def test_events_fall_in_the_window(config: SyntheticConfig, as_of: datetime) -> None:
    times = [e.occurred_at for e in generate(config, as_of).events]
    assert times and all(t.tzinfo is not None for t in times)
    assert min(times) > as_of - timedelta(days=config.days)
    assert max(times) <= as_of


def test_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        generate(SMALL, datetime(2024, 6, 1))


def test_audio_features_are_valid_and_follow_genres(batch: CatalogBatch) -> None:
    tracks = list(batch.tracks.values())
    assert len(tracks) == SyntheticConfig().n_tracks
    by_genre: defaultdict[str, list[dict[str, float]]] = defaultdict(list)
    for t in tracks:
        assert t.audio_features is not None and set(t.audio_features) == set(AUDIO_FEATURES)
        f = t.audio_features
        assert all(0 <= f[name] <= 1 for name in UNIT_FEATURES.split())
        assert -30 <= f["loudness"] <= 0 and 60 <= f["tempo"] <= 200
        assert f["key"] in range(12) and f["mode"] in (0, 1) and f["time_signature"] in (3, 4)
        assert all(isinstance(f[name], int) for name in ("key", "mode", "time_signature"))
        assert t.genre in GENRES
        by_genre[t.genre].append(f)
    assert len(by_genre) == len(GENRES)
    assert statistics.mean(f["time_signature"] == 4 for fs in by_genre.values() for f in fs) > 0.85

    def mean(genre: str, feature: str) -> float:
        return statistics.mean(f[feature] for f in by_genre[genre])

    def ranked(feature: str) -> list[str]:  # genres by mean feature value, lowest first
        return sorted(GENRES, key=lambda g: mean(g, feature))

    assert ranked("acousticness")[-1] == "classical" == ranked("energy")[0]
    assert ranked("speechiness")[-1] == "hip hop"
    assert mean("classical", "instrumentalness") > 0.7 and mean("classical", "loudness") < -15
    assert mean("electronic", "energy") > 0.75 and mean("electronic", "instrumentalness") > 0.5
    assert mean("hip hop", "danceability") > mean("rock", "danceability")


def test_names_uris_and_durations_look_real(batch: CatalogBatch) -> None:
    tracks = list(batch.tracks.values())
    assert all(re.fullmatch(r"spotify:track:[0-9A-Za-z]{22}", uri) for uri in batch.tracks)
    assert all(re.fullmatch(r"spotify:artist:[0-9A-Za-z]{22}", t.artist_uri or "") for t in tracks)
    assert all(re.fullmatch(r"spotify:album:[0-9A-Za-z]{22}", t.album_uri or "") for t in tracks)
    # One artist per name and per URI: the database merges artists by name.
    artists = {(t.artist_name, t.artist_uri) for t in tracks}
    assert len(artists) == len({a for a, _ in artists}) == SyntheticConfig().n_artists
    words = re.compile(r"[A-Z][a-z]+|of|the|&")
    for name in [t.name for t in tracks] + [t.artist_name for t in tracks]:
        assert all(words.fullmatch(w) for w in name.split()), name
    assert len({t.name for t in tracks}) > len(tracks) / 3
    durations = [t.duration_ms for t in tracks if t.duration_ms is not None]
    assert len(durations) == len(tracks) and 90_000 <= min(durations) <= max(durations) <= 480_000
    assert 190_000 < statistics.median(durations) < 230_000


def test_popularity_follows_a_power_law(batch: CatalogBatch) -> None:
    plays = Counter(e.track_uri for e in listens(batch))
    counts = sorted((plays[uri] for uri in batch.tracks), reverse=True)
    top_share = sum(counts[: len(counts) // 10]) / sum(counts)
    assert top_share > 0.45
    assert sum(c > 0 for c in counts) / len(counts) > 0.55  # the long tail is still heard


def test_sessions_carry_a_sequential_signal(batch: CatalogBatch, truth: GroundTruth) -> None:
    events = listens(batch)
    plays = Counter(e.track_uri for e in events)
    popularity = {uri: n / len(events) for uri, n in plays.items()}
    hits, expected, pairs = 0, 0.0, 0
    for evs in sessions(batch).values():
        seq = [e.track_uri for e in evs if e.event_type in LISTENS]
        for current, following in zip(seq, seq[1:], strict=False):
            successors = truth.successors[current]
            hits += following in successors
            # What a model that only knows popularity would put on the successors.
            expected += sum(popularity.get(s, 0.0) for s in successors)
            pairs += 1
    assert all(1 <= len(s) <= 3 for s in truth.successors.values())
    assert hits / pairs > 0.45
    assert hits > 5 * expected


def test_skips_depend_on_taste(batch: CatalogBatch, truth: GroundTruth) -> None:
    events = listens(batch)
    assert 0.15 <= rate(events, EventType.SKIP) <= 0.35
    inside: list[EventRecord] = []
    outside: list[EventRecord] = []
    for e in events:
        genre = batch.tracks[e.track_uri].genre
        assert genre is not None
        liked = truth.genre_preferences[e.user_external_id][genre] >= 0.15
        (inside if liked else outside).append(e)
    assert len(outside) > 1000
    assert rate(outside, EventType.SKIP) > rate(inside, EventType.SKIP) + 0.15


def test_user_genre_mixes_are_concentrated(truth: GroundTruth) -> None:
    prefs = np.array([list(p.values()) for p in truth.genre_preferences.values()])
    assert prefs.shape == (SyntheticConfig().n_users, len(GENRES))
    assert np.allclose(prefs.sum(axis=1), 1.0)
    assert np.sort(prefs, axis=1)[:, -3:].sum(axis=1).mean() > 0.75
    assert len(set(prefs.argmax(axis=1).tolist())) >= 8  # yet users differ


def test_event_types_and_durations(batch: CatalogBatch) -> None:
    for evs in sessions(batch).values():
        for prev, e, nxt in zip([None, *evs[:-1]], evs, [*evs[1:], None], strict=True):
            if e.event_type == EventType.SKIP:
                assert e.ms_played is not None and 5_000 <= e.ms_played <= 30_000
            elif e.event_type == EventType.PLAY:
                duration = batch.tracks[e.track_uri].duration_ms
                assert duration and e.ms_played and 0.8 * duration <= e.ms_played <= duration
            else:
                assert e.ms_played is None
            # A click opens its position; a like or dislike closes it after the listen.
            if e.event_type == EventType.CLICK:
                assert nxt and nxt.event_type in LISTENS and nxt.position == e.position
            if e.event_type in (EventType.LIKE, EventType.DISLIKE):
                listen = EventType.PLAY if e.event_type == EventType.LIKE else EventType.SKIP
                assert prev and prev.event_type == listen and prev.position == e.position
    events = listens(batch)
    plays = [e for e in events if e.event_type == EventType.PLAY]
    skips = [e for e in events if e.event_type == EventType.SKIP]
    assert 0.03 < sum(e.event_type == EventType.LIKE for e in batch.events) / len(plays) < 0.07
    assert 0.005 < sum(e.event_type == EventType.DISLIKE for e in batch.events) / len(skips) < 0.04
    assert 0.06 < sum(e.event_type == EventType.CLICK for e in batch.events) / len(events) < 0.15
    assert 0.6 < statistics.mean(
        e.ms_played == batch.tracks[e.track_uri].duration_ms for e in plays
    )


def test_sessions_are_well_formed(batch: CatalogBatch, truth: GroundTruth) -> None:
    assert len({e.event_id for e in batch.events}) == len(batch.events)
    on_preferred_device = near_preferred_hour = 0
    all_sessions = sessions(batch)
    for evs in all_sessions.values():
        assert len({(e.user_external_id, e.device) for e in evs}) == 1
        assert all(a.occurred_at < b.occurred_at for a, b in zip(evs, evs[1:], strict=False))
        positions = [e.position for e in evs if e.event_type in LISTENS]
        assert positions == list(range(len(positions)))
        user = evs[0].user_external_id
        on_preferred_device += evs[0].device == truth.preferred_device[user]
        hour = evs[0].occurred_at.hour + evs[0].occurred_at.minute / 60
        distance = min(min(abs(hour - h), 24 - abs(hour - h)) for h in truth.preferred_hours[user])
        near_preferred_hour += distance <= 2.5
    assert on_preferred_device / len(all_sessions) > 0.8
    assert near_preferred_hour / len(all_sessions) > 0.8
    per_user = Counter(evs[0].user_external_id for evs in all_sessions.values())
    assert 5 < len(all_sessions) / len(per_user) < 7


def test_references_and_playlists(batch: CatalogBatch) -> None:
    users = [f"demo:user:{u}" for u in range(SyntheticConfig().n_users)]
    assert list(batch.users) == users and all(batch.users.values())
    assert {e.user_external_id for e in batch.events} <= set(users)
    assert {e.track_uri for e in batch.events} <= set(batch.tracks)
    kept: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for e in batch.events:
        if e.event_type == EventType.PLAY:
            kept[e.user_external_id][e.track_uri] += 1
    assert [p.user_external_id for p in batch.playlists] == users
    for pid, playlist in enumerate(batch.playlists):
        assert (playlist.source, playlist.pid) == ("demo", pid)
        assert playlist.name.removesuffix(" favourites").lower() in GENRES
        uris = playlist.track_uris
        assert len(uris) == len(set(uris)) == min(40, len(kept[playlist.user_external_id]))
        counts = [kept[playlist.user_external_id][uri] for uri in uris]
        assert set(uris) <= set(batch.tracks) and all(counts)
        assert counts == sorted(counts, reverse=True)  # most played first


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


@backends
def test_batch_loads_into_a_fresh_database_once(engine: Engine) -> None:
    batch = generate(SMALL, AS_OF)
    written = write_batch(engine, batch)
    assert written.events == len(batch.events) > 0
    expected = {
        User: len(batch.users),
        Artist: SMALL.n_artists,
        Track: len(batch.tracks),
        ListeningEvent: len(batch.events),
        Playlist: len(batch.playlists),
        PlaylistTrack: batch.playlist_track_rows,
    }
    assert {m: count(engine, m) for m in expected} == expected
    again = write_batch(engine, generate(SMALL, AS_OF))
    assert again.as_dict() == dict.fromkeys(again.as_dict(), 0)
    assert {m: count(engine, m) for m in expected} == expected
