from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from apps.api.deps import LIMITED, StateDep, anonymous_client
from apps.api.recommending import recommendations
from apps.api.schemas import PredictRequest, PredictResponse, Problem
from apps.ml.schemas import MAX_K, PredictQuery

router = APIRouter(tags=["recommendations"], responses=LIMITED)


@router.post(
    "/predict",
    response_model=PredictResponse,
    dependencies=[Depends(anonymous_client)],
    responses={422: {"model": Problem, "description": "Invalid body"}},
)
async def predict(
    body: PredictRequest,
    state: StateDep,
    response: Response,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many tracks")] = 20,
    diversity: Annotated[float, Query(ge=0, le=1)] = 0.0,
) -> PredictResponse:
    """Continue a playlist: recommendations from its tracks (named by URI, or title and artist)
    and its title, either one alone or both. Seeds that match no known track are listed in
    `unmatched_seeds` and count by their artist and the title. How the answer was made is
    in the headers: X-Recommendation-Source (model, popularity), X-Model-Version, and
    X-Fallback-Reason when it is a fallback."""
    query = PredictQuery(tracks=body.tracks, name=body.name or "", k=k, diversity=diversity)
    result = await recommendations(state, "predict", state.ml.predict(query), k, diversity)
    response.headers["X-Recommendation-Source"] = result.source
    response.headers["X-Model-Version"] = result.model_version or "none"
    response.headers["X-Unmatched-Seeds"] = str(result.unmatched_seeds)
    if result.fallback_reason:
        response.headers["X-Fallback-Reason"] = result.fallback_reason
    return PredictResponse(recommended_tracks=result.tracks, unmatched_seeds=result.unmatched)
