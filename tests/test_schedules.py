"""The crontab and the Kubernetes CronJobs run the same commands on the same schedules, and each
command is one the CLI has (with options it accepts)."""

from __future__ import annotations

import shlex

import yaml
from typer.main import get_command
from typer.testing import CliRunner

from musicrec.cli import app
from musicrec.config import REPO_ROOT


def crontab() -> dict[str, list[str]]:
    jobs = {}
    for line in (REPO_ROOT / "infra" / "cron" / "crontab").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(None, 5)
            jobs[" ".join(fields[:5])] = shlex.split(fields[5])
    return jobs


def cronjobs() -> dict[str, list[str]]:
    documents = yaml.safe_load_all((REPO_ROOT / "infra" / "k8s" / "cronjobs.yaml").read_text())
    jobs = {}
    for doc in documents:
        if doc and doc["kind"] == "CronJob":
            assert doc["spec"]["concurrencyPolicy"] == "Forbid"
            (container,) = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            jobs[doc["spec"]["schedule"]] = container["command"]
    return jobs


def test_crontab_and_cronjobs_agree() -> None:
    assert crontab() == cronjobs()
    assert len(crontab()) == 4


def test_every_scheduled_command_exists() -> None:
    get_command(app)  # the CLI builds
    runner = CliRunner()
    for command in crontab().values():
        assert command[0] == "musicrec"
        reply = runner.invoke(app, [*command[1:], "--help"])
        assert reply.exit_code == 0, (command, reply.output)
