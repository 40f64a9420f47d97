"""`musicrec api-keys` as an operator runs it: the key printed once, listings without it,
errors as one line and an exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from apps.api.security import ApiKeys
from apps.cli import app
from musicrec.db.engine import make_engine

runner = CliRunner()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_create_list_revoke(tmp_path: Path, settings_env: Callable[..., None]) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    settings_env(database_url=url, api_key_cache_seconds="15")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    created = runner.invoke(app, ["api-keys", "create", "web-app"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("mr_") and "\n" not in key
    assert "cannot be shown again" in created.stderr
    engine = make_engine(url)
    assert ApiKeys(engine, 0).verify(key) is not None

    listed = runner.invoke(app, ["api-keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert "web-app" in listed.stdout and key[:8] in listed.stdout and "active" in listed.stdout
    assert key[8:] not in listed.stdout

    revoked = runner.invoke(app, ["api-keys", "revoke", "web-app"])
    assert revoked.exit_code == 0, revoked.output
    assert "within 15 s" in revoked.stdout
    assert ApiKeys(engine, 0).verify(key) is None
    assert "revoked" in runner.invoke(app, ["api-keys", "list"]).stdout
    engine.dispose()


def test_errors_are_one_line_and_an_exit_code(
    tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env(database_url=f"sqlite:///{tmp_path / 'keys.db'}")
    unmigrated = runner.invoke(app, ["api-keys", "list"])
    assert unmigrated.exit_code == 1
    assert error_lines(unmigrated.stderr) == [
        "error: the database schema is not up to date: run `musicrec db upgrade`"
    ]

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert "no API keys yet" in runner.invoke(app, ["api-keys", "list"]).stdout
    assert runner.invoke(app, ["api-keys", "create", "web"]).exit_code == 0
    for args, message in [
        (["create", "web"], "error: an API key named 'web' already exists"),
        (["create", "web app"], "error: invalid API key name 'web app'"),
        (["revoke", "nobody"], "error: no active API key named 'nobody'"),
    ]:
        result = runner.invoke(app, ["api-keys", *args])
        assert result.exit_code == 1, args
        assert result.stdout == ""
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and lines[0].startswith(message), lines
        assert "Traceback" not in result.output


def test_create_with_app_and_scopes(tmp_path: Path, settings_env: Callable[..., None]) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    settings_env(database_url=url)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    args = ["api-keys", "create", "ops-page", "--app", "mpd", "--scope", "read", "--scope", "admin"]
    created = runner.invoke(app, args)
    assert created.exit_code == 0, created.output
    assert "for app 'mpd' (scopes: read, admin)" in " ".join(created.stderr.split())
    engine = make_engine(url)
    info = ApiKeys(engine, 0).verify(created.stdout.strip())
    assert info is not None and info.app == "mpd" and info.scopes == ("read", "admin")
    assert runner.invoke(app, ["api-keys", "create", "web"]).exit_code == 0
    listed = runner.invoke(app, ["api-keys", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if "│" in line}
    assert "mpd" in rows["ops-page"] and "read,admin" in rows["ops-page"]
    assert "web" in rows["web"].split("│")[2] and "read,write" in rows["web"]
    engine.dispose()

    for args, message in [
        (["create", "x", "--scope", "delete"], "error: unknown scope 'delete'"),
        (["create", "x", "--app", "a:b"], "error: invalid app name 'a:b'"),
    ]:
        result = runner.invoke(app, ["api-keys", *args])
        assert result.exit_code == 1, args
        assert result.stdout == ""
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and lines[0].startswith(message), lines
