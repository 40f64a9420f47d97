from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from apps.api.deps import CLIENT_ERRORS, ReadKey, StateDep
from apps.api.recommending import recommendations
from apps.api.tenancy import stored_user_id
from apps.ml.schemas import MAX_K, Recommendations, UserQuery
from musicrec.events import CLIENT_USER_ID_MAX_CHARS

router = APIRouter(prefix="/v1/users", tags=["recommendations"], responses=CLIENT_ERRORS)


@router.get("/{user_id}/recommendations", response_model=Recommendations)
async def user_recommendations(
    state: StateDep,
    key: ReadKey,
    user_id: Annotated[
        str, Path(min_length=1, max_length=CLIENT_USER_ID_MAX_CHARS, examples=["user-42"])
    ],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many tracks")] = 10,
    device: Annotated[str | None, Query(max_length=32, examples=["mobile"])] = None,
    position_in_session: Annotated[int, Query(ge=0, le=100_000)] = 0,
    diversity: Annotated[
        float, Query(ge=0, le=1, description="0: the model's order; 1: most artist/genre variety")
    ] = 0.3,
) -> Recommendations:
    """What to play next for a listener: their recent tracks and online features through the
    production model, heard tracks removed, re-ranked for variety, with reasons. A listener
    with no history gets what is popular this week. Listener ids are the key's app's own."""
    query = UserQuery(
        user_id=stored_user_id(key.app, user_id),
        k=k,
        device=device,
        position_in_session=position_in_session,
        diversity=diversity,
    )
    result = await recommendations(state, "user", state.ml.recommend_user(query), k, diversity)
    result.user_id = user_id  # as the client knows it
    return result
