"""`musicrec api-keys …`: create, list and revoke the client keys of the public API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from apps.api.security import DEFAULT_SCOPES, NAME_MAX_CHARS, SCOPES, ApiKeys
from musicrec.config import get_settings
from musicrec.console import cli_errors, console, err_console
from musicrec.db.migrate import migrated_engine
from musicrec.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Client API keys of the public API (X-API-Key).")

Name = Annotated[
    str,
    typer.Argument(
        help=f"Who the key is for, e.g. web-app: letters, digits, '.', '_', '-' "
        f"(at most {NAME_MAX_CHARS})."
    ),
]
AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="The app the key acts for (default: NAME). Listeners are the app's own: the API "
        "stores them as APP:ID. Ingested MPD playlists are the app mpd's.",
    ),
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help=f"What the key may do, repeatable: {', '.join(SCOPES)} "
        f"(default: {' and '.join(DEFAULT_SCOPES)}). admin: the operations view.",
    ),
]


@contextmanager
def _keys() -> Iterator[ApiKeys]:
    engine = migrated_engine()
    try:
        yield ApiKeys(engine, cache_seconds=0)
    finally:
        engine.dispose()


@app.command("create")
def create(name: Name, app_name: AppOption = None, scope: ScopeOption = None) -> None:
    """Create a key and print it: the only time it can be seen."""
    scopes = scope or DEFAULT_SCOPES
    with cli_errors(), _keys() as keys:
        key = keys.create(name, app=app_name, scopes=scopes)
    # The key alone on stdout (KEY=$(musicrec api-keys create web) works), the note on stderr.
    typer.echo(key)
    err_console.print(
        f"created API key {name!r} for app {app_name or name!r} "
        f"(scopes: {', '.join(s for s in SCOPES if s in scopes)}): store it now, it cannot be "
        "shown again (only its hash is kept). Clients send it in the X-API-Key header.",
        highlight=False,
    )


@app.command("list")
def list_keys() -> None:
    """Show every key: name, app, scopes, first characters, created, revoked."""
    with cli_errors(), _keys() as keys:
        infos = keys.list()
    if not infos:
        console.print("no API keys yet: `musicrec api-keys create NAME`")
        return
    table = Table(title="API keys (times in UTC)", title_justify="left")
    for column in ("name", "app", "scopes", "prefix", "created", "status"):
        table.add_column(column)
    for info in infos:
        status = "active" if info.revoked_at is None else f"revoked {_utc(info.revoked_at)}"
        scopes = ",".join(info.scopes)
        table.add_row(info.name, info.app, scopes, info.prefix, _utc(info.created_at), status)
    console.print(table)


def _utc(moment: datetime) -> str:
    # Postgres hands back the session's time zone, SQLite naive UTC.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M}"


@app.command("revoke")
def revoke(name: Name) -> None:
    """Revoke a key; running API processes refuse it within API_KEY_CACHE_SECONDS."""
    with cli_errors(), _keys() as keys:
        if not keys.revoke(name):
            raise UserError(f"no active API key named {name!r}")
    seconds = get_settings().api_key_cache_seconds
    console.print(
        f"revoked API key {name!r}: running API processes refuse it within {seconds:g} s",
        highlight=False,
    )
