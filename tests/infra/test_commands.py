"""Every command the deployment runs — docker-compose.yml, each rendered Kustomize overlay, the
crontab — is a real command of the project's CLI with options it accepts (run with --help), so
the files cannot drift from the code. The other programs the stack runs from the image (the MLflow
server, TensorBoard) must exist in the environment and know every option they are given."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apps.cli import app
from tests.infra.manifests import (
    K8S,
    OVERLAYS,
    compose_commands,
    container_commands,
    containers,
    crontab_jobs,
    documented_settings,
    render,
    services,
)

BIN = Path(sys.executable).parent


def deployed_commands() -> dict[tuple[str, ...], str]:
    """Each distinct command line → where it first appears."""
    found: dict[tuple[str, ...], str] = {}
    for name, service in services().items():
        if service.get("image", "").startswith("musicrec:"):
            for argv in compose_commands(service):
                found.setdefault(tuple(argv), f"docker-compose.yml: {name}")
    for overlay in OVERLAYS:
        for obj in render(K8S / "overlays" / overlay):
            for container in containers(obj):
                for argv in container_commands(container):
                    found.setdefault(tuple(argv), f"{overlay}: {obj['metadata']['name']}")
    for schedule, argv in crontab_jobs().items():
        found.setdefault(tuple(argv), f"crontab: {schedule}")
    return found


def musicrec_commands() -> list[tuple[str, ...]]:
    return sorted(argv for argv in deployed_commands() if argv[0] == "musicrec")


def test_every_deployed_process_is_known() -> None:
    programs = {argv[0] for argv in deployed_commands()}
    assert programs == {"musicrec", "mlflow", "tensorboard"}, programs
    subcommands = {argv[1] for argv in musicrec_commands()}
    expected = {"serve", "serve-ml", "consume-feedback", "relay-outbox", "db", "features"}
    assert expected | {"retrain", "promote", "interest-graph"} <= subcommands


@pytest.mark.parametrize("argv", musicrec_commands(), ids=" ".join)
def test_musicrec_commands_are_cli_commands(argv: tuple[str, ...]) -> None:
    reply = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert reply.exit_code == 0, (deployed_commands()[argv], reply.output)


def test_a_wrong_command_fails_the_check() -> None:
    """The CLI check is not vacuous: an unknown command or option is refused."""
    runner = CliRunner()
    assert runner.invoke(app, ["serve-ml", "--hots", "0.0.0.0", "--help"]).exit_code != 0
    assert runner.invoke(app, ["consume-feedbacks", "--help"]).exit_code != 0
    assert runner.invoke(app, ["consume-feedback", "--heartbeat", "x", "--help"]).exit_code != 0


def test_the_musicrec_entry_point_is_installed() -> None:
    done = subprocess.run(
        [str(BIN / "musicrec"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "serve-ml" in done.stdout and "consume-feedback" in done.stdout


@pytest.mark.parametrize("program", ["mlflow", "tensorboard"])
def test_other_programs_know_their_options(program: str) -> None:
    [argv] = [argv for argv in deployed_commands() if argv[0] == program]
    subcommand = [a for a in argv[1:2] if not a.startswith("-")]
    done = subprocess.run(
        [str(BIN / program), *subcommand, "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    known = set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))
    given = {a for a in argv if a.startswith("--")}
    assert given <= known, given - known


def test_every_setting_is_in_the_readme_table() -> None:
    """The table the deployment files are checked against is complete: no setting is secret."""
    from musicrec.config import Settings

    assert {name.upper() for name in Settings.model_fields} <= documented_settings()
