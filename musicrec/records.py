"""Plain records that parsers and the synthetic generator produce and the bulk writer stores.
They carry natural keys only (Spotify URIs, external ids); database ids are resolved on write."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from musicrec.events import EventType, ListeningEvent


@dataclass(slots=True)
class TrackRecord:
    uri: str
    name: str
    artist_name: str
    artist_uri: str | None = None
    album_name: str | None = None
    album_uri: str | None = None
    duration_ms: int | None = None
    # Only the synthetic generator knows these at creation time; real data joins them later.
    audio_features: dict[str, float] | None = None
    genre: str | None = None


@dataclass(slots=True)
class PlaylistPlays:
    """A playlist listened through once, in order: how MPD playlists become listening history.
    The bulk writer derives one ``play`` event per position from this inside the database, which
    is far cheaper than an EventRecord per play."""

    session_id: str
    event_id_base: uuid.UUID  # a play's event id is this with the position XORed into it
    starts_ms: list[int]  # epoch milliseconds, one per position
    ms_played: list[int]

    def event_id(self, position: int) -> uuid.UUID:
        return uuid.UUID(int=self.event_id_base.int ^ position)


@dataclass(slots=True)
class PlaylistRecord:
    source: str
    pid: int
    name: str
    user_external_id: str
    track_uris: list[str]
    collaborative: bool | None = None
    modified_at: datetime | None = None
    num_followers: int | None = None
    num_edits: int | None = None
    plays: PlaylistPlays | None = None


@dataclass(slots=True)
class EventRecord:
    event_id: uuid.UUID
    user_external_id: str
    track_uri: str
    event_type: EventType
    occurred_at: datetime
    ms_played: int | None = None
    device: str | None = None
    session_id: str | None = None
    position: int | None = None

    @classmethod
    def from_event(cls, e: ListeningEvent) -> EventRecord:
        """The row of a feedback event, as the consumer stores it."""
        return cls(
            event_id=e.event_id,
            user_external_id=e.user_id,
            track_uri=e.track_id,
            event_type=e.event_type,
            occurred_at=e.occurred_at,
            ms_played=e.ms_played,
            device=e.context.device,
            session_id=e.context.session_id,
            position=e.context.position,
        )


@dataclass
class CatalogBatch:
    """Everything one write transaction stores. Tracks are keyed by URI so a batch never holds
    one track twice."""

    tracks: dict[str, TrackRecord] = field(default_factory=dict)
    users: dict[str, str | None] = field(default_factory=dict)  # external_id -> display name
    playlists: list[PlaylistRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    def extend(self, other: CatalogBatch) -> None:
        for uri, track in other.tracks.items():
            self.tracks.setdefault(uri, track)
        for ext_id, name in other.users.items():
            self.users.setdefault(ext_id, name)
        self.playlists.extend(other.playlists)
        self.events.extend(other.events)

    @property
    def playlist_track_rows(self) -> int:
        return sum(len(p.track_uris) for p in self.playlists)

    def __len__(self) -> int:
        return len(self.tracks) + len(self.users) + self.playlist_track_rows + len(self.events)
