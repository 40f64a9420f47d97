from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from apps.api.deps import CLIENT_ERRORS, ReadKey, StateDep
from apps.api.schemas import TrackResult

router = APIRouter(prefix="/v1/tracks", tags=["catalog"], responses=CLIENT_ERRORS)


@router.get("/search", response_model=list[TrackResult])
async def search(
    state: StateDep,
    _: ReadKey,
    q: Annotated[str, Query(min_length=1, max_length=200, examples=["brightside killers"])],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[TrackResult]:
    """Tracks whose title and artist contain every word of `q` (the last one as a prefix),
    popular first."""
    return [
        TrackResult(track_uri=t.uri, track_name=t.name, artist_name=t.artist, genre=t.genre)
        for t in state.catalog().search(q, limit)
    ]
