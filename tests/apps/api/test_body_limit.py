"""The body size limit on tiny Starlette and FastAPI apps: refused from the Content-Length
before the app runs, and from the bytes counted while a chunked body streams in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from apps.api.security import BodySizeLimitMiddleware

LIMIT = 100
TOO_LARGE = {"detail": f"request body larger than {LIMIT} bytes"}


def starlette_app(calls: list[str]) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        calls.append("echo")
        return JSONResponse({"size": len(await request.body())})

    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"])],
        middleware=[Middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)],
    )


class Note(BaseModel):
    text: str


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.post("/notes")
    async def note(body: Note) -> dict[str, int]:
        return {"size": len(body.text)}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)
    return app


def post_chunks(
    app: Starlette | FastAPI, path: str, chunks: list[bytes]
) -> tuple[httpx.Response, int]:
    """POST a chunked body (no Content-Length); also how many chunks the app pulled."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"content-type": "application/json"}
            return await client.post(path, content=body(), headers=headers)

    response = asyncio.run(run())
    return response, pulled


def test_content_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    calls: list[str] = []
    with TestClient(starlette_app(calls)) as client:
        reply = client.post("/echo", content=b"x" * (LIMIT + 1))
        assert reply.status_code == 413
        assert reply.json() == TOO_LARGE
        assert reply.headers["content-type"] == "application/json"
        assert calls == []

        reply = client.post("/echo", content=b"x" * LIMIT)
        assert reply.status_code == 200
        assert reply.json() == {"size": LIMIT}
        assert calls == ["echo"]


def test_chunked_body_is_cut_off_as_it_passes_the_limit() -> None:
    calls: list[str] = []
    app = starlette_app(calls)
    reply, pulled = post_chunks(app, "/echo", [b"x" * 30] * 10)
    assert reply.status_code == 413
    assert reply.json() == TOO_LARGE
    assert pulled == 4  # 120 bytes: the rest was never read
    assert calls == ["echo"]

    reply, pulled = post_chunks(app, "/echo", [b"x" * 25] * 4)
    assert reply.status_code == 200
    assert reply.json() == {"size": LIMIT}


def test_fastapi_json_bodies() -> None:
    app = fastapi_app()
    small, large = b'{"text": "hello"}', b'{"text": "' + b"a" * LIMIT + b'"}'
    with TestClient(app) as client:
        json_type = {"content-type": "application/json"}
        assert client.post("/notes", content=small, headers=json_type).json() == {"size": 5}
        reply = client.post("/notes", content=large, headers=json_type)
        assert (reply.status_code, reply.json()) == (413, TOO_LARGE)

    reply, _ = post_chunks(app, "/notes", [small[:8], small[8:]])
    assert (reply.status_code, reply.json()) == (200, {"size": 5})
    reply, pulled = post_chunks(
        app, "/notes", [large[i : i + 20] for i in range(0, len(large), 20)]
    )
    assert (reply.status_code, reply.json()) == (413, TOO_LARGE)
    assert pulled == 6


def test_requests_without_a_body_and_other_scopes_pass() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)
    with TestClient(app) as client:  # the lifespan scope goes through too
        assert client.get("/ping").json() == {"ok": True}
