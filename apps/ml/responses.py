"""Building responses: a track with its names and reason, the achieved variety, and the
popularity ranking every fallback serves (the ML service's, and the API's own when the ML
service cannot be reached)."""

from __future__ import annotations

from apps.ml import metrics
from apps.ml.catalog import Catalog
from apps.ml.schemas import Recommendations, RecommendedTrack, Source
from inference.diversity import measure, mmr

POPULAR_CANDIDATES = 200


def track(catalog: Catalog, uri: str, score: float, reason: str) -> RecommendedTrack:
    info = catalog.tracks.get(uri)
    return RecommendedTrack(
        track_uri=uri,
        track_name=info.name if info else uri,
        artist_name=info.artist if info else "",
        genre=info.genre if info else None,
        score=round(score, 6),
        reason=reason,
    )


def response(
    tracks: list[RecommendedTrack],
    diversity: float,
    source: Source,
    fallback_reason: str | None,
    model_version: str | None,
) -> Recommendations:
    achieved = measure([t.artist_name for t in tracks], [t.genre for t in tracks], diversity)
    metrics.DIVERSITY.observe(achieved.intra_list_diversity)
    return Recommendations(
        tracks=tracks,
        source=source,
        fallback=fallback_reason is not None,
        fallback_reason=fallback_reason,
        model_version=model_version,
        diversity=achieved,
    )


def popular(
    catalog: Catalog,
    k: int,
    diversity: float,
    exclude: set[str],
    fallback_reason: str | None,
    model_version: str | None,
) -> Recommendations:
    """The most played tracks of the last week (minus `exclude`), re-ranked for variety."""
    uris = [uri for uri in catalog.popular if uri not in exclude][:POPULAR_CANDIDATES]
    info = [catalog.tracks[uri] for uri in uris]
    scores = [1.0 / (1 + rank) for rank in range(len(uris))]
    picks = mmr(scores, [t.artist for t in info], [t.genre for t in info], k, diversity)
    tracks = [
        track(
            catalog,
            uris[p],
            scores[p],
            f"popular in {info[p].genre} this week" if info[p].genre else "popular this week",
        )
        for p in picks
    ]
    return response(tracks, diversity, "popularity", fallback_reason, model_version)
