"""What the ML service answers: the same models in process (embedded mode) and as JSON over HTTP
(services mode), and what the public API returns for recommendations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from inference.diversity import Diversity
from musicrec.events import USER_ID_MAX_CHARS, StorableText

MAX_K = 500  # the RecSys Challenge's list length
# What produced a response: the model, the popularity list, or the listener's last response
# kept while the feature store was unreachable.
Source = Literal["model", "popularity", "cached"]


class SeedTrack(BaseModel):
    """A track the listener likes, named as an app knows it (the /predict input)."""

    model_config = ConfigDict(extra="ignore")  # MPD track objects carry album, pos, ...

    track_name: StorableText = Field(min_length=1, max_length=512, examples=["Mr. Brightside"])
    artist_name: StorableText = Field(min_length=1, max_length=512, examples=["The Killers"])
    track_uri: StorableText | None = Field(
        default=None,
        max_length=128,
        description="Spotify URI, when the app has it: matched first",
        examples=["spotify:track:003vvx7Niy0yvhvHt4a68B"],
    )


class RecommendedTrack(BaseModel):
    track_uri: str
    track_name: str
    artist_name: str
    genre: str | None = None
    score: float = Field(description="The ranker's score (higher is better; model-specific)")
    reason: str = Field(examples=["because you played Mr. Brightside"])


class Recommendations(BaseModel):
    user_id: str | None = None
    tracks: list[RecommendedTrack]
    source: Source
    fallback: bool = Field(description="True when the model path was not used as intended")
    fallback_reason: str | None = None
    model_version: str | None = None
    diversity: Diversity
    unmatched_seeds: int = Field(
        default=0, description="How many /predict seeds matched no known track"
    )
    unmatched: list[int] = Field(
        default_factory=list,
        description="Positions (from 0) of the seeds that matched no known track: they count "
        "by their artist and text only",
    )


class UserQuery(BaseModel):
    user_id: str = Field(min_length=1, max_length=USER_ID_MAX_CHARS)  # the stored id
    k: int = Field(default=10, ge=1, le=MAX_K)
    device: str | None = Field(default=None, max_length=32)
    position_in_session: int = Field(default=0, ge=0, le=100_000)
    diversity: float = Field(default=0.3, ge=0, le=1)
    request_id: str | None = Field(default=None, max_length=64, description="Logged with it")


class PredictQuery(BaseModel):
    tracks: list[SeedTrack] = Field(default_factory=list, max_length=100)
    name: str = Field(default="", max_length=256, description="The playlist's title")
    k: int = Field(default=20, ge=1, le=MAX_K)
    diversity: float = Field(default=0.0, ge=0, le=1)


class ModelStatus(BaseModel):
    loaded: bool
    version: str | None = None
    path: str | None = None
    loaded_at: str | None = None
    items: int = 0
    text_seeds: bool = Field(default=False, description="Unknown seeds read from their text")
    canary_version: str | None = Field(
        default=None, description="The canary model serving a share of listeners, if any"
    )
    last_error: str | None = None


class ModelCard(BaseModel):
    """A served model as the operations view shows it: what it is, how it was trained and how
    it scored offline (from its training record and, for registered versions, the registry)."""

    role: Literal["production", "canary"]
    version: str
    loaded_at: str | None = None
    items: int = 0
    text_seeds: bool = False
    registered_version: int | None = Field(default=None, description="MLflow model version")
    trained_at: str | None = None
    protocol: str | None = Field(default=None, description="How the offline metrics were measured")
    metrics: dict[str, float | None] = Field(default_factory=dict, description="Offline test")
    baselines: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    curve: list[dict[str, float | None]] = Field(
        default_factory=list, description="Per epoch: loss and validation metrics"
    )
    decision: str | None = Field(default=None, description="The retraining job's reason")


class ModelsReport(BaseModel):
    models: list[ModelCard]
    canary_share: float
    aliases: dict[str, int] = Field(
        default_factory=dict, description="Registry aliases (staging, canary, production)"
    )
    last_error: str | None = None
