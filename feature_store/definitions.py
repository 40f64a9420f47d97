"""Feast definitions: entities, sources, the feature views, push sources and the feature
service. Feature names and types come from the feature tables in musicrec/db/models.py, so the
Feast schema and the tables the batch job writes cannot drift apart.

The sources depend on the mode (Postgres tables or parquet files), so the objects are built from
settings by `build_repo`. For the `feast` CLI run in this folder, the objects for the current
settings are also module attributes (Feast collects every Feast object it finds in a module).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import FeastType, Float64, Int64, String, UnixTimestamp
from sqlalchemy import DateTime, Float, Integer, SmallInteger, Table
from sqlalchemy import String as SqlString

from feature_store.config import feature_data_dir
from musicrec.config import Settings, get_settings
from musicrec.db.models import (
    FEAT_TRACK_AUDIO_FEATURES,
    FEAT_TRACK_POPULARITY,
    FEAT_USER_AUDIO_PREFERENCES,
    FEAT_USER_INTEREST_GRAPH,
    FEAT_USER_LISTENING_STATS,
    FEAT_USER_RECENT_TRACKS,
    FEAT_USER_TRACK_INTERACTIONS,
)
from musicrec.timeutil import as_utc

user = Entity(
    name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="A listener"
)
track = Entity(
    name="track",
    join_keys=["track_id"],
    value_type=ValueType.STRING,
    description="A track, by Spotify URI",
)

# View name -> (feature table, entities, TTL, fed by pushes too). TTL 0 never expires.
VIEWS: dict[str, tuple[Table, list[Entity], timedelta, bool]] = {
    "user_listening_stats": (FEAT_USER_LISTENING_STATS, [user], timedelta(days=7), True),
    "user_audio_preferences": (FEAT_USER_AUDIO_PREFERENCES, [user], timedelta(days=30), False),
    "track_audio_features": (FEAT_TRACK_AUDIO_FEATURES, [track], timedelta(0), False),
    "track_popularity": (FEAT_TRACK_POPULARITY, [track], timedelta(days=7), False),
    "user_track_interactions": (
        FEAT_USER_TRACK_INTERACTIONS,
        [user, track],
        timedelta(days=30),
        True,
    ),
    # The SASRec input sequence: a listener's last tracks stay valid however old they are.
    "user_recent_tracks": (FEAT_USER_RECENT_TRACKS, [user], timedelta(0), True),
    # Regenerated monthly and pushed by that job; a graph stays valid until the next one.
    "user_interest_graph": (FEAT_USER_INTEREST_GRAPH, [user], timedelta(0), True),
}
NOT_FEATURES = {"user_id", "track_id", "event_timestamp", "created"}

request_context = RequestSource(
    name="request_context",
    schema=[
        Field(name="request_time", dtype=UnixTimestamp),
        Field(name="device", dtype=String),
        Field(name="position_in_session", dtype=Int64),
    ],
    description="What the app sends with a recommendation request",
)


def feast_type(column_type: Any) -> FeastType:
    if isinstance(column_type, DateTime):
        return UnixTimestamp
    if isinstance(column_type, Integer | SmallInteger):
        return Int64
    if isinstance(column_type, Float):
        return Float64
    if isinstance(column_type, SqlString):
        return String
    raise TypeError(f"no Feast type for {column_type!r}")


def schema(table: Table) -> list[Field]:
    return [
        Field(name=c.name, dtype=feast_type(c.type))
        for c in table.columns
        if c.name not in NOT_FEATURES
    ]


def offline_source(name: str, table: Table, settings: Settings) -> DataSource:
    common: dict[str, Any] = {
        "name": f"{name}_source",
        "timestamp_field": "event_timestamp",
        "created_timestamp_column": "created",
    }
    if settings.database_backend == "postgresql":
        return PostgreSQLSource(table=table.name, **common)
    return FileSource(path=str(offline_parquet(settings, name)), **common)


def offline_parquet(settings: Settings, view: str) -> Any:
    return feature_data_dir(settings) / "offline" / f"{view}.parquet"


# The on-demand view's features (what context_values returns).
CONTEXT_FEATURES: dict[str, FeastType] = {
    "hour_of_day": Int64,
    "day_of_week": Int64,
    "is_weekend": Int64,
    "device_type": String,
    "position_in_session": Int64,
    "seconds_since_last_play": Float64,
}


def context_values(
    request_time: Any, device: Any, position_in_session: Any, last_event_at: Any
) -> dict[str, Any]:
    """context_aware_features for one request (the on-demand view and the fast read path
    both compute them here)."""
    when = as_utc(request_time)
    last = None if _missing(last_event_at) else as_utc(last_event_at)
    return {
        "hour_of_day": when.hour,
        "day_of_week": when.weekday(),
        "is_weekend": int(when.weekday() >= 5),
        "device_type": "unknown" if _missing(device) else str(device),
        "position_in_session": 0 if _missing(position_in_session) else int(position_in_session),
        # -1 when the listener has no play on record.
        "seconds_since_last_play": -1.0 if last is None else (when - last).total_seconds(),
    }


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


@dataclass
class FeatureRepo:
    views: dict[str, FeatureView]
    push_sources: dict[str, PushSource]
    context: OnDemandFeatureView
    service: FeatureService

    @property
    def objects(self) -> list[Any]:
        return [
            user,
            track,
            request_context,
            *self.push_sources.values(),
            *self.views.values(),
            self.context,
            self.service,
        ]


def build_repo(settings: Settings) -> FeatureRepo:
    views: dict[str, FeatureView] = {}
    pushes: dict[str, PushSource] = {}
    for name, (table, entities, ttl, pushed) in VIEWS.items():
        source: DataSource = offline_source(name, table, settings)
        if pushed:
            source = pushes[name] = PushSource(name=f"{name}_push", batch_source=source)
        views[name] = FeatureView(
            name=name,
            entities=entities,
            ttl=ttl,
            schema=schema(table),
            source=source,
            online=True,
        )

    # A new function object per build: Feast's decorator rebinds it to __main__ to pickle it
    # by value, after which its source (which Feast stores too) can no longer be found.
    # Feast runs it from its own copy, without this module's globals: it imports what it uses.
    def _context_features(inputs: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        from feature_store.definitions import context_values

        rows = zip(
            inputs["request_time"],
            inputs["device"],
            inputs["position_in_session"],
            inputs["last_event_at"],
            strict=True,
        )
        return pd.DataFrame([context_values(*row) for row in rows], index=inputs.index)

    context = on_demand_feature_view(
        sources=[views["user_listening_stats"], request_context],
        schema=[Field(name=name, dtype=dtype) for name, dtype in CONTEXT_FEATURES.items()],
        description="Request context joined with the listener's last play",
    )(_context_features)
    context.name = "context_aware_features"
    service = FeatureService(
        name="recommender_v1", features=[*views.values(), context], description="Serving set"
    )
    return FeatureRepo(views=views, push_sources=pushes, context=context, service=service)


# For `feast apply` / `feast materialize-incremental` in this folder.
for _obj in build_repo(get_settings()).objects:
    globals()[f"_feast_{_obj.name}"] = _obj
