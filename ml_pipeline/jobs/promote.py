"""The promotion job: a canary model version serves a stable share of listeners (inference/model.py
`in_canary`); compare what it served with what production served since the canary started, and
promote it to `production`, roll it back, or wait. Every decision is logged with its numbers (a
tag of the model version, and the command's output).

    musicrec promote [--min-events 1000] [--margin 0.1]

What counts is what each version actually served, not which group a listener hashes to. The ML
service logs every model answer on the listener route (apps/ml/exposures.py: the server's time,
the listener, the version that answered, the tracks). A group is the listeners that a version
answered; its outcomes are their plays, clicks and skips of the tracks that version showed them,
received after it showed them (the time the event was stored, `listening_events.created_at`,
never the client's `occurred_at`), each event counted for the latest version that showed the
track. Skip rate and click rate are per such event.

The decision rule: non-inferiority with a relative margin (default 10% of the control's rate),
each rate tested one-sided at 95% (z = 1.645, unpooled standard error of the difference):

- wait while either group has fewer than `min_events` outcome events (a canary that served
  nobody is never promoted);
- roll back when the canary's skip rate is above, or its click rate below, the control's by
  more than the margin with 95% confidence (the difference's lower bound is beyond the margin);
- promote when both rates are within the margin with 95% confidence (the upper bound of how much
  worse the canary is stays within it);
- otherwise wait: the difference is too uncertain yet, and more exposures narrow it.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select

from inference.model import registered_name
from musicrec.config import Settings
from musicrec.db.models import Exposure, ListeningEvent, Track, User
from musicrec.events import EventType

Z_CRITICAL = 1.645  # one-sided, 95%
MARGIN = 0.1  # how much worse than the control's rate the canary may be, relative to that rate
Action = Literal["promote", "rollback", "wait", "none"]


@dataclass(frozen=True)
class GroupStats:
    listeners: int  # served by the version
    exposures: int  # its answers
    events: int  # plays, clicks and skips of the tracks it showed, after it showed them
    skips: int
    clicks: int

    @property
    def skip_rate(self) -> float:
        return self.skips / self.events if self.events else 0.0

    @property
    def click_rate(self) -> float:
        return self.clicks / self.events if self.events else 0.0


@dataclass(frozen=True)
class Promotion:
    action: Action
    reason: str
    canary_version: int | None = None
    canary: GroupStats | None = None
    control: GroupStats | None = None


def served_stats(engine: Engine, since: datetime, versions: list[str]) -> dict[str, GroupStats]:
    """Each version's listeners, answers and outcomes since `since` (the module docstring)."""
    x = Exposure.__table__.c
    shown: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    listeners: dict[str, set[str]] = {v: set() for v in versions}
    answers: Counter[str] = Counter()
    exposures = (
        select(x.user_id, x.model_version, x.served_at, x.tracks)
        .where(x.model_version.in_(versions), x.served_at >= since)
        .order_by(x.served_at)
    )
    e = ListeningEvent.__table__.c
    kinds = (EventType.PLAY.value, EventType.CLICK.value, EventType.SKIP.value)
    events = (
        select(User.external_id, Track.spotify_uri, e.event_type, e.created_at)
        .join(User, User.id == e.user_id)
        .join(Track, Track.id == e.track_id)
        .where(e.created_at >= _second(since), e.event_type.in_(kinds))
    )
    counts: dict[str, Counter[str]] = {v: Counter() for v in versions}
    with engine.connect() as conn:
        for user, version, served_at, tracks in conn.execute(exposures):
            listeners[version].add(user)
            answers[version] += 1
            for uri in tracks:
                shown[user, uri].append((_second(served_at), version))
        for user, uri, kind, received in conn.execute(events):
            # The latest version that showed the listener this track before the event came in.
            version = next(
                (v for t, v in reversed(shown.get((user, uri), [])) if t <= received), None
            )
            if version is not None:
                counts[version][kind] += 1
    return {
        v: GroupStats(
            listeners=len(listeners[v]),
            exposures=answers[v],
            events=sum(counts[v].values()),
            skips=counts[v][EventType.SKIP.value],
            clicks=counts[v][EventType.CLICK.value],
        )
        for v in versions
    }


def _second(t: datetime) -> datetime:
    # Exposures and events are compared to the second: SQLite's now() stores no finer.
    return t.replace(microsecond=0)


def worse_by(
    p_canary: float, n_canary: int, p_control: float, n_control: int
) -> tuple[float, float]:
    """(how much the canary's rate is above the control's, its standard error: unpooled)."""
    se = math.sqrt(p_canary * (1 - p_canary) / n_canary + p_control * (1 - p_control) / n_control)
    return p_canary - p_control, se


def judge(
    canary: GroupStats, control: GroupStats, min_events: int, margin: float = MARGIN
) -> tuple[Action, str]:
    if min(canary.events, control.events) < min_events:
        return "wait", (
            f"{canary.events} canary events ({canary.listeners} listeners served) / "
            f"{control.events} control events, {min_events} needed in each"
        )
    # Each as "the canary is worse by": skips up, clicks down.
    skips = worse_by(canary.skip_rate, canary.events, control.skip_rate, control.events)
    clicks = worse_by(control.click_rate, control.events, canary.click_rate, canary.events)
    allowed = (margin * control.skip_rate, margin * control.click_rate)
    rates = (
        f"skip rate {canary.skip_rate:.4f} vs {control.skip_rate:.4f}, "
        f"click rate {canary.click_rate:.4f} vs {control.click_rate:.4f} "
        f"(margin {margin:.0%} of the control's, one-sided 95%)"
    )
    pairs = list(zip((skips, clicks), allowed, strict=True))
    if any(worse - Z_CRITICAL * se > limit for (worse, se), limit in pairs):
        return "rollback", f"canary worse beyond the margin: {rates}"
    if all(worse + Z_CRITICAL * se <= limit for (worse, se), limit in pairs):
        return "promote", f"canary not worse beyond the margin: {rates}"
    return "wait", f"not conclusive yet: {rates}"


def promote(
    engine: Engine, settings: Settings, min_events: int, margin: float = MARGIN
) -> Promotion:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    try:
        version = client.get_model_version_by_alias(name, "canary")
        production = client.get_model_version_by_alias(name, settings.model_alias)
    except MlflowException:
        return Promotion("none", "no canary model, or no production model to compare it with")
    started = version.tags.get("canary_since")
    since = (
        datetime.fromisoformat(started)
        if started
        else datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    )
    served_by_canary = registered_name(name, int(version.version))
    served_by_production = registered_name(name, int(production.version))
    stats = served_stats(engine, since, [served_by_canary, served_by_production])
    canary, control = stats[served_by_canary], stats[served_by_production]
    action, reason = judge(canary, control, min_events, margin)
    if action == "promote":
        client.set_registered_model_alias(name, settings.model_alias, version.version)
    if action in ("promote", "rollback"):
        client.delete_registered_model_alias(name, "canary")
    decision = Promotion(action, reason, int(version.version), canary, control)
    if action != "wait":
        record = {**asdict(decision), "decided_at": datetime.now(UTC).isoformat()}
        client.set_model_version_tag(name, version.version, "promotion", json.dumps(record))
    return decision
