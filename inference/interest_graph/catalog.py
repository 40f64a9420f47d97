"""The catalog's facets (playlist memberships and track attributes) read from the database: what
the interest graph re-ranking scores with when serving, and what the graph job summarizes."""

from __future__ import annotations

from sqlalchemy import Engine, select

from inference.interest_graph.facets import Facets
from musicrec.db.models import Artist, Playlist, PlaylistTrack, Track

A, P, PT, T = (m.__table__.c for m in (Artist, Playlist, PlaylistTrack, Track))

Membership = tuple[str, str, str]  # playlist key, playlist name, artist key
TrackRow = tuple[str, str, str | None, float | None, float | None]  # see Facets.build


def facet_rows(engine: Engine) -> tuple[list[Membership], list[TrackRow]]:
    """What Facets.build takes, from the catalog: every playlist track's artist with the
    playlist's name, and each track's artist, genre, energy and valence."""
    with engine.connect() as conn:
        memberships = [
            (str(p), n, a)
            for p, n, a in conn.execute(
                select(P.id, P.name, A.match_key)
                .select_from(PlaylistTrack.__table__)
                .join(Playlist.__table__, P.id == PT.playlist_id)
                .join(Track.__table__, T.id == PT.track_id)
                .join(Artist.__table__, A.id == T.artist_id)
            )
        ]
        tracks: list[TrackRow] = [
            (uri, artist, genre, energy, valence)
            for uri, artist, genre, energy, valence in conn.execute(
                select(T.spotify_uri, A.match_key, T.genre, T.energy, T.valence).join(
                    Artist.__table__, A.id == T.artist_id
                )
            )
        ]
    return memberships, tracks


def load_facets(engine: Engine) -> Facets:
    return Facets.build(*facet_rows(engine))
