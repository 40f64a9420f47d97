"""The interest graph's data: what the summaries are made of (listeners' recent events, from the
database; the catalog facets are read by inference.interest_graph.catalog, which serving shares),
which listeners still need a graph this period, and the upsert of results into
user_interest_graph."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from inference.interest_graph.affinity import InterestProfile
from inference.interest_graph.catalog import facet_rows, load_facets
from inference.interest_graph.schema import GRAPH_VERSION, InterestGraph
from ml_pipeline.interest_graph.summary import AUDIO_STATS, Listen
from musicrec.db.models import (
    FEAT_USER_INTEREST_GRAPH,
    Artist,
    ListeningEvent,
    Track,
    User,
    UserInterestGraph,
)
from musicrec.timeutil import as_utc

A, E = Artist.__table__.c, ListeningEvent.__table__.c
T, U = Track.__table__.c, User.__table__.c
G = cast(Table, UserInterestGraph.__table__)
__all__ = [  # with the catalog's facets, which the jobs read as serving does
    "MAX_EVENTS",
    "GraphRow",
    "facet_rows",
    "load_facets",
    "load_listens",
    "pending_users",
    "period_start",
    "save_graphs",
    "stored_graphs",
]
# A summary describes a listener's latest events, at most this many.
MAX_EVENTS = 2000


def period_start(now: datetime) -> datetime:
    """Graphs are regenerated monthly: a run skips listeners done since the month began."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def pending_users(
    engine: Engine, provider: str, since: datetime, user_id: int | None = None
) -> list[int]:
    """Listeners with events and no valid graph from this provider since `since`, in id order
    (all of them, or the one asked for)."""
    done = (
        select(G.c.user_id)
        .where(G.c.status == "ok", G.c.provider == provider, G.c.version == GRAPH_VERSION)
        .where(G.c.generated_at >= since)
    )
    query = (
        select(U.id)
        .where(select(E.event_id).where(E.user_id == U.id).exists())
        .where(U.id.not_in(done))
        .order_by(U.id)
    )
    if user_id is not None:
        query = query.where(U.id == user_id)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def load_listens(engine: Engine, user_ids: Sequence[int]) -> dict[int, list[Listen]]:
    """Each listener's latest MAX_EVENTS events, oldest first."""
    latest = func.row_number().over(partition_by=E.user_id, order_by=E.occurred_at.desc())
    recent = (
        select(E.user_id, E.track_id, E.event_type, E.occurred_at, latest.label("n"))
        .where(E.user_id.in_(user_ids))
        .subquery()
    )
    audio = [T[name] for name in AUDIO_STATS]
    query = (
        select(recent.c.user_id, T.spotify_uri, A.name, recent.c.event_type, recent.c.occurred_at)
        .add_columns(*audio)
        .join(Track.__table__, T.id == recent.c.track_id)
        .join(Artist.__table__, A.id == T.artist_id)
        .where(recent.c.n <= MAX_EVENTS)
        .order_by(recent.c.user_id, recent.c.occurred_at)
    )
    listens: dict[int, list[Listen]] = defaultdict(list)
    with engine.connect() as conn:
        for user, uri, artist, kind, when, *features in conn.execute(query):
            known = tuple(features) if any(f is not None for f in features) else ()
            listens[user].append(Listen(uri, artist, kind, as_utc(when), known))
    return listens


@dataclass(frozen=True)
class GraphRow:
    user_id: int
    graph: InterestGraph | None
    error: str | None


def save_graphs(
    engine: Engine, rows: Sequence[GraphRow], provider: str, model: str, when: datetime
) -> dict[str, str]:
    """Upsert one row per listener, in one transaction: a valid graph (status ok), or the
    failure's reason (status failed, no graph); and, for each valid graph, its ranking profile
    into the feature table (the online view's offline source). Returns the profiles stored, by
    the listener's external id (the feature store's user key)."""
    if not rows:
        return {}
    values = [
        {
            "user_id": row.user_id,
            "status": "ok" if row.graph is not None else "failed",
            "graph": row.graph.model_dump(mode="json") if row.graph is not None else None,
            "error": row.error,
            "provider": provider,
            "model": model,
            "version": GRAPH_VERSION,
            "generated_at": when,
        }
        for row in rows
    ]
    with engine.begin() as conn:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(G)
        updated = {c: stmt.excluded[c] for c in values[0] if c != "user_id"}
        # A failure replaces last period's graph here too (the table says what this run
        # found); the online store keeps serving the last valid profile until a new one.
        conn.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=updated), values)
        valid = {row.user_id: row.graph for row in rows if row.graph is not None}
        if not valid:
            return {}
        keys = dict(conn.execute(select(U.id, U.external_id).where(U.id.in_(valid))).all())
        profiles = {
            keys[user]: InterestProfile.from_graph(graph).to_json() for user, graph in valid.items()
        }
        conn.execute(
            FEAT_USER_INTEREST_GRAPH.insert(),
            [
                {"user_id": k, "event_timestamp": when, "created": when, "profile": p}
                for k, p in profiles.items()
            ],
        )
    return profiles


def stored_graphs(
    engine: Engine, user_ids: Sequence[int] | None = None
) -> dict[int, dict[str, Any]]:
    """Valid graphs by listener id (all, or of the listeners given)."""
    query = select(G.c.user_id, G.c.graph).where(G.c.status == "ok")
    if user_ids is not None:
        query = query.where(G.c.user_id.in_(user_ids))
    with engine.connect() as conn:
        return {user: graph for user, graph in conn.execute(query)}
