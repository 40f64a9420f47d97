from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import Engine, select

from apps.api.deps import CLIENT_ERRORS, ReadKey, StateDep
from apps.api.errors import call_blocking
from apps.api.schemas import Listener
from apps.api.tenancy import client_user_id, listener_prefix
from musicrec.db.models import ListeningEvent, User
from musicrec.timeutil import as_utc

router = APIRouter(prefix="/v1/listeners", tags=["catalog"], responses=CLIENT_ERRORS)
RECENT_EVENTS = 2000  # read this many of the newest events, whatever the table's size


@router.get("", response_model=list[Listener])
async def recent_listeners(
    state: StateDep,
    key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[Listener]:
    """Listeners with recent activity, most recent first (for trying recommendations out:
    the web page, support tools). Only the key's app's listeners, by the app's ids."""
    timeout = state.settings.database_timeout_seconds
    return await call_blocking("database", timeout, _recent, state.engine, key.app, limit)


def _recent(engine: Engine, app: str, limit: int) -> list[Listener]:
    query = (
        select(User.external_id, ListeningEvent.occurred_at)
        .join(User, User.id == ListeningEvent.user_id)
        # autoescape: '_' and '%' in an app name are literal, not LIKE wildcards.
        .where(User.external_id.startswith(listener_prefix(app), autoescape=True))
        .order_by(ListeningEvent.occurred_at.desc())
        .limit(RECENT_EVENTS)
    )
    seen: OrderedDict[str, tuple[int, datetime]] = OrderedDict()
    with engine.connect() as conn:
        for stored, at in conn.execute(query):
            # SQLite's LIKE ignores ASCII case: the prefix is checked again, exactly.
            user = client_user_id(app, stored)
            if user is None:
                continue
            count, last = seen.get(user, (0, as_utc(at)))
            seen[user] = (count + 1, last)
    return [
        Listener(user_id=user, events=count, last_event_at=last)
        for user, (count, last) in list(seen.items())[:limit]
    ]
