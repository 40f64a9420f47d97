from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from sqlalchemy import select

from apps.api.deps import CLIENT_ERRORS, StateDep, WriteKey
from apps.api.errors import DependencyUnavailable, call_blocking
from apps.api.schemas import FeedbackAccepted, FeedbackBatch, FeedbackEvent, Problem, now
from apps.api.state import ApiState
from apps.api.tenancy import stored_user_id
from apps.workers.transport import TransportError
from musicrec.db.models import Track

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["feedback"], responses=CLIENT_ERRORS)
EXAMPLES: dict[str, Any] = {
    "single": {
        "summary": "One event",
        "value": {
            "user_id": "user-42",
            "track_id": "spotify:track:003vvx7Niy0yvhvHt4a68B",
            "event_type": "play",
            "occurred_at": "2026-11-23T18:30:00Z",
            "ms_played": 222000,
            "context": {"device": "mobile", "session_id": "s-1", "position": 3},
        },
    },
    "batch": {
        "summary": "A batch (up to 500)",
        "value": {
            "events": [
                {
                    "user_id": "user-42",
                    "track_id": "spotify:track:003vvx7Niy0yvhvHt4a68B",
                    "event_type": "skip",
                }
            ]
        },
    },
}


@router.post(
    "/feedback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FeedbackAccepted,
    responses={
        422: {"model": Problem, "description": "Invalid event, or a track not in the catalog"},
        503: {"model": Problem, "description": "Events could not be stored: retry later"},
    },
)
async def feedback(
    state: StateDep,
    key: WriteKey,
    body: Annotated[FeedbackEvent | FeedbackBatch, Body(openapi_examples=EXAMPLES)],
) -> FeedbackAccepted:
    """Listener actions (play, click, skip, like, dislike), one or a batch. Answered 202 once
    every event is durably handed to the event transport (Kafka, or the in-process queue);
    they reach the database and the online features moments later. Resending an event with
    the same event_id stores it once. Listener ids are the key's app's own."""
    given = body.events if isinstance(body, FeedbackBatch) else [body]
    received = now()
    events = [e.to_event(received, stored_user_id(key.app, e.user_id)) for e in given]
    uris = {e.track_id for e in events}
    try:
        timeout = state.settings.database_timeout_seconds
        unknown = await call_blocking("database", timeout, _unknown_tracks, state, uris)
    except DependencyUnavailable as exc:  # the consumer rejects unknown tracks later
        log.warning("track check skipped: %s", exc)
        unknown = set()
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"track_id not in the catalog: {', '.join(sorted(unknown)[:10])}",
        )
    # Within the publish timeout and a little more: a hung dependency costs no more. An answer
    # given up on is a 503: the client retries, and the event_id keeps a late store single.
    budget = state.settings.event_publish_timeout_seconds + 1
    try:
        await call_blocking("event transport", budget, state.transport.publish, events)
    except TransportError as exc:
        log.warning("feedback not stored: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"events not stored, retry: {exc}",
            headers={"Retry-After": "5"},
        ) from exc
    return FeedbackAccepted(accepted=len(events), event_ids=[e.event_id for e in events])


def _unknown_tracks(state: ApiState, uris: set[str]) -> set[str]:
    """Tracks neither the catalog in memory nor the database knows. With the database down,
    events pass: the consumer rejects unknown tracks later, and feedback is not lost."""
    missing = {uri for uri in uris if uri not in state.catalog().tracks}
    if not missing:
        return set()
    try:
        with state.engine.connect() as conn:
            found = set(
                conn.execute(
                    select(Track.spotify_uri).where(Track.spotify_uri.in_(missing))
                ).scalars()
            )
    except Exception as exc:
        log.warning("track check skipped, database unavailable: %s", exc)
        return set()
    return missing - found
