"""Security building blocks of the public API, independent of the routes: client API keys
(stored as hashes, verified from memory; each acts for an app, with scopes), the admin token
check, a per-key rate limiter and a request body size limit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musicrec.config import Settings
from musicrec.db.models import ApiKey
from musicrec.errors import UserError

log = logging.getLogger(__name__)

KEY_PREFIX = "mr_"
SHOWN_PREFIX_CHARS = 8
NAME_MAX_CHARS = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Real keys have 46 characters; anything much longer is refused without hashing it.
_MAX_KEY_CHARS = 128
# What a key may do: read (recommendations, listeners, search), write (feedback), admin (the
# operations view). In this order in storage and listings.
SCOPES = ("read", "write", "admin")
DEFAULT_SCOPES = ("read", "write")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: int
    name: str
    app: str  # whose listeners the key sees: stored as "<app>:<id>" (apps/api/tenancy.py)
    scopes: tuple[str, ...]  # a subset of SCOPES, in their order
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(plaintext: str) -> str:
    # sha256, not bcrypt or argon2: slow hashes protect guessable passwords, but these keys hold
    # 256 random bits, out of reach of brute force at any hash speed. A fast, unsalted hash lets
    # the digest itself be the lookup key, so a request costs one dict lookup.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _check_name(name: str, what: str = "API key name") -> None:
    # App names follow the same rule: they never contain ':', the separator of stored listener
    # ids ("<app>:<id>"), so one app's ids can never be spelled through another app.
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        raise UserError(f"an {what} has 1 to {NAME_MAX_CHARS} characters, not {len(name)}")
    if not _NAME.fullmatch(name):
        raise UserError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )


def parse_scopes(given: Iterable[str]) -> tuple[str, ...]:
    """The scopes named (each once, in SCOPES order); a UserError for an unknown or no scope."""
    wanted = set(given)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise UserError(f"unknown scope {unknown[0]!r}: a scope is {', '.join(SCOPES)}")
    if not wanted:
        raise UserError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in wanted)


RELOAD_RETRY_SECONDS = 5.0


class ApiKeys:
    """Client API keys. Only the sha256 of a key is stored; the plaintext is shown once.

    `verify` answers from an in-memory map of the valid keys' hashes, reloaded when older than
    `cache_seconds` (a key revoked elsewhere stops working within that time) and when an
    unknown key comes in, at most once per `cache_seconds` (a key just created by another
    process works at once; a stream of garbage keys adds at most one query per period).

    One reload runs at a time, and never under the lock that lookups take: while it runs, other
    lookups answer from the map. The API calls `verify_within`, which reloads in a worker thread
    within a time budget: a database that hangs costs one request that budget, and the keys
    already known keep working (reloads are retried after RELOAD_RETRY_SECONDS).
    """

    def __init__(self, engine: Engine, cache_seconds: float, *, clock: Clock = time.monotonic):
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._valid: dict[str, ApiKeyInfo] = {}
        self._loaded_at: float | None = None
        self._miss_reload_at: float | None = None
        self._reloading = False
        self._retry_at = 0.0  # after a failed reload: none before then

    def create(
        self, name: str, *, app: str | None = None, scopes: Iterable[str] = DEFAULT_SCOPES
    ) -> str:
        """A new key for `name`, returned in plaintext: the only time it is available. It acts
        for `app` (default: `name`) with `scopes` (default: read and write)."""
        _check_name(name)
        app = name if app is None else app
        _check_name(app, "app name")
        granted = parse_scopes(scopes)
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        digest, prefix = hash_key(plaintext), plaintext[:SHOWN_PREFIX_CHARS]
        stmt = (
            insert(ApiKey)
            .values(name=name, app=app, scopes=",".join(granted), prefix=prefix, key_hash=digest)
            .returning(ApiKey.id, ApiKey.created_at)
        )
        try:
            with self._engine.begin() as conn:
                row = conn.execute(stmt).one()
        except IntegrityError:
            raise UserError(
                f"an API key named {name!r} already exists (a revoked key keeps its name)"
            ) from None
        with self._lock:
            self._valid[digest] = ApiKeyInfo(row.id, name, app, granted, prefix, row.created_at)
        return plaintext

    def revoke(self, name: str) -> bool:
        """Revoke the active key of that name; False if there is none."""
        stmt = (
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        with self._engine.begin() as conn:
            revoked = conn.execute(stmt).rowcount == 1
        if revoked:
            with self._lock:
                self._valid = {h: i for h, i in self._valid.items() if i.name != name}
        return revoked

    def verify(self, plaintext: str) -> ApiKeyInfo | None:
        """The valid key's details, or None. A dict lookup unless the cache is due a reload
        (done here: for tools and tests; the API uses verify_within)."""
        digest, reload = self._lookup(plaintext)
        if reload:
            self._reload()
        return self._valid.get(digest) if digest else None

    async def verify_within(self, plaintext: str, timeout_seconds: float) -> ApiKeyInfo | None:
        """verify() for the event loop: a due reload runs in a worker thread, at most
        `timeout_seconds`. Raises DependencyUnavailable only while no key was ever loaded."""
        from apps.api.errors import DependencyUnavailable, call_blocking

        digest, reload = self._lookup(plaintext)
        if reload:
            try:
                await call_blocking("database", timeout_seconds, self._reload)
            except DependencyUnavailable as exc:
                self._reload_failed(exc)
                if self._loaded_at is None:
                    raise
        return self._valid.get(digest) if digest else None

    def load(self) -> None:
        """Read the keys now (at start-up: the first request then does not wait for it)."""
        with self._lock:
            self._reloading = True
        self._reload()

    def _lookup(self, plaintext: str) -> tuple[str | None, bool]:
        """The key's digest (None for what cannot be a key) and whether to reload first (the
        caller then does; no other reload starts meanwhile)."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > _MAX_KEY_CHARS:
            return None, False
        digest = hash_key(plaintext)
        with self._lock:
            now = self._clock()
            if self._reloading or now < self._retry_at:
                return digest, False
            reload = self._due(self._loaded_at, now)
            if digest not in self._valid and not reload and self._due(self._miss_reload_at, now):
                reload, self._miss_reload_at = True, now
            self._reloading = reload
            return digest, reload

    def _due(self, at: float | None, now: float) -> bool:
        return at is None or now - at >= self._cache_seconds

    def _reload(self) -> None:
        """Read the valid keys (outside the lock: lookups go on meanwhile) and swap them in.
        A failure keeps the keys known, if any, and no reload starts for a while."""
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(_SELECT.where(ApiKey.revoked_at.is_(None))).all()
        except SQLAlchemyError as exc:
            self._reload_failed(exc)
            if self._loaded_at is None:
                raise
            return
        with self._lock:
            self._valid = {row.key_hash: _info(row) for row in rows}
            self._loaded_at = self._clock()
            self._reloading = False

    def _reload_failed(self, exc: Exception) -> None:
        with self._lock:
            if not self._reloading:  # said already (by the thread, or by its waiter)
                return
            self._reloading = False
            self._retry_at = self._clock() + max(self._cache_seconds, RELOAD_RETRY_SECONDS)
        # Keep serving the keys we know rather than refuse every client.
        log.warning("API keys: reload failed, keeping the %d known: %s", len(self._valid), exc)

    # Last: a method named `list` would shadow the builtin in annotations below it.
    def list(self) -> list[ApiKeyInfo]:
        """Every key, revoked ones included, oldest first."""
        with self._engine.connect() as conn:
            return [_info(row) for row in conn.execute(_SELECT.order_by(ApiKey.id))]


