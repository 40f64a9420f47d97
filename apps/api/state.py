"""What the API's routes share: built once at start-up (embedded or services mode) and kept on
`app.state.api`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from apps.api.security import ApiKeys, RateLimiter
from apps.ml.catalog import Catalog
from apps.ml.client import MLBackend
from apps.workers.feedback import InProcessConsumer
from apps.workers.transport import EventTransport
from musicrec.config import Settings


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    ml: MLBackend
    transport: EventTransport
    keys: ApiKeys
    limiter: RateLimiter
    catalog: Callable[[], Catalog]  # the current catalog (the ML service swaps it on reload)
    consumer: InProcessConsumer | None = None  # embedded mode's feedback consumer thread
