"""Synthetic listening data for the demo, used when no real dataset is available.

Genres give tracks their audio features; artists and tracks have Zipf-like popularity; users have
a genre mix, a device and favourite hours. Sessions follow a fixed successor graph, so that a
sequential model has real signal to learn, and skips depend on how far a track is from the
user's taste. Everything comes from one numpy Generator, so a (config, as_of) pair always yields
the same batch. Event ids are uuid5 of the config and the event's place (user, session, position,
type), not of its time: loading a regenerated batch again adds nothing, even for another as_of.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from musicrec.events import EventType
from musicrec.records import CatalogBatch, EventRecord, PlaylistRecord, TrackRecord
from musicrec.text import match_key

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

GENRES = tuple("pop|rock|hip hop|electronic|jazz|classical|country|r&b|indie|latin".split("|"))
GENRE_SHARE = np.array([0.18, 0.13, 0.15, 0.11, 0.06, 0.05, 0.08, 0.09, 0.09, 0.06])
# The audio features drawn around a genre centroid; key, mode and time signature are categorical.
CONTINUOUS = tuple(
    "danceability energy speechiness acousticness instrumentalness "
    "liveness valence loudness tempo".split()
)
# One row per genre: the CONTINUOUS centroid, then P(major mode) and P(3/4 time).
PROFILE = np.array(
    [
        [0.68, 0.68, 0.07, 0.18, 0.02, 0.16, 0.55, -6.0, 118, 0.65, 0.03],  # pop
        [0.50, 0.80, 0.06, 0.10, 0.08, 0.20, 0.48, -5.5, 126, 0.70, 0.04],  # rock
        [0.78, 0.65, 0.30, 0.14, 0.02, 0.18, 0.50, -6.5, 95, 0.55, 0.02],  # hip hop
        [0.70, 0.85, 0.07, 0.05, 0.70, 0.15, 0.40, -5.0, 126, 0.45, 0.02],  # electronic
        [0.55, 0.35, 0.06, 0.75, 0.55, 0.22, 0.50, -13.0, 112, 0.55, 0.12],  # jazz
        [0.28, 0.15, 0.04, 0.92, 0.88, 0.12, 0.25, -22.0, 98, 0.60, 0.20],  # classical
        [0.60, 0.62, 0.04, 0.30, 0.01, 0.18, 0.62, -7.0, 120, 0.85, 0.08],  # country
        [0.68, 0.52, 0.10, 0.28, 0.03, 0.14, 0.48, -7.5, 100, 0.50, 0.05],  # r&b
        [0.52, 0.55, 0.05, 0.40, 0.20, 0.14, 0.42, -8.5, 120, 0.60, 0.06],  # indie
        [0.75, 0.76, 0.09, 0.20, 0.01, 0.17, 0.72, -5.0, 110, 0.55, 0.02],  # latin
    ]
)
CENTROIDS, P_MAJOR, P_TRIPLE = PROFILE[:, :9], PROFILE[:, 9], PROFILE[:, 10]
SPREAD = np.array([0.1] * 7 + [2.5, 15.0])  # track sd around its genre; artists get 60% of it
LOW, HIGH = np.array([0.0] * 7 + [-30.0, 60.0]), np.array([1.0] * 7 + [0.0, 200.0])
SCALE = HIGH - LOW  # puts dB and BPM on the unit features' scale for distances

DEVICES = ("mobile", "desktop", "web", "smart_speaker")
DEVICE_SHARE = np.array([0.5, 0.25, 0.15, 0.1])
# Relative listening by hour of day: commute and evening peaks, little at night.
HOURS = np.array([2, 1, 0.5, 0.3, 0.3, 0.5, 2, 4, 5, 3, 2, 2, 3, 2, 2, 3, 4, 5, 6, 7, 7, 6, 4, 3])

P_SUCCESSOR = 0.6  # next track continues the current one's mix
N_SUCCESSORS, SUCCESSOR_WINDOW = 3, 12
P_EXPLORE = 0.1  # a non-successor pick ignores the user's genres (charts, radio)
P_CLICK = 0.25  # a non-successor pick was chosen from a list
P_LIKE, P_DISLIKE = 0.05, 0.02
SKIP_BIAS, SKIP_SLOPE = -3.2, 6.0  # logistic in the distance to the user's nearest genre
PLAYLIST_SIZE = 40
DAY_MS, HOUR_MS = 86_400_000, 3_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAMESPACE = uuid.UUID("5b0f4a9e-7d0c-4c8e-9a43-2f3c1d6e8b71")

WORDS = {
    "adj": "Neon Velvet Golden Silver Electric Midnight Crimson Hollow Wild Quiet Paper Broken "
    "Northern Lucky Lunar Faded Burning Glass Honey Summer Frozen Violet Distant Secret Restless "
    "Lonely Bright Cosmic Dusty Gentle Savage Endless Amber Copper Stray Sleepless Tender Royal "
    "Hidden Sunday".split(),
    "noun": "Harbor Signal Ocean River Mirror Garden Canyon Engine Shadow Horizon Ghost Parade "
    "Window Satellite Highway Flame Feather Tide Machine Lantern Dream Heart Wave Island Circle "
    "Season Letter Rocket Fever Diamond Arrow Bridge Whisper Light Mountain Streetlight Comet "
    "Orchard Station Crown".split(),
    "verb": "Chasing Falling Dancing Burning Running Waiting Drifting Holding Breaking Dreaming "
    "Calling Fading Counting Painting Leaving".split(),
    "first": "Maya Leo Nina Oscar Ivy Jonah Clara Felix Luna Marcus Ada Theo Rosa Elliot Zoe Sam "
    "Iris Noah Vera Milo Aria Kofi Hana Diego Priya Jules Selma Ravi Lena Tomas".split(),
    "last": "Vance Hart Rivera Cole Okafor Lind Moreau Sato Quinn Reyes Novak Blake Ferreira Kim "
    "Adler Shaw Costa Wolfe Bishop Ellis Mendes Park Larsen Haddad Brooks Ito Fontaine Nash "
    "Varga Osei".split(),
}
ARTIST_NAMES = ("{adj} {noun}", "The {adj} {noun}s", "{first} {last}", "{noun} & the {noun2}s")
TITLES = ("{adj} {noun}s", "{verb} {noun}s", "{adj} {noun}", "{noun}s of {noun2}")
ALBUMS = ("{adj} {noun}s", "{noun}", "The {noun}s", "{verb} the {noun}")
_B62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 300
    n_artists: int = 250
    n_tracks: int = 3000
    sessions_per_user: float = 6.0  # mean, Poisson
    mean_session_length: float = 14.0
    days: int = 45  # events spread over the last `days` days before as_of
    seed: int = 7

    def __post_init__(self) -> None:
        if not (self.n_users > 0 and len(GENRES) <= self.n_artists <= self.n_tracks):
            raise ValueError("need n_users > 0 and len(GENRES) <= n_artists <= n_tracks")
        if self.sessions_per_user < 0 or self.mean_session_length < 1 or self.days < 1:
            raise ValueError("need sessions_per_user >= 0, mean_session_length >= 1, days >= 1")


@dataclass(frozen=True)
class GroundTruth:
    """What the generator planted, for tests and for judging models trained on the batch."""

    successors: dict[str, list[str]]  # track uri -> tracks that tend to follow it
    genre_preferences: dict[str, dict[str, float]]  # user -> genre -> weight (sums to 1)
    preferred_device: dict[str, str]
    preferred_hours: dict[str, list[int]]


@dataclass
class _Catalog:
    uris: list[str]
    genre: Ints
    features: Floats  # CONTINUOUS columns
    popularity: Floats  # sums to 1
    duration_ms: Ints
    by_genre: Ints  # track indices sorted by genre
    cdf: Floats  # per by_genre entry: genre index + cumulative popularity within the genre
    genre_start: Ints
    genre_mass: Floats  # share of all popularity per genre


def generate(config: SyntheticConfig, as_of: datetime) -> CatalogBatch:
    return generate_with_truth(config, as_of)[0]


def generate_with_truth(
    config: SyntheticConfig, as_of: datetime
) -> tuple[CatalogBatch, GroundTruth]:
    if as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    rng = np.random.default_rng(config.seed)
    batch = CatalogBatch()
    cat = _catalog(rng, config, batch)
    succ = _successors(cat)
    pref = rng.dirichlet(0.25 * len(GENRES) * GENRE_SHARE, config.n_users)  # mostly 1-3 genres
    device = rng.choice(len(DEVICES), config.n_users, p=DEVICE_SHARE)
    peaks = rng.choice(24, (config.n_users, 2), p=HOURS / HOURS.sum())
    user_ids = [f"demo:user:{u}" for u in range(config.n_users)]
    batch.users = dict(
        zip(user_ids, _phrases(rng, config.n_users, ("{first} {last}",)), strict=True)
    )
    user, tracks, auto, active = _sessions(rng, config, cat, succ, pref)

    # Skips grow with the distance to the nearest of the user's main genres.
    dist = np.linalg.norm((cat.features[:, None, :] - CENTROIDS) / SCALE, axis=2)
    main = (pref >= 0.15) | (pref == pref.max(axis=1, keepdims=True))
    s, pos = np.nonzero(active)  # slots, session-major then position order
    u, t = user[s], tracks[s, pos]
    d = np.where(main[u], dist[t], np.inf).min(axis=1)
    skip = rng.random(s.size) < 1 / (1 + np.exp(-(SKIP_BIAS + SKIP_SLOPE * d)))
    click = ~auto[s, pos] & (rng.random(s.size) < P_CLICK)
    react = rng.random(s.size) < np.where(skip, P_DISLIKE, P_LIKE)
    full = cat.duration_ms[t] * np.where(rng.random(s.size) < 0.8, 1.0, rng.uniform(0.8, 1, s.size))
    ms = np.where(skip, rng.integers(5_000, 30_001, s.size), full.astype(np.int64))
    lead = np.where(click, rng.integers(1_000, 6_000, s.size), 0)  # click -> playback starts
    after = np.where(react, rng.integers(1_000, 10_000, s.size), 0)  # end -> like/dislike
    # A slot is [click, lead] listen [after, like/dislike] gap; sessions start at the user's hours.
    slot_ms = np.zeros(active.shape, np.int64)
    slot_ms[s, pos] = lead + ms + after + rng.integers(300, 4_000, s.size)
    session_start = _session_starts(rng, config, as_of, peaks[user], slot_ms.sum(axis=1))
    at = session_start[s] + (np.cumsum(slot_ms, axis=1) - slot_ms)[s, pos]
    session_device = np.where(
        rng.random(user.size) < 0.85, device[user], rng.integers(0, len(DEVICES), user.size)
    )

    namespace = uuid.uuid5(_NAMESPACE, repr(config))  # same config -> same event ids
    slot_columns = (s, pos, u, t, skip, click, react, ms, lead, after, at)
    rows = list(zip(*(x.tolist() for x in slot_columns), strict=True))
    for i in np.lexsort((pos, s, session_start[s])).tolist():  # sessions in time order
        si, p, ui, ti, sk, cl, rx, ms_i, le, af, at_i = rows[i]
        sid = f"demo:s:{si}"
        ctx = (namespace, user_ids[ui], cat.uris[ti], sid, p, DEVICES[session_device[si]])
        if cl:
            batch.events.append(_event(*ctx, EventType.CLICK, at_i))
        at_i += le + ms_i
        batch.events.append(_event(*ctx, EventType.SKIP if sk else EventType.PLAY, at_i, ms_i))
        if rx:
            batch.events.append(
                _event(*ctx, EventType.DISLIKE if sk else EventType.LIKE, at_i + af)
            )

    batch.playlists = _playlists(user_ids, pref, u[~skip], t[~skip], cat.uris)
    truth = GroundTruth(
        successors={
            cat.uris[i]: list(dict.fromkeys(cat.uris[j] for j in row))
            for i, row in enumerate(succ.tolist())
        },
        genre_preferences={
            uid: dict(zip(GENRES, row, strict=True))
            for uid, row in zip(user_ids, pref.tolist(), strict=True)
        },
        preferred_device={
            uid: DEVICES[d] for uid, d in zip(user_ids, device.tolist(), strict=True)
        },
        preferred_hours=dict(zip(user_ids, peaks.tolist(), strict=True)),
    )
    return batch, truth


def _event(
    ns: uuid.UUID,
    user_id: str,
    uri: str,
    sid: str,
    pos: int,
    device: str,
    kind: EventType,
    at_ms: int,
    played: int | None = None,
) -> EventRecord:
    event_id = uuid.uuid5(ns, f"{user_id}|{sid}|{pos}|{kind.value}")
    at = EPOCH + timedelta(milliseconds=at_ms)
    return EventRecord(event_id, user_id, uri, kind, at, played, device, sid, pos)


def _phrases(rng: np.random.Generator, n: int, templates: Sequence[str]) -> list[str]:
    words = {k: np.asarray(v)[rng.integers(0, len(v), n)] for k, v in WORDS.items()}
    words["noun2"] = np.asarray(WORDS["noun"])[rng.integers(0, len(WORDS["noun"]), n)]
    pick = rng.integers(0, len(templates), n).tolist()
    return [templates[t].format(**{k: w[i] for k, w in words.items()}) for i, t in enumerate(pick)]


def _distinct(
    rng: np.random.Generator, groups: Sequence[int], templates: Sequence[str]
) -> list[str]:
    """One phrase per entry, distinct by match key within a group (all artists, one artist's
    titles): the database identifies artists by that key."""
    names = _phrases(rng, len(groups), templates)
    seen: set[tuple[int, str]] = set()
    for i, group in enumerate(groups):
        for _ in range(100):
            if (group, match_key(names[i])) not in seen:
                break
            names[i] = _phrases(rng, 1, templates)[0]
        else:  # the word lists are exhausted for this group
            names[i] = f"{names[i]} {i}"
        seen.add((group, match_key(names[i])))
    return names


def _ids(rng: np.random.Generator, n: int, kind: str) -> list[str]:
    chars = _B62[rng.integers(0, len(_B62), (n, 22))]  # one <U1 per cell, viewed as one <U22
    return [f"spotify:{kind}:{c}" for c in np.ascontiguousarray(chars).view("<U22").ravel()]


def _zipf(rng: np.random.Generator, n: int, exponent: float) -> Floats:
    weights = 1.0 / (1.0 + rng.permutation(n)) ** exponent
    return weights / weights.sum()


def _catalog(rng: np.random.Generator, cfg: SyntheticConfig, batch: CatalogBatch) -> _Catalog:
    """Artists and tracks; adds the tracks to the batch."""
    n_a, n_t, n_g = cfg.n_artists, cfg.n_tracks, len(GENRES)
    # Every genre gets an artist, so that every user's genre can be drawn from.
    a_genre = rng.permutation(np.r_[np.arange(n_g), rng.choice(n_g, n_a - n_g, p=GENRE_SHARE)])
    a_pop = _zipf(rng, n_a, 1.2)
    # Each artist has a track; popular artists release more of the rest.
    counts = 1 + rng.multinomial(n_t - n_a, np.sqrt(a_pop) / np.sqrt(a_pop).sum())
    artist = np.repeat(np.arange(n_a), counts)
    rank = np.arange(n_t) - np.repeat(np.cumsum(counts) - counts, counts)  # within the artist
    pop = a_pop[artist] / (1.0 + rank) ** 1.2
    pop /= pop.sum()
    genre = a_genre[artist]
    offset = rng.normal(0.0, 0.6, (n_a, len(CONTINUOUS))) * SPREAD
    noise = rng.normal(0.0, 1.0, (n_t, len(CONTINUOUS))) * SPREAD
    feats = np.clip(CENTROIDS[genre] + offset[artist] + noise, LOW, HIGH)
    key = rng.integers(0, 12, n_t)
    mode = (rng.random(n_t) < P_MAJOR[genre]).astype(np.int64)
    meter = np.where(rng.random(n_t) < P_TRIPLE[genre], 3, 4)
    duration = (np.clip(rng.lognormal(np.log(210.0), 0.3, n_t), 90, 480) * 1000).astype(np.int64)

    artist_names, artist_uris = _distinct(rng, [0] * n_a, ARTIST_NAMES), _ids(rng, n_a, "artist")
    titles, uris = _distinct(rng, artist.tolist(), TITLES), _ids(rng, n_t, "track")
    album = np.unique(artist * n_t + rank // 10, return_inverse=True)[1]  # ~10 tracks per album
    album_names = _distinct(rng, artist[np.unique(album, return_index=True)[1]].tolist(), ALBUMS)
    album_uris = _ids(rng, len(album_names), "album")
    for i, (a, al, row) in enumerate(
        zip(artist.tolist(), album.tolist(), feats.tolist(), strict=True)
    ):
        audio: dict[str, float] = {f: round(v, 4) for f, v in zip(CONTINUOUS, row, strict=True)}
        audio |= {"key": int(key[i]), "mode": int(mode[i]), "time_signature": int(meter[i])}
        batch.tracks[uris[i]] = TrackRecord(
            uris[i],
            titles[i],
            artist_names[a],
            artist_uris[a],
            album_names[al],
            album_uris[al],
            int(duration[i]),
            audio,
            GENRES[genre[i]],
        )

    by_genre = np.argsort(genre, kind="stable")
    mass = np.bincount(genre, pop, n_g).astype(np.float64)
    g_sorted = genre[by_genre]
    within = np.cumsum(pop[by_genre]) - (np.cumsum(mass) - mass)[g_sorted]
    start = np.r_[0, np.cumsum(np.bincount(genre, minlength=n_g))]
    cdf = g_sorted + within / mass[g_sorted]
    return _Catalog(uris, genre, feats, pop, duration, by_genre, cdf, start, mass)


def _successors(cat: _Catalog) -> Ints:
    """The most popular few of the next tracks in each genre's energy/tempo ordering: a mix
    moves on to something a little livelier."""
    succ = np.zeros((len(cat.uris), N_SUCCESSORS), np.int64)
    score = cat.features[:, CONTINUOUS.index("energy")] + cat.features[:, -1] / HIGH[-1]
    for g in range(len(GENRES)):
        members = cat.by_genre[cat.genre_start[g] : cat.genre_start[g + 1]]
        ordered = members[np.argsort(score[members], kind="stable")]
        n = ordered.size
        window = ordered[(np.arange(n)[:, None] + np.arange(1, SUCCESSOR_WINDOW + 1)) % n]
        top = np.argsort(-cat.popularity[window], axis=1, kind="stable")[:, :N_SUCCESSORS]
        succ[ordered] = np.take_along_axis(window, top, axis=1)
    return succ


def _pick(rng: np.random.Generator, cat: _Catalog, genre_mix: Floats) -> Ints:
    """Popularity-weighted tracks from each row's genre mix (sometimes from all genres)."""
    n = len(genre_mix)
    mix = np.where((rng.random(n) < P_EXPLORE)[:, None], cat.genre_mass, genre_mix)
    g = np.minimum((rng.random(n)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1), len(GENRES) - 1)
    idx = np.searchsorted(cat.cdf, g + rng.random(n), side="right")
    return cat.by_genre[np.clip(idx, cat.genre_start[g], cat.genre_start[g + 1] - 1)]


