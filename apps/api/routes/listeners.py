from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from apps.api.deps import CLIENT_ERRORS, ClientDep, StateDep
from apps.api.schemas import Listener
from musicrec.db.models import ListeningEvent, User
from musicrec.timeutil import as_utc

router = APIRouter(prefix="/v1/listeners", tags=["catalog"], responses=CLIENT_ERRORS)
RECENT_EVENTS = 2000  # read this many of the newest events, whatever the table's size


@router.get("", response_model=list[Listener])
async def recent_listeners(
    state: StateDep,
    _: ClientDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[Listener]:
    """Listeners with recent activity, most recent first (for trying recommendations out:
    the web page, support tools)."""
    return await run_in_threadpool(_recent, state.engine, limit)


def _recent(engine: Engine, limit: int) -> list[Listener]:
    query = (
        select(User.external_id, ListeningEvent.occurred_at)
        .join(User, User.id == ListeningEvent.user_id)
        .order_by(ListeningEvent.occurred_at.desc())
        .limit(RECENT_EVENTS)
    )
    seen: OrderedDict[str, tuple[int, datetime]] = OrderedDict()
    with engine.connect() as conn:
        for user, at in conn.execute(query):
            count, last = seen.get(user, (0, as_utc(at)))
            seen[user] = (count + 1, last)
    return [
        Listener(user_id=user, events=count, last_event_at=last)
        for user, (count, last) in list(seen.items())[:limit]
    ]
