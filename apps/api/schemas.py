"""Request and response bodies of the public API that are not the ML service's own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from apps.ml.schemas import ModelsReport, RecommendedTrack, SeedTrack
from musicrec.events import (
    CLIENT_USER_ID_MAX_CHARS,
    EventContext,
    EventType,
    ListeningEvent,
    StorableText,
)

MAX_SEEDS = 100
MAX_EVENTS = 500


class PredictRequest(BaseModel):
    """A playlist to continue: its tracks so far, its title, or both."""

    tracks: list[SeedTrack] = Field(
        default_factory=list,
        max_length=MAX_SEEDS,
        description="Tracks the listener played or likes, oldest first",
    )
    name: StorableText | None = Field(
        default=None,
        max_length=256,
        description="The playlist's title: with no tracks, recommendations come from it alone",
        examples=["summer road trip"],
    )

    @model_validator(mode="after")
    def _something_to_go_on(self) -> PredictRequest:
        if not self.tracks and not (self.name and self.name.strip()):
            raise ValueError("give tracks, a playlist name, or both")
        return self

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
    unmatched_seeds: list[int] = Field(
        default_factory=list,
        description="Positions (from 0) of the seed tracks that matched no known track",
    )


class FeedbackEvent(BaseModel):
    """One listener action on one track, as an app reports it."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID | None = Field(
        default=None, description="Idempotency key: resending an event with it stores it once"
    )
    user_id: StorableText = Field(
        min_length=1, max_length=CLIENT_USER_ID_MAX_CHARS, description="The app's listener id"
    )
    track_id: StorableText = Field(min_length=1, max_length=128, description="Spotify track URI")
    event_type: EventType
    occurred_at: AwareDatetime | None = Field(default=None, description="Default: received at")
    ms_played: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)
    context: EventContext = Field(default_factory=EventContext)

    def to_event(self, received_at: datetime, stored_user_id: str) -> ListeningEvent:
        """The event to store, for the listener stored as `stored_user_id` (apps/api/tenancy)."""
        return ListeningEvent(
            event_id=self.event_id or uuid.uuid4(),
            user_id=stored_user_id,
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


class Listener(BaseModel):
    user_id: str
    events: int = Field(description="Among the most recent events read")
    last_event_at: datetime


class RouteLatency(BaseModel):
    route: str
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ServingStats(BaseModel):
    """This API process's metrics since it started (each replica has its own)."""

    routes: list[RouteLatency]
    recommendations: int = Field(description="Recommendation answers (listener and /predict)")
    fallbacks: int
    fallback_rate: float | None
    model_version: str | None = Field(description="The model of the latest answer")


class FeatureFreshness(BaseModel):
    online_store: str
    batch_as_of: datetime | None = Field(description="Batch features hold events up to this")
    batch_finished_at: datetime | None
    newest_event_at: datetime | None
    last_event_received_at: datetime | None = Field(
        description="When the newest event of the last day was stored (feedback pushes its "
        "features online at once)"
    )
    batch_lag_seconds: float | None = Field(description="Newest event minus the batch as-of")
    checked_at: datetime


class OpsSummary(BaseModel):
    """What the operations view shows; a part that could not be read has its error instead."""

    models: ModelsReport | None
    models_error: str | None = None
    serving: ServingStats
    features: FeatureFreshness | None
    features_error: str | None = None
    tensorboard: str = Field(description="The command for TensorBoard's full view of training")


class Problem(BaseModel):
    """An error: a message, or (invalid input) FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]


def now() -> datetime:
    return datetime.now(UTC)