_SELECT = select(
    ApiKey.id,
    ApiKey.name,
    ApiKey.app,
    ApiKey.scopes,
    ApiKey.prefix,
    ApiKey.key_hash,
    ApiKey.created_at,
    ApiKey.revoked_at,
)


def _info(row: Row[int, str, str, str, str, str, datetime, datetime | None]) -> ApiKeyInfo:
    scopes = tuple(scope for scope in SCOPES if scope in row.scopes.split(","))
    return ApiKeyInfo(row.id, row.name, row.app, scopes, row.prefix, row.created_at, row.revoked_at)


def check_admin_token(given: str | None, settings: Settings) -> bool:
    """Whether `given` is the configured admin token; False when none is configured."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not expected or given is None:
        return False
    # Compare digests: compare_digest on the tokens themselves would reveal the length.
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


class RateLimiter:
    """A token bucket per key: up to `burst` requests at once, `rate_per_second` sustained.

    Memory stays bounded: a bucket idle long enough to be full again is dropped (no bucket
    means a full one), and past `max_keys` the least recently used buckets go first (such a
    key gets a fresh burst: a lenient error, and only under a flood of distinct keys).
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if rate_per_second <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_second must be > 0, burst and max_keys >= 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._full_after = burst / rate_per_second
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, when counted); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str) -> float:
        """0.0 if the request may go ahead (and counts it), else the seconds to wait."""
        with self._lock:
            now = self._clock()
            self._evict(now)
            tokens, at = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + max(0.0, now - at) * self._rate)
            wait = 0.0
            if tokens >= 1 - 1e-9:  # float rounding: waiting the time returned must be enough
                tokens -= 1
            else:
                wait = (1 - tokens) / self._rate
            self._buckets[key] = (tokens, now)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            _, at = buckets[next(iter(buckets))]
            if now - at < self._full_after and len(buckets) < self._max_keys:
                return
            buckets.popitem(last=False)


class BodySizeLimitMiddleware:
    """Answers 413 to request bodies over `max_bytes`: before reading anything when the
    Content-Length says so, else as soon as the bytes received (chunked bodies) pass it. And 408
    when the body stops arriving for `read_timeout_seconds` (a body shorter than its
    Content-Length would otherwise hold the request open for good: uvicorn has no such limit).

    Pure ASGI: BaseHTTPMiddleware would add a task and copies to every request. After a 413 or
    408 the app sees the client as gone (http.disconnect); what it still sends or raises is
    dropped.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, read_timeout_seconds: float | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_seconds = read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(send)
            return

        received = 0
        started = cut = rejected = complete = False

        async def limited_receive() -> Message:
            nonlocal received, cut, rejected, complete
            if cut:
                return {"type": "http.disconnect"}
            if complete or self.read_timeout_seconds is None:
                message = await receive()  # after the body: waiting for a disconnect is fine
            else:
                try:
                    message = await asyncio.wait_for(receive(), self.read_timeout_seconds)
                except TimeoutError:
                    cut = True
                    if not started:
                        rejected = True
                        await self._reject(
                            send,
                            408,
                            f"request body not received within {self.read_timeout_seconds:g} s",
                        )
                    return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    cut = True
                    if not started:  # else too late for a status: the app just loses the client
                        rejected = True
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise
            log.debug("app failed on a body cut off at %d bytes", self.max_bytes, exc_info=True)

    async def _reject(self, send: Send, status: int = 413, detail: str | None = None) -> None:
        detail = detail or f"request body larger than {self.max_bytes} bytes"
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return None if value is None else int(value)
    except ValueError:  # the server rejects such requests; the streaming count still applies
        return None
