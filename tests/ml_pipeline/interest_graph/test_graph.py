"""The graph's schema, the facets and summaries it is built from, the local provider and the
affinity that ranks tracks by a graph."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from inference.interest_graph.affinity import InterestProfile, rerank_scores
from inference.interest_graph.facets import Facets, name_labels
from inference.interest_graph.schema import InterestGraph, InvalidGraph, parse_graph
from ml_pipeline.interest_graph.local import LocalProvider, build_graph
from ml_pipeline.interest_graph.prompt import first_request, retry_request
from ml_pipeline.interest_graph.summary import Listen, summarize

NIGHT = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)
MORNING = datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


def catalog() -> Facets:
    """Two scenes: country artists (in playlists named for country and road trips) and rap
    artists (in playlists named for rap and parties); one track with a genre of its own and
    audio features."""
    memberships = [
        ("p1", "Country Roads", "garth"),
        ("p1", "Country Roads", "shania"),
        ("p2", "country 90s", "garth"),
        ("p2", "country 90s", "shania"),
        ("p3", "road trip", "garth"),
        ("p4", "Rap Caviar", "drake"),
        ("p4", "Rap Caviar", "future"),
        ("p5", "party hip hop", "drake"),
        ("p6", "untitled", "future"),
    ]
    tracks = [
        ("spotify:track:g1", "garth", None, 0.4, 0.8),
        ("spotify:track:g2", "garth", None, None, None),
        ("spotify:track:s1", "shania", "Country", 0.7, 0.9),
        ("spotify:track:d1", "drake", None, 0.8, 0.3),
        ("spotify:track:f1", "future", None, None, None),
    ]
    return Facets.build(memberships, tracks)


ARTISTS = {"g": "Garth", "s": "Shania", "d": "Drake", "f": "Future"}


def listen(uri: str, kind: str = "play", when: datetime = NIGHT) -> Listen:
    artist = ARTISTS[uri.rsplit(":", 1)[1][0]]
    audio = (0.5, 0.4, 0.8, 0.1, 0.0, 120.0) if uri.endswith("g1") else ()
    return Listen(uri, artist, kind, when, audio)


def test_name_labels_use_the_lexicon_and_years() -> None:
    assert name_labels("90s Rock!") == {("genre", "rock"), ("era", "1990s")}
    assert name_labels("Summer 2016 hip hop") == {("genre", "hip hop"), ("era", "2010s")}
    assert name_labels("untitled") == set()


def test_artist_labels_come_from_playlist_names_smoothed() -> None:
    facets = catalog()
    garth = facets.artist_labels["garth"]
    # Three named playlists, two of them country: 2 / (3 + 2).
    assert garth[("genre", "country")] == pytest.approx(2 / 5)
    assert garth[("era", "1990s")] == pytest.approx(1 / 5)
    assert ("genre", "hip hop") not in garth
    assert facets.labels("spotify:track:s1")[("genre", "country")] == 1.0  # its own genre
    assert facets.labels("spotify:track:d1")[("mood", "energetic & dark")] == 1.0
    similar = facets.co_listening(["garth", "shania", "drake", "nobody"])
    assert similar[0, 1] == pytest.approx(2 / 3)  # garth in 3 playlists, shania in 2, 2 shared
    assert similar[0, 2] == 0 and similar[3].sum() == 0


def test_summary_describes_the_listening() -> None:
    listens = [
        listen("spotify:track:g1"),
        listen("spotify:track:g2"),
        listen("spotify:track:s1", when=MORNING),
        listen("spotify:track:g1", "like"),
        listen("spotify:track:d1", "skip"),
    ]
    summary = summarize("7", listens, catalog())
    assert (summary.plays, summary.skips, summary.likes) == (3, 1, 1)
    assert summary.top_artists[0].name == "Garth"
    assert summary.top_artists[0].weight == pytest.approx(4 / 5)  # a like counts twice
    assert "genre:country" in summary.top_artists[0].labels
    assert summary.genres[0].name == "country"
    assert summary.skip_rate == pytest.approx(1 / 5)  # 1 skip, 4 positive events
    assert summary.most_skipped_artists[0].name == "Drake"
    assert summary.time_of_day["evening"] == pytest.approx(0.75)
    assert summary.audio["tempo"].mean == pytest.approx(120.0)
    assert summary.co_listened[0].a == "Garth" and summary.co_listened[0].b == "Shania"


def test_local_provider_builds_a_valid_graph_with_artist_edges() -> None:
    summary = summarize("7", [listen("spotify:track:g1"), listen("spotify:track:s1")], catalog())
    completion = LocalProvider().generate(first_request(summary))
    graph = parse_graph(completion.text)
    kinds = {node.kind for node in graph.nodes}
    assert {"artist", "genre", "era"} <= kinds
    by_id = {node.id: node for node in graph.nodes}
    assert by_id["genre:country"].weight == 1.0
    relations = {(e.source, e.target, e.relation) for e in graph.edges}
    assert ("artist:garth", "genre:country", "artist_genre") in relations
    assert ("artist:garth", "artist:shania", "co_listened") in relations
    assert build_graph(summary) == graph  # deterministic


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I cannot help with that.", "no JSON object"),
        ('{"nodes": [', "no JSON object"),
        ('{"nodes": [}', "not valid JSON"),
        ('{"nodes": []}', "nodes: List should have at least 1 item"),
        (
            '{"nodes": [{"id": "a", "kind": "genre", "label": "x", "weight": 1.5}]}',
            "nodes.0.weight: Input should be less than or equal to 1",
        ),
        (
            '{"nodes": [{"id": "a", "kind": "planet", "label": "x", "weight": 1}]}',
            "nodes.0.kind",
        ),
        (
            '{"nodes": [{"id": "a", "kind": "genre", "label": "x", "weight": 1}], '
            '"edges": [{"source": "a", "target": "b", "relation": "r", "weight": 1}]}',
            "names no node b",
        ),
        (
            '{"nodes": [{"id": "a", "kind": "genre", "label": "x", "weight": 1}, '
            '{"id": "a", "kind": "mood", "label": "y", "weight": 1}]}',
            "repeated: a",
        ),
    ],
)
def test_invalid_answers_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidGraph, match=message):
        parse_graph(text)


def test_a_fenced_answer_is_read() -> None:
    graph = '{"nodes": [{"id": "a", "kind": "era", "label": "1990s", "weight": 0.5}]}'
    text = f"Here it is:\n```json\n{graph}\n```"

    assert parse_graph(text).nodes[0].label == "1990s"


def test_the_retry_quotes_the_answer_and_the_error() -> None:
    summary = summarize("7", [listen("spotify:track:g1")], catalog())
    first = first_request(summary)
    assert "Garth" in first.messages[0].content and '"nodes"' in first.system
    again = retry_request(first, "not json", "the answer holds no JSON object")
    assert [m.role for m in again.messages] == ["user", "assistant", "user"]
    assert again.messages[1].content == "not json"
    assert "the answer holds no JSON object" in again.messages[2].content


def test_affinity_reads_language_model_labels_through_the_lexicon() -> None:
    graph = InterestGraph.model_validate(
        {
            "nodes": [
                {"id": "a", "kind": "artist", "label": "Drake", "weight": 1.0},
                {"id": "g", "kind": "genre", "label": "90s Country Music", "weight": 0.5},
            ]
        }
    )
    profile = InterestProfile.from_graph(graph)
    assert profile.labels["genre:country"] == 0.5
    assert InterestProfile.from_json(profile.to_json()) == profile
    facets = catalog()
    uris = ["spotify:track:d1", "spotify:track:s1", "spotify:track:f1"]
    artist, labels = profile.scores(facets, uris)
    assert artist.tolist() == [1.0, 0.0, 0.0]
    # The track's own genre (weight 1) stands in for its artist's share of country.
    assert labels[1] == pytest.approx(0.5)
    assert labels[2] == 0.0
    reranked = rerank_scores(np.array([3.0, 2.0, 1.0]), profile.affinity(facets, uris), 0.0)
    assert np.argsort(-reranked).tolist() == [0, 1, 2]  # weight 0: the model's order
