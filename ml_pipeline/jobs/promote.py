"""The promotion job: a canary model serves a stable share of listeners (inference/model.py
`in_canary`); once both groups have sent enough feedback since the canary started, compare their
skip rate and click rate and either promote the canary to `production` or roll it back. Every
decision is logged with its numbers (a tag of the model version, and the command's output).

    musicrec promote [--min-events 1000]

The canary is rolled back when its skip rate is higher, or its click rate lower, than the
control group's by more than chance explains (one-sided two-proportion z-test at 5%);
otherwise it is promoted. With too few events in either group nothing changes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, func, select

from inference.model import in_canary
from musicrec.config import Settings
from musicrec.db.models import ListeningEvent, User
from musicrec.events import EventType

Z_CRITICAL = 1.645  # one-sided, 5%
Action = Literal["promote", "rollback", "wait", "none"]


@dataclass(frozen=True)
class GroupStats:
    listeners: int
    events: int  # plays, clicks and skips
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


def group_stats(engine: Engine, since: datetime, share: float) -> tuple[GroupStats, GroupStats]:
    """(canary group, control group) feedback since `since`."""
    e = ListeningEvent.__table__.c
    kinds = (EventType.PLAY.value, EventType.CLICK.value, EventType.SKIP.value)
    query = (
        select(User.external_id, e.event_type, func.count())
        .join(ListeningEvent, e.user_id == User.id)
        .where(e.occurred_at >= since, e.event_type.in_(kinds))
        .group_by(User.external_id, e.event_type)
    )
    listeners: dict[bool, set[str]] = {True: set(), False: set()}
    counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    with engine.connect() as conn:
        for user, kind, count in conn.execute(query):
            group = in_canary(user, share)
            listeners[group].add(user)
            counts[group][kind] += count

    def stats(group: bool) -> GroupStats:
        c = counts[group]
        skips, clicks = c[EventType.SKIP.value], c[EventType.CLICK.value]
        return GroupStats(len(listeners[group]), sum(c.values()), skips, clicks)

    return stats(True), stats(False)


def worse_by_chance(p_canary: float, n_canary: int, p_control: float, n_control: int) -> float:
    """z of the canary's rate above the control's (two-proportion test, pooled)."""
    pooled = (p_canary * n_canary + p_control * n_control) / (n_canary + n_control)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_canary + 1 / n_control))
    return (p_canary - p_control) / se if se > 0 else 0.0


def judge(canary: GroupStats, control: GroupStats, min_events: int) -> tuple[Action, str]:
    if min(canary.events, control.events) < min_events:
        return "wait", (
            f"{canary.events} canary / {control.events} control events, {min_events} needed in each"
        )
    skips = worse_by_chance(canary.skip_rate, canary.events, control.skip_rate, control.events)
    clicks = worse_by_chance(control.click_rate, control.events, canary.click_rate, canary.events)
    rates = (
        f"skip rate {canary.skip_rate:.4f} vs {control.skip_rate:.4f} (z {skips:.2f}), "
        f"click rate {canary.click_rate:.4f} vs {control.click_rate:.4f} (z {clicks:.2f})"
    )
    if skips > Z_CRITICAL or clicks > Z_CRITICAL:
        return "rollback", f"canary worse: {rates}"
    return "promote", f"canary not worse: {rates}"


def promote(engine: Engine, settings: Settings, min_events: int) -> Promotion:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    try:
        version = client.get_model_version_by_alias(name, "canary")
    except MlflowException:
        return Promotion("none", "no canary model")
    started = version.tags.get("canary_since")
    since = (
        datetime.fromisoformat(started)
        if started
        else datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    )
    canary, control = group_stats(engine, since, settings.canary_share)
    action, reason = judge(canary, control, min_events)
    if action == "promote":
        client.set_registered_model_alias(name, settings.model_alias, version.version)
    if action in ("promote", "rollback"):
        client.delete_registered_model_alias(name, "canary")
    decision = Promotion(action, reason, int(version.version), canary, control)
    if action != "wait":
        record = {**asdict(decision), "decided_at": datetime.now(UTC).isoformat()}
        client.set_model_version_tag(name, version.version, "promotion", json.dumps(record))
    return decision
