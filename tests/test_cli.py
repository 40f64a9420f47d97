"""The `musicrec` command as a user runs it: exit codes and one-line errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from apps.cli import LAZY_COMMANDS, LAZY_GROUPS, app, load_command
from musicrec.db.engine import make_engine
from musicrec.db.stats import catalog_counts
from tests.ml_pipeline.ingest.mpd_files import playlist, write_slice

runner = CliRunner()


def _musicrec(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_truncated_file_exits_nonzero_with_one_line_and_no_writes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    good = write_slice(tmp_path / "d" / "good.json", [playlist(0, [1, 2], full=True)])
    bad = tmp_path / "d" / "bad.json"
    bad.write_text(good.read_text()[:-40])

    assert _musicrec("db", "upgrade", db=db).returncode == 0
    result = _musicrec("ingest", "mpd", str(bad), db=db)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error_lines[0].startswith(f"error: {bad}: invalid JSON")
    assert catalog_counts(make_engine(f"sqlite:///{db}"))["playlists"] == 0

    ok = _musicrec("ingest", "mpd", str(good), db=db)
    assert ok.returncode == 0, ok.stderr
    assert "new playlist tracks" in ok.stdout


def test_ingest_requires_a_migrated_database(
    tmp_path: Path, settings_env: Callable[..., None]
) -> None:
    settings_env(database_url=f"sqlite:///{tmp_path / 'new.db'}")
    result = runner.invoke(app, ["ingest", "mpd", str(tmp_path)])
    assert result.exit_code == 1
    assert "musicrec db upgrade" in result.output


def test_missing_path_is_a_clear_error(tmp_path: Path, settings_env: Callable[..., None]) -> None:
    settings_env(database_url=f"sqlite:///{tmp_path / 'm.db'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["ingest", "mpd", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert "nope.json: no such file or folder" in result.output


def test_unreachable_database_exits_3(settings_env: Callable[..., None]) -> None:
    settings_env(database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    result = runner.invoke(app, ["summary"])
    assert result.exit_code == 3
    assert "database error: connection to server" in result.output


def test_help_lists_every_command_and_imports_none_of_the_heavy_modules() -> None:
    """`musicrec --help` (and every process started through the CLI) pays only for the CLI."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from apps.cli import app\n"
        "reply = CliRunner().invoke(app, ['--help'], env={'COLUMNS': '200'})\n"
        "assert reply.exit_code == 0, reply.output\n"
        "print(reply.output)\n"
        "heavy = ('torch', 'feast', 'pandas', 'transformers', 'mlflow', 'alembic', 'ml_pipeline',"
        " 'feature_store', 'inference')\n"
        "print('imported:', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout
    for name, (_, help_line) in {**LAZY_COMMANDS, **LAZY_GROUPS}.items():
        assert name in done.stdout and help_line in done.stdout


def test_every_lazy_command_loads_with_the_help_line_listed_for_it() -> None:
    for name, (_, help_line) in {**LAZY_COMMANDS, **LAZY_GROUPS}.items():
        command = load_command(name)
        assert command.name == name
        assert (command.short_help or command.help) == help_line, name
