"""The playlist-continuation protocol: the file split, the cases, and the metrics against values
worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml_pipeline.data.playlists import Playlist, TrackInfo, split_files, split_of
from ml_pipeline.evaluation.continuation import (
    bootstrap_interval,
    case_metrics,
    evaluate,
    make_cases,
)


def test_every_file_is_in_exactly_one_split_and_stays_there() -> None:
    files = [f"mpd.slice.{i * 1000}-{i * 1000 + 999}.json" for i in range(700)]
    parts = split_files(files)
    assert sorted(sum(parts.values(), [])) == sorted(files)
    assert all(not set(a) & set(b) for a in parts.values() for b in parts.values() if a is not b)
    assert 40 < len(parts["test"]) < 100 and 40 < len(parts["valid"]) < 100
    assert split_files(files[:350])["test"] == [f for f in parts["test"] if f in files[:350]]
    assert all(split_of(f) == s for s, fs in parts.items() for f in fs)


def test_cases_take_the_first_n_as_seeds_and_every_later_distinct_track_as_targets() -> None:
    tracks = {u: TrackInfo(u.upper(), "artist") for u in "abcdef"}
    playlists = [
        Playlist("f1", 1, "Mix", ("a", "b", "a", "c", "c", "d")),
        Playlist("f1", 2, "Short", ("e",)),
    ]
    (case,) = make_cases(playlists, tracks, 2)
    assert [s.track_uri for s in case.seeds] == ["a", "b"] and case.seeds[0].track_name == "A"
    assert case.targets == {"c", "d"} and case.title == "Mix"
    title_only = make_cases(playlists, tracks, 0)
    assert [c.targets for c in title_only] == [{"a", "b", "c", "d"}, {"e"}]
    assert make_cases(playlists, tracks, 6) == []  # nothing left to find
    (untitled,) = make_cases(playlists, tracks, 2, titled=False)
    assert untitled.title == ""
    assert (untitled.seeds, untitled.targets) == (case.seeds, case.targets)


def test_metrics_by_hand() -> None:
    targets = frozenset({"t1", "t2", "t3"})
    ranked = ["x", "t2", "y", "t1"] + [f"z{i}" for i in range(10)] + ["t3"]
    m = case_metrics(ranked, targets)
    dcg10 = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@10"] == pytest.approx(dcg10 / ideal)
    assert m["hr@10"] == 1.0 and m["recall@10"] == pytest.approx(2 / 3)
    assert m["r_precision"] == pytest.approx(1 / 3)  # one of the first 3 is right
    assert m["ndcg@500"] == pytest.approx((dcg10 + 1 / math.log2(16)) / ideal)  # t3 is 15th
    assert case_metrics(["t1", "t1", "t1"], frozenset({"t1", "t2"}))["r_precision"] == 0.5
    assert m["recall@500"] == 1.0
    miss = case_metrics(["x"] * 20, targets)
    assert set(miss.values()) == {0}


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_cases() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.random(20), rng.random(2000)
    low, high = bootstrap_interval(few)
    assert low < few.mean() < high
    assert bootstrap_interval(many)[1] - bootstrap_interval(many)[0] < high - low


def test_evaluate_summarises_every_metric_with_an_interval() -> None:
    tracks = {u: TrackInfo(u, "a") for u in "abcd"}
    cases = make_cases([Playlist("f", i, "p", ("a", "b", "c", "d")) for i in range(3)], tracks, 1)
    summary = evaluate(lambda seeds, title, k: ["b", "c", "d"], cases).summary()
    assert summary["cases"] == 3 and summary["ndcg@10"] == 1.0 and summary["r_precision"] == 1.0
    assert summary["ndcg@10_ci95"] == [1.0, 1.0]


def test_the_ranker_trains_on_every_cut_with_and_without_its_title() -> None:
    from ml_pipeline.training.recommender import CUT_SEEDS, cut_cases

    tracks = {u: TrackInfo(u.upper(), "artist") for u in "abcdefghijklmnopqrstuvwxyz"}
    playlists = [Playlist("f1", 1, "Mix", tuple("abcdefghijklmnopqrstuvwxyz"))]
    cases = cut_cases(playlists, tracks)
    titled = sorted(c.n_seeds for c in cases if c.title == "Mix")
    untitled = sorted(c.n_seeds for c in cases if c.title == "")
    assert titled == list(CUT_SEEDS)
    assert untitled == [n for n in CUT_SEEDS if n]  # no seeds and no title: nothing to learn
