"""The web page for trying the recommender in a browser (docs/webapp.md): plain HTML, CSS and
JavaScript from apps/api/webapp/, no build step. It calls the public routes like any app."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

WEBAPP_DIR = Path(__file__).resolve().parent.parent / "webapp"
# The page loads only its own files: no inline script, no third-party origin, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/app")
async def page() -> FileResponse:
    """The page (its assets are under /app/static/)."""
    return FileResponse(WEBAPP_DIR / "index.html", headers=SECURITY_HEADERS)


@router.get("/app/")
async def page_slash() -> RedirectResponse:
    return RedirectResponse("/app")


static = StaticFiles(directory=WEBAPP_DIR, check_dir=False)
