"""Listening-event types shared by the API, the event transport, the consumer and ingest."""

from __future__ import annotations

import enum
import uuid

from pydantic import AwareDatetime, BaseModel, Field

EVENT_SCHEMA_VERSION = 1


class EventType(enum.StrEnum):
    PLAY = "play"
    CLICK = "click"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"


class EventContext(BaseModel):
    device: str | None = Field(default=None, max_length=32)
    session_id: str | None = Field(default=None, max_length=64)
    position: int | None = Field(default=None, ge=0)


class ListeningEvent(BaseModel):
    """One user action on one track. event_id is the idempotency key end to end."""

    schema_version: int = EVENT_SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    user_id: str = Field(min_length=1, max_length=128)
    track_id: str = Field(min_length=1, max_length=128, description="Spotify track URI")
    event_type: EventType
    occurred_at: AwareDatetime
    ms_played: int | None = Field(default=None, ge=0)
    context: EventContext = Field(default_factory=EventContext)
