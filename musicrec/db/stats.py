"""Row counts that summarize what the database holds (demo and ingest summaries)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from musicrec.db.models import Artist, ListeningEvent, Playlist, PlaylistTrack, Track, User


def catalog_counts(engine: Engine) -> dict[str, int]:
    queries = {
        "users": select(func.count()).select_from(User),
        "artists": select(func.count()).select_from(Artist),
        "tracks": select(func.count()).select_from(Track),
        "playlists": select(func.count()).select_from(Playlist),
        "playlist_tracks": select(func.count()).select_from(PlaylistTrack),
        "listening_events": select(func.count()).select_from(ListeningEvent),
        "tracks_with_audio_features": select(func.count()).where(Track.danceability.is_not(None)),
        "tracks_with_genre": select(func.count()).where(Track.genre.is_not(None)),
        "tracks_with_lyrics": select(func.count()).where(Track.lyrics.is_not(None)),
    }
    with engine.connect() as conn:
        counts = {name: int(conn.execute(q).scalar_one()) for name, q in queries.items()}
        by_type = conn.execute(
            select(ListeningEvent.event_type, func.count()).group_by(ListeningEvent.event_type)
        )
        counts.update({f"events_{event_type}": int(n) for event_type, n in by_type})
    return counts
