"""Request and response bodies of the public API that are not the ML service's own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from apps.ml.schemas import RecommendedTrack, SeedTrack
from musicrec.events import EventContext, EventType, ListeningEvent

MAX_SEEDS = 100
MAX_EVENTS = 500


class PredictRequest(BaseModel):
    tracks: list[SeedTrack] = Field(
        min_length=1,
        max_length=MAX_SEEDS,
        description="Tracks the listener played or likes, oldest first; the last 50 are read",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tracks": [
                        {"track_name": "Mr. Brightside", "artist_name": "The Killers"},
                        {"track_name": "Take Me Out", "artist_name": "Franz Ferdinand"},
                    ]
                }
            ]
        }
    )


class PredictResponse(BaseModel):
    recommended_tracks: list[RecommendedTrack]


class FeedbackEvent(BaseModel):
    """One listener action on one track, as an app reports it."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID | None = Field(
        default=None, description="Idempotency key: resending an event with it stores it once"
    )
    user_id: str = Field(min_length=1, max_length=128)
    track_id: str = Field(min_length=1, max_length=128, description="Spotify track URI")
    event_type: EventType
    occurred_at: AwareDatetime | None = Field(default=None, description="Default: received at")
    ms_played: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)
    context: EventContext = Field(default_factory=EventContext)

    def to_event(self, received_at: datetime) -> ListeningEvent:
        return ListeningEvent(
            event_id=self.event_id or uuid.uuid4(),
            user_id=self.user_id,
            track_id=self.track_id,
            event_type=self.event_type,
            occurred_at=self.occurred_at or received_at,
            ms_played=self.ms_played,
            context=self.context,
        )


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[FeedbackEvent] = Field(min_length=1, max_length=MAX_EVENTS)


class FeedbackAccepted(BaseModel):
    accepted: int
    event_ids: list[uuid.UUID]


class TrackResult(BaseModel):
    track_uri: str
    track_name: str
    artist_name: str
    genre: str | None


class Problem(BaseModel):
    """An error: a message, or (invalid input) FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]


def now() -> datetime:
    return datetime.now(UTC)
