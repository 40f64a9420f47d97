"""Route dependencies: the shared state, client API keys with their rate limit and scopes, the
admin token. All async: a sync dependency would cost a thread-pool hop per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from apps.api.schemas import Problem
from apps.api.security import ApiKeyInfo, check_admin_token
from apps.api.state import ApiState

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Client API key (`musicrec api-keys create`)"
)
admin_bearer = HTTPBearer(auto_error=False, description="The admin token (ADMIN_TOKEN)")


async def get_state(request: Request) -> ApiState:
    return request.app.state.api


StateDep = Annotated[ApiState, Depends(get_state)]


def _limit(state: ApiState, key: str) -> None:
    wait = state.limiter.acquire(key)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate limit exceeded",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )


async def client_key(
    state: StateDep, key: Annotated[str | None, Security(api_key_header)]
) -> ApiKeyInfo:
    timeout = state.settings.database_timeout_seconds
    info = await state.keys.verify_within(key, timeout) if key else None
    if info is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid API key (header X-API-Key)",
            headers={"WWW-Authenticate": "APIKey"},
        )
    _limit(state, f"key:{info.name}")
    return info


async def anonymous_client(request: Request, state: StateDep) -> None:
    """Open routes are rate limited per client address."""
    _limit(state, f"ip:{request.client.host if request.client else 'unknown'}")


async def admin(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(admin_bearer)],
) -> None:
    if state.settings.admin_token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin routes are off: set ADMIN_TOKEN")
    if credentials is None or not check_admin_token(credentials.credentials, state.settings):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid admin token (Authorization: Bearer <ADMIN_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


ClientDep = Annotated[ApiKeyInfo, Depends(client_key)]


def _scoped(scope: str) -> Callable[[ApiKeyInfo], Awaitable[ApiKeyInfo]]:
    async def key_with_scope(info: ClientDep) -> ApiKeyInfo:
        if scope not in info.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"API key {info.name!r} lacks the {scope!r} scope "
                f"(it has: {', '.join(info.scopes)})",
            )
        return info

    return key_with_scope


# A valid key (rate limited per key) with that scope, else 401 / 403.
ReadKey = Annotated[ApiKeyInfo, Depends(_scoped("read"))]
WriteKey = Annotated[ApiKeyInfo, Depends(_scoped("write"))]
AdminKey = Annotated[ApiKeyInfo, Depends(_scoped("admin"))]
# What routes behind a client key (ClientDep) or the address limit can also answer.
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or invalid API key"},
    403: {"model": Problem, "description": "The API key lacks the route's scope"},
    429: {"model": Problem, "description": "Rate limit exceeded: see Retry-After"},
}
LIMITED: dict[int | str, dict[str, Any]] = {429: CLIENT_ERRORS[429]}
