"""The feature store as the rest of the system uses it: apply the definitions, run the batch job
and materialize, and open a Feast FeatureStore for the configured mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
from feast import FeatureStore, RepoConfig
from sqlalchemy import Engine, select

from feature_store.compute import ComputeReport, compute_features, latest_event_time
from feature_store.config import REPO_DIR, feature_data_dir, repo_config_dict
from feature_store.config import write_feature_store_yaml as write_yaml
from feature_store.definitions import VIEWS, build_repo, offline_parquet
from musicrec.config import Settings
from musicrec.errors import UserError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def open_store(settings: Settings) -> FeatureStore:
    feature_data_dir(settings).mkdir(parents=True, exist_ok=True)
    config = RepoConfig(repo_path=REPO_DIR, **repo_config_dict(settings))
    return FeatureStore(config=config)


def apply(settings: Settings, engine: Engine) -> FeatureStore:
    """Register the definitions (idempotent) and write feature_store.yaml for the feast CLI."""
    write_yaml(settings)
    if settings.database_backend == "sqlite":
        export_offline(settings, engine)  # file sources must exist to be applied
    store = open_store(settings)
    store.apply(build_repo(settings).objects)
    return store


def export_offline(settings: Settings, engine: Engine) -> None:
    """Embedded mode: Feast's file offline store reads parquet, so the feature tables are
    exported after every batch run (they are small in this mode)."""
    for view, (table, *_rest) in VIEWS.items():
        path = offline_parquet(settings, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        with engine.connect() as conn:
            df = pd.DataFrame(conn.execute(select(table)).mappings().all(), columns=table.c.keys())
        for column in ("event_timestamp", "created", "last_event_at", "last_played_at"):
            if column in df:
                df[column] = pd.to_datetime(df[column], utc=True)
        tmp = path.with_suffix(".tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(path)  # readers never see a half-written file


@dataclass
class MaterializeReport:
    computed: ComputeReport
    mode: Literal["incremental", "full"]
    online_store: str


def resolve_as_of(engine: Engine, as_of: str | datetime | None) -> datetime:
    """`now` (default), `latest` (the newest event: for historical data such as the MPD),
    or an ISO timestamp (UTC when it has no zone)."""
    if isinstance(as_of, datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    if as_of in (None, "now"):
        return datetime.now(UTC)
    if as_of == "latest":
        latest = latest_event_time(engine)
        if latest is None:
            raise UserError("no listening events yet: nothing to compute features from")
        return latest
    try:
        parsed = datetime.fromisoformat(as_of)
    except ValueError:
        raise UserError(f"--as-of: not a timestamp, 'now' or 'latest': {as_of!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def materialize(
    settings: Settings,
    engine: Engine,
    as_of: datetime,
    *,
    full: bool = False,
    on_view: Callable[[str], None] | None = None,
) -> MaterializeReport:
    """Batch job then materialization. Incremental by default; `full` recomputes every feature
    table and reloads the online store from the beginning."""
    computed = compute_features(engine, as_of, rebuild=full, on_view=on_view)
    store = apply(settings, engine)  # also exports the offline files in embedded mode
    # Feast starts a view's first incremental run at (wall clock - TTL), which would skip
    # historical data: views never materialized are loaded from the beginning instead.
    fresh = [v.name for v in store.list_feature_views() if full or not v.materialization_intervals]
    if fresh:
        store.materialize(start_date=EPOCH, end_date=as_of, feature_views=fresh)
    rest = [v.name for v in store.list_feature_views() if v.name not in fresh]
    if rest:
        store.materialize_incremental(end_date=as_of, feature_views=rest)
    return MaterializeReport(
        computed=computed,
        mode="full" if full else "incremental",
        online_store=settings.online_store,
    )
