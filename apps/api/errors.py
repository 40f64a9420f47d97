"""How failures become answers: no input and no dependency outage produces a 5xx the client
cannot act on, and no error closes the client's connection.

- Invalid input: 422 with the validation errors. The input is echoed ASCII-escaped and cut
  short, so an echo of a lone surrogate or a NUL cannot itself fail (FastAPI's own handler
  answered 500 to `"\\ud800"`).
- An unavailable dependency (DependencyUnavailable, or the database unreachable): 503 with
  Retry-After and a one-line reason.
- Anything else: 500, answered by UnhandledErrors without re-raising, so uvicorn keeps the
  keep-alive connection (Starlette's error middleware re-raises, and uvicorn then closes it,
  resetting the next request a client had pipelined on it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musicrec.errors import UserError, one_line

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
ECHO_CHARS = 200  # of an invalid input, in a 422
T = TypeVar("T")


class DependencyUnavailable(Exception):
    """A dependency a route needs (database, online store, event transport) is down or slower
    than the route's budget: 503, retry later."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: encodes any Python string."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":"), default=str).encode()


async def call_blocking(
    dependency: str, timeout_seconds: float, func: Callable[..., T], *args: Any
) -> T:
    """`func(*args)` in a worker thread, answered within `timeout_seconds`. A dependency that
    hangs (a paused server does not refuse, it just never answers) or fails makes it raise
    DependencyUnavailable; the thread is abandoned to finish on its own, holding no lock of
    the event loop."""
    try:
        with anyio.fail_after(timeout_seconds):
            return await anyio.to_thread.run_sync(lambda: func(*args), abandon_on_cancel=True)
    except TimeoutError:
        raise DependencyUnavailable(dependency, f"no answer within {timeout_seconds:g} s") from None
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        raise DependencyUnavailable(
            dependency, one_line(getattr(exc, "orig", None) or exc)
        ) from exc


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return AsciiJSONResponse({"detail": detail}, status_code=status, headers=headers)


def unavailable(exc: DependencyUnavailable) -> JSONResponse:
    log.warning("answered 503: %s", exc)
    return problem(503, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _echoable(error: dict[str, Any]) -> dict[str, Any]:
    error = dict(error)
    if "input" in error:
        text = json.dumps(error["input"], ensure_ascii=True, default=str)
        error["input"] = text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"
    if "ctx" in error:  # holds the exception a validator raised: its text is in "msg"
        error["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
    return error


def install(app: FastAPI) -> None:
    """The exception handlers of the public API (the catch-all is UnhandledErrors)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return AsciiJSONResponse({"detail": [_echoable(e) for e in exc.errors()]}, status_code=422)

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        return problem(422, str(exc))

    @app.exception_handler(DependencyUnavailable)
    async def dependency(_: Request, exc: DependencyUnavailable) -> JSONResponse:
        return unavailable(exc)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def database(_: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", None) or exc
        return unavailable(DependencyUnavailable("database", one_line(orig)))


class UnhandledErrors:
    """The last resort, inside the metrics middleware: an exception no handler took becomes a
    logged 500, and is not re-raised (see the module docstring). After the response started
    there is nothing to answer: it is re-raised and the server drops the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await problem(500, "internal error")(scope, receive, send)
