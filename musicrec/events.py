"""Listening-event types shared by the API, the event transport, the consumer and ingest."""

from __future__ import annotations

import enum
import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

EVENT_SCHEMA_VERSION = 1
# A listener id as a client sends it, and as it is stored: "<app>:<client id>" (apps/api/
# tenancy.py), so an app name (at most 64 characters) and ':' come on top.
CLIENT_USER_ID_MAX_CHARS = 128
USER_ID_MAX_CHARS = 200
# The stores' integer columns are 32-bit (Postgres integer).
MAX_INT32 = 2**31 - 1
# What neither store can hold: Postgres text has no NUL, and a lone UTF-16 surrogate (which a
# JSON string may spell as "\ud800") has no UTF-8 encoding.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """The value, if every store can hold it; a ValueError naming the problem otherwise. The API
    validates with the same rule, so an event it accepts is never refused by the database."""
    bad = _UNSTORABLE.search(value)
    if bad is not None:
        what = "a NUL character" if bad.group() == "\x00" else "a lone surrogate"
        raise ValueError(f"text contains {what} (U+{ord(bad.group()):04X}) at {bad.start()}")
    return value


def escape_unstorable(text: str) -> str:
    """`text` with NULs and lone surrogates written as escapes: for storing what was refused."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()


# A string that Postgres, SQLite and UTF-8 JSON all hold as given.
StorableText = Annotated[str, AfterValidator(storable)]


class EventType(enum.StrEnum):
    PLAY = "play"
    CLICK = "click"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"


# The events that make a listener's sequence, for training and for the online recent tracks
# alike (one definition, so the model reads at serving time what it learned from): the listener
# wanted the track. Skips and dislikes are not in it.
SEQUENCE_EVENTS = (EventType.PLAY, EventType.CLICK, EventType.LIKE)


class EventContext(BaseModel):
    device: StorableText | None = Field(default=None, max_length=32)
    session_id: StorableText | None = Field(default=None, max_length=64)
    position: int | None = Field(default=None, ge=0, le=MAX_INT32)


class ListeningEvent(BaseModel):
    """One user action on one track. event_id is the idempotency key end to end."""

    schema_version: int = EVENT_SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    user_id: StorableText = Field(min_length=1, max_length=USER_ID_MAX_CHARS)
    track_id: StorableText = Field(min_length=1, max_length=128, description="Spotify track URI")
    event_type: EventType
    occurred_at: AwareDatetime
    ms_played: int | None = Field(default=None, ge=0, le=MAX_INT32)
    context: EventContext = Field(default_factory=EventContext)
