"""Each candidate source on a small hand-made set of playlists, checked against numbers worked
out by hand (and ALS's fold-in against the implicit package's own)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from inference.recommender.items import ItemTable, ResolvedSeed, Seed
from inference.recommender.recommender import TwoStageRecommender
from inference.recommender.sources import (
    ALSFoldIn,
    ItemKNN,
    PlaylistKNN,
    Popularity,
    Query,
    SameArtist,
    TitleWords,
    title_words,
)

# items: 0 a1 (artist A), 1 a2 (A), 2 b1 (B), 3 c1 (C), 4 a1 again (another release of a1)
URIS = ["u:a1", "u:a2", "u:b1", "u:c1", "u:a1-remaster"]
NAMES = ["Song One", "Song Two", "Bee", "Sea", "Song One - Remastered 2011"]
ARTISTS = ["Alpha", "Alpha", "Beta", "Gamma", "Alpha"]
PLAYLISTS = [[0, 1, 2], [0, 2], [1, 3], [2, 3], [0, 1]]
TITLES = ["Road Trip", "road trip!", "Chill", "chill vibes", "Summer Road"]


def plays() -> sp.csr_matrix:
    rows = [p for p, items in enumerate(PLAYLISTS) for _ in items]
    cols = [i for items in PLAYLISTS for i in items]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(5, 5))


def table() -> ItemTable:
    pop = np.asarray(plays().sum(axis=0), np.float32).ravel()
    return ItemTable(URIS, NAMES, ARTISTS, pop)


def query(*items: int, title: str = "") -> Query:
    t = table()
    return Query([t.resolve(Seed(NAMES[i], ARTISTS[i], URIS[i])) for i in items], title)


def test_seeds_resolve_by_uri_then_title_and_artist_and_other_releases_are_one_song() -> None:
    t = table()
    assert t.resolve(Seed("whatever", "whoever", "u:b1")).item == 2
    by_name = t.resolve(Seed("song one", "ALPHA", "spotify:track:unknown"))
    assert by_name.item == 0  # the most played release of the song
    unknown = t.resolve(Seed("New Song", "Alpha"))
    assert unknown.item is None and unknown.artist == t.artist_ids[0]
    assert t.resolve(Seed("x", "Nobody")).artist is None
    assert t.seed_songs([t.resolve(Seed("Song One", "Alpha"))]).tolist() == [
        True,
        False,
        False,
        False,
        True,  # fmt: skip
    ]


def test_popularity_is_log_plays() -> None:
    assert np.allclose(Popularity(table()).scores(query()), np.log1p([3, 3, 3, 2, 0]))


def test_item_knn_is_asymmetric_cosine_of_co_occurrence() -> None:
    # seed a1 (in 3 playlists): co-occurs with a2 twice (n=3), b1 twice (n=3), c1 never
    knn = ItemKNN(plays(), alpha=0.5)
    scores = knn.scores(query(0))
    expected = [3 / 3, 2 / (3**0.5 * 3**0.5), 2 / (3**0.5 * 3**0.5), 0, 0]
    assert np.allclose(scores, expected, atol=1e-6)


def test_playlist_knn_votes_by_shared_seeds_over_length() -> None:
    knn = PlaylistKNN(plays(), shrink=1.0, power=1.0)
    scores = knn.scores(query(0, 2))  # a1 and b1
    # weights: p0 2/3, p1 2/2, p2 0, p3 1/2, p4 1/2
    w = [2 / 3, 1.0, 0.0, 0.5, 0.5]
    expected = [w[0] + w[1] + w[4], w[0] + w[2] + w[4], w[0] + w[1] + w[3], w[2] + w[3], 0]
    assert np.allclose(scores, expected)


def test_als_fold_in_equals_implicits_recalculate_user() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    matrix = sp.random(60, 40, density=0.15, format="csr", random_state=1, dtype=np.float32)
    matrix.data[:] = 1.0
    model = AlternatingLeastSquares(factors=8, regularization=0.3, alpha=5.0, iterations=5)
    model.fit(matrix, show_progress=False)
    items = np.sort(rng.choice(40, 4, replace=False))
    row = sp.csr_matrix((np.ones(4, np.float32), (np.zeros(4, int), items)), shape=(1, 40))
    theirs = model.recalculate_user(0, row)
    source = ALSFoldIn(np.asarray(model.item_factors), 0.3, 5.0)
    assert np.allclose(source.user_vector(items), theirs, atol=1e-4)


def test_same_artist_counts_unknown_seeds_by_their_artist() -> None:
    t = table()
    seeds = [t.resolve(Seed("Unreleased", "alpha")), t.resolve(Seed("Sea", "Gamma", "u:c1"))]
    scores = SameArtist(t).scores(Query(seeds))
    assert scores[0] > 0.5 and scores[1] > 0.5 and scores[4] >= 0.5  # Alpha: half the seeds
    assert 0.5 <= scores[3] < scores[0]  # Gamma: the other half, fewer plays
    assert scores[2] == 0


def test_title_words_score_the_tracks_of_playlists_with_those_words() -> None:
    assert title_words("Road Trip!!") == ["road", "trip", "=road trip"]
    titles = TitleWords.fit(TITLES, plays())
    scores = titles.scores(query(title="road trip"))
    # "road trip" is p0 and p1 exactly, "trip" too; "road" also p4: a1 in all, b1 in p0 and p1
    assert scores[0] == scores.max() and scores[2] > scores[1] > 0 and scores[3] == 0
    assert not titles.scores(query(title="zzz")).any()


def test_two_stage_never_recommends_a_seeds_song_and_fills_k_from_popularity() -> None:
    t = table()
    recommender = TwoStageRecommender(
        t, [ItemKNN(plays()), Popularity(t)], {"item_knn": 3, "popularity": 1}
    )
    items, scores = recommender.recommend(recommender.query([Seed("Song One", "Alpha")]), 10)
    assert 0 not in items and 4 not in items
    assert sorted(items.tolist()) == [1, 2, 3] and list(scores) == sorted(scores, reverse=True)


@pytest.mark.parametrize("title", ["", "road"])
def test_an_empty_query_gets_popular_tracks(title: str) -> None:
    t = table()
    recommender = TwoStageRecommender(t, [TitleWords.fit(TITLES, plays())], {"title": 5})
    items, _ = recommender.recommend(recommender.query([], title), 4)
    assert len(items) == 4


def test_als_retrieves_among_warm_items_and_scores_any_candidate() -> None:
    rng = np.random.default_rng(1)
    factors = rng.standard_normal((6, 3)).astype(np.float32)
    warm = np.array([True, True, False, True, False, True])
    source = ALSFoldIn(factors, 0.1, 5.0, warm)
    q = Query([ResolvedSeed(0, None, "s")])
    scored, dense = source.scored(q), source.scores(q)
    assert set(scored.top(10).tolist()) == {0, 1, 3, 5}
    best_warm = max((1, 3, 5, 0), key=lambda i: dense[i])
    assert scored.top(1).tolist() == [best_warm]
    assert np.allclose(scored.at(np.arange(6)), dense, atol=1e-6)


def test_seed_similarities_add_up_to_the_sources_scores() -> None:
    knn = ItemKNN(plays(), alpha=0.3)
    q, items = query(0, 2), np.arange(5)
    sims = knn.seed_similarity(q, items)
    assert sims is not None and sims.shape == (2, 5)
    assert np.allclose(sims.sum(axis=0), knn.scores(q), atol=1e-6)
    factors = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    cosine = ALSFoldIn(factors, 0.1, 2.0).seed_similarity(q, items)
    assert cosine is not None and np.allclose(np.diag(cosine[:, [0, 2]]), 1.0, atol=1e-6)