def _sessions(
    rng: np.random.Generator, cfg: SyntheticConfig, cat: _Catalog, succ: Ints, pref: Floats
) -> tuple[Ints, Ints, Bools, Bools]:
    """Session users and (session, position) tracks, whether each came from its predecessor's
    successors, and which positions exist. Drawn a step at a time for all sessions at once."""
    user = np.repeat(np.arange(cfg.n_users), rng.poisson(cfg.sessions_per_user, cfg.n_users))
    max_len = int(min(4 * cfg.mean_session_length, 100))  # keeps a session well under a day
    length = np.minimum(rng.geometric(1 / cfg.mean_session_length, user.size), max_len)
    tracks = np.zeros((user.size, max_len), np.int64)
    auto = np.zeros((user.size, max_len), np.bool_)
    tracks[:, 0] = _pick(rng, cat, pref[user])
    for step in range(1, max_len):
        auto[:, step] = rng.random(user.size) < P_SUCCESSOR
        follow = succ[tracks[:, step - 1], rng.integers(0, N_SUCCESSORS, user.size)]
        tracks[:, step] = np.where(auto[:, step], follow, _pick(rng, cat, pref[user]))
    return user, tracks, auto, np.arange(max_len) < length[:, None]


def _session_starts(
    rng: np.random.Generator, cfg: SyntheticConfig, as_of: datetime, peaks: Ints, span_ms: Ints
) -> Ints:
    """Epoch ms starts near one of the user's peak hours on a random day, such that the whole
    session lies in (as_of - days, as_of]."""
    now = (as_of - EPOCH) // timedelta(milliseconds=1)
    hour = peaks[np.arange(peaks.shape[0]), rng.integers(0, 2, peaks.shape[0])]
    hour = (hour + rng.normal(0.0, 0.75, hour.size)) % 24
    start = now - now % DAY_MS - rng.integers(0, cfg.days, hour.size) * DAY_MS
    start = start + (hour * HOUR_MS).astype(np.int64)
    start = np.where(start + span_ms > now, start - DAY_MS, start)  # would end after as_of
    return np.minimum(np.maximum(start, now - cfg.days * DAY_MS + 1), now - span_ms)


def _playlists(
    user_ids: list[str], pref: Floats, users: Ints, tracks: Ints, uris: list[str]
) -> list[PlaylistRecord]:
    """Each user's most played tracks (ties by catalog order), named after their top genre."""
    pairs, plays = np.unique(users * len(uris) + tracks, return_counts=True)
    owner, track = pairs // len(uris), pairs % len(uris)
    chosen: list[list[str]] = [[] for _ in user_ids]
    for i in np.lexsort((track, -plays, owner)).tolist():
        if len(chosen[owner[i]]) < PLAYLIST_SIZE:
            chosen[owner[i]].append(uris[track[i]])
    return [
        PlaylistRecord(
            "demo", u, f"{GENRES[int(pref[u].argmax())].title()} favourites", uid, chosen[u]
        )
        for u, uid in enumerate(user_ids)
    ]
