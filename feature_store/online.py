"""Online feature reads for the ML service: a listener's features (with the request context)
and features for up to a few hundred candidate tracks, in one call.

Unknown listeners and tracks get documented defaults instead of an error (DEFAULTS): activity
counts and rates of the windowed views are 0 (no activity in the window), and the recent-tracks
sequence is empty ("" and 0); everything else (audio features and preferences, timestamps,
genre) is None, meaning unknown. Feature names are "view__feature".

With the Redis online store, reads go through RedisFeatureReader (Feast's own layout, one
pipeline, about 5x faster than the SDK; see benchmarks/features.py), otherwise through Feast's
SDK; either way the request-context features are computed here by the same function the
on-demand view uses (the SDK's on-demand path costs ~3 ms a call; `fast=False` takes it). All
give the same values (tests/feature_store/test_store.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from feast import FeatureStore
from feast.types import Float64, Int64

from feature_store.definitions import CONTEXT_FEATURES, VIEWS, context_values, schema
from feature_store.fast_online import RedisFeatureReader
from feature_store.store import open_store
from musicrec.config import Settings

USER_VIEWS = (
    "user_listening_stats",
    "user_audio_preferences",
    "user_recent_tracks",
    "user_interest_graph",
)
TRACK_VIEWS = ("track_audio_features", "track_popularity")
PAIR_VIEWS = ("user_track_interactions",)
CONTEXT_VIEW = "context_aware_features"
ACTIVITY_VIEWS = {"user_listening_stats", "track_popularity", "user_track_interactions"}


def _defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for view, (table, *_rest) in VIEWS.items():
        for field in schema(table):
            zero = view in ACTIVITY_VIEWS and field.dtype in (Int64, Float64)
            defaults[f"{view}__{field.name}"] = 0 if zero else None
    return defaults


DEFAULTS = {
    **_defaults(),
    # No play, click or like on record: an empty sequence, which the model handles as cold start.
    "user_recent_tracks__track_ids": "",
    "user_recent_tracks__n_tracks": 0,
    "user_interest_graph__profile": "",  # no graph yet: ranking is the model's alone
}


def recent_tracks(user_features: Mapping[str, Any]) -> list[str]:
    """The listener's recent track URIs, oldest first, from user_features()' values."""
    value = user_features.get("user_recent_tracks__track_ids")
    return value.split() if value else []


class UnknownFeature(ValueError):
    pass


class OnlineFeatures:
    def __init__(self, store: FeatureStore, *, fast: bool = True, client: Any = None) -> None:
        self.store = store
        self.fast = fast
        redis = store.config.online_store.type == "redis"
        self.reader = RedisFeatureReader(store, client) if fast and redis else None
        self.refs = {
            view: [f"{view}:{field.name}" for field in schema(VIEWS[view][0])] for view in VIEWS
        }

    @classmethod
    def for_settings(
        cls, settings: Settings, *, fast: bool = True, timeout_seconds: float | None = None
    ) -> OnlineFeatures:
        """`timeout_seconds`: a Redis read (or connect) slower than this raises, so a request
        can fall back within its time budget instead of waiting on a stalled store."""
        client = None
        if timeout_seconds is not None and settings.online_store == "redis":
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            password = settings.feast_redis_password
            client = redis.Redis(
                host=settings.feast_redis_host or "localhost",
                port=settings.feast_redis_port,
                password=password.get_secret_value() if password else None,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                # redis-py retries 3 times with backoff of seconds by default: the budget is
                # the budget, the request falls back instead.
                retry=Retry(NoBackoff(), 0),
            )
        return cls(open_store(settings), fast=fast, client=client)

    def ping(self) -> None:
        """Raise if the online store cannot be reached."""
        if self.reader is not None:
            self.reader.ping()
        else:
            self.user_features("", features=["user_listening_stats__plays"])

    def user_features(
        self,
        user_id: str,
        *,
        device: str | None = None,
        position_in_session: int = 0,
        request_time: datetime | None = None,
        features: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        refs = [ref for view in USER_VIEWS for ref in self.refs[view]]
        refs += [f"{CONTEXT_VIEW}:{name}" for name in CONTEXT_FEATURES]
        refs = self._select(refs, features)
        when = request_time or datetime.now(UTC)
        # The SDK's on-demand view costs ~3 ms a call (pandas); the fast paths compute the same
        # values with the same function, here.
        if not self.fast:
            row = {
                "user_id": user_id,
                "request_time": when,
                "device": device or "unknown",
                "position_in_session": position_in_session,
            }
            return self._read(refs, [row])[0]
        stored = [ref for ref in refs if not ref.startswith(f"{CONTEXT_VIEW}:")]
        last_ref = "user_listening_stats:last_event_at"
        values = self._read([*dict.fromkeys([*stored, last_ref])], [{"user_id": user_id}])[0]
        last = values["user_listening_stats__last_event_at"]
        context = context_values(when, device, position_in_session, last)
        out = {}
        for ref in refs:
            view, name = ref.split(":")
            out[f"{view}__{name}"] = (
                context[name] if view == CONTEXT_VIEW else values[f"{view}__{name}"]
            )
        return out

    def stored_user_features(
        self, user_ids: Sequence[str], features: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Several listeners' stored features (no request context) in one read."""
        refs = [ref for view in USER_VIEWS for ref in self.refs[view]]
        return self._read(self._select(refs, features), [{"user_id": u} for u in user_ids])

    def track_features(
        self, track_ids: Sequence[str], features: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        refs = [ref for view in TRACK_VIEWS for ref in self.refs[view]]
        return self._read(self._select(refs, features), [{"track_id": t} for t in track_ids])

    def user_track_features(
        self, user_id: str, track_ids: Sequence[str], features: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        return self.pair_features([(user_id, t) for t in track_ids], features)

    def pair_features(
        self, pairs: Sequence[tuple[str, str]], features: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """(listener, track) pairs' features in one read."""
        refs = [ref for view in PAIR_VIEWS for ref in self.refs[view]]
        rows = [{"user_id": user, "track_id": track} for user, track in pairs]
        return self._read(self._select(refs, features), rows)

    def _select(self, refs: list[str], wanted: Sequence[str] | None) -> list[str]:
        if wanted is None:
            return refs
        by_name = {ref.replace(":", "__"): ref for ref in refs}
        if unknown := [name for name in wanted if name not in by_name]:
            raise UnknownFeature(
                f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(sorted(by_name))}"
            )
        return [by_name[name] for name in wanted]

    def _read(self, refs: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not rows:
            return []
        if self.reader is not None:
            columns = self.reader.get_online_features(refs, rows, full_feature_names=True)
        else:
            columns = self.store.get_online_features(
                features=refs, entity_rows=rows, full_feature_names=True
            ).to_dict()
        names = [ref.replace(":", "__") for ref in refs]
        out = []
        for i in range(len(rows)):
            values = {}
            for name in names:
                value = columns[name][i]
                values[name] = DEFAULTS.get(name) if value is None else value
            out.append(values)
        return out
