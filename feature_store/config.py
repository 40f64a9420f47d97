"""The Feast repository configuration, generated from the settings: the one source of truth
for both modes. `feature_store.yaml` (for the `feast` CLI in this folder) is written from the same
dictionary, never kept by hand.

- embedded: file offline store (parquet under var/feature_store/offline), SQLite online store,
  file registry;
- services: Postgres offline store and SQL registry in DATABASE_URL's database, Redis online
  store at FEAST_REDIS_HOST:FEAST_REDIS_PORT.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from musicrec.config import Settings

REPO_DIR = Path(__file__).resolve().parent

os.environ.setdefault("FEAST_USAGE", "False")  # no telemetry calls (and no network here)
# context_aware_features is an on-demand view; Feast warns on every use that they are new.
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")


def feature_data_dir(settings: Settings) -> Path:
    """Where embedded-mode feature data lives (offline parquet, online SQLite, registry)."""
    return settings.var_dir / "feature_store"


def repo_config_dict(settings: Settings) -> dict[str, Any]:
    data = feature_data_dir(settings)
    config: dict[str, Any] = {
        "project": settings.feast_project,
        "provider": "local",
        "entity_key_serialization_version": 3,
    }
    if settings.database_backend == "postgresql":
        url = make_url(settings.database_url)
        search_path = _search_path(url.query.get("options"))
        config["registry"] = {
            "registry_type": "sql",
            "path": settings.database_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        }
        config["offline_store"] = {
            "type": "postgres",
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "database": url.database or "postgres",
            "db_schema": search_path or "public",
            "user": url.username or "postgres",
            "password": url.password or "",
            "sslmode": url.query.get("sslmode", "disable"),
        }
    else:
        config["registry"] = str(data / "registry.db")
        config["offline_store"] = {"type": "file"}
    if settings.online_store == "redis":
        config["online_store"] = {"type": "redis", "connection_string": redis_connection(settings)}
    else:
        config["online_store"] = {"type": "sqlite", "path": str(data / "online.db")}
    return config


def redis_connection(settings: Settings) -> str:
    """Feast's Redis connection string: host:port, then redis-py arguments as key=JSON value.
    Every call has a socket timeout (redis-py has none by default: a Redis that hangs, rather
    than refusing, would hold a push or a readiness probe forever)."""
    timeout = settings.redis_timeout_seconds
    parts = [
        f"{settings.feast_redis_host}:{settings.feast_redis_port}",
        f"socket_timeout={timeout}",
        f"socket_connect_timeout={timeout}",
    ]
    if settings.feast_redis_password is not None:
        password = settings.feast_redis_password.get_secret_value()
        if "," in password:  # Feast splits the string on commas
            raise ValueError("FEAST_REDIS_PASSWORD cannot contain a comma (Feast's format)")
        parts.append(f"password={json.dumps(password)}")
    return ",".join(parts)


def _search_path(options: str | tuple[str, ...] | None) -> str | None:
    """The schema of a `?options=-csearch_path=X` URL (how tests isolate themselves)."""
    if isinstance(options, tuple):
        options = " ".join(options)
    for part in (options or "").split():
        if part.startswith("-csearch_path="):
            return part.split("=", 1)[1].split(",")[0]
    return None


def write_feature_store_yaml(settings: Settings, repo_dir: Path = REPO_DIR) -> Path:
    path = repo_dir / "feature_store.yaml"
    header = "# Generated from musicrec settings by `musicrec features apply`; do not edit.\n"
    config = repo_config_dict(settings)
    if settings.feast_redis_password is not None:  # the feast CLI expands it; never on disk
        secret = json.dumps(settings.feast_redis_password.get_secret_value())
        online = config["online_store"]
        online["connection_string"] = online["connection_string"].replace(
            f"password={secret}", "password=${FEAST_REDIS_PASSWORD}"
        )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path
