"""Readers of the deployment files: docker-compose.yml, the rendered Kustomize overlays, the
crontab and the Dockerfile's entrypoint, and the musicrec command lines each of them runs."""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from musicrec.config import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
K8S = REPO_ROOT / "infra" / "k8s"
OVERLAYS = ["staging", "production"]
ARGOCD = REPO_ROOT / "infra" / "argocd"
CRONTAB = REPO_ROOT / "infra" / "cron" / "crontab"


def documented_settings() -> set[str]:
    """The environment variables in the README's configuration table."""
    text = (REPO_ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    }


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def as_list(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (keyword, arguments) per stage; continuation lines joined, comments out."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends in a continuation"
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, f"instruction before FROM: {line}"
        stages[-1].append((keyword.upper(), args.strip()))
    return stages


def image_entrypoint() -> list[str]:
    entrypoints = [args for kw, args in dockerfile_stages()[-1] if kw == "ENTRYPOINT"]
    assert entrypoints, "the final stage has no ENTRYPOINT"
    result = json.loads(entrypoints[-1])  # exec form only: a shell form would hide signals
    assert isinstance(result, list)
    return result


def shell_steps(argv: list[str]) -> list[list[str]]:
    """`sh -c "a && b"` → [a, b]; anything else is one command. Only `&&` may join steps, so
    every step is a plain command line the CLI check can see."""
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    script = " ".join(argv[2:])
    for forbidden in [";", "||", "|", "`", "$("]:
        assert forbidden not in script.replace("&&", ""), script
    return [shlex.split(step) for step in script.split("&&")]


def compose_commands(service: dict[str, Any]) -> list[list[str]]:
    """The command lines a compose service runs: its entrypoint (or the image's) + command."""
    entrypoint = as_list(service.get("entrypoint")) or image_entrypoint()
    return shell_steps(entrypoint + as_list(service.get("command")))


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl is required to render the Kustomize overlays (it is on this kind of machine;"
            " elsewhere install it from the Kubernetes release packages)",
            pytrace=False,
        )
    return path


@functools.cache
def render(folder: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize folder`: the objects an overlay deploys (no cluster involved)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield spec["template"]["spec"]
    elif obj["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for pod in pod_specs(obj):
        yield from pod.get("initContainers", [])
        yield from pod["containers"]


def container_commands(container: dict[str, Any]) -> list[list[str]]:
    argv = as_list(container.get("command")) or image_entrypoint()
    return shell_steps(argv + as_list(container.get("args")))


def crontab_jobs() -> dict[str, list[str]]:
    """Schedule → command line of each crontab entry."""
    jobs = {}
    for line in CRONTAB.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(None, 5)
            jobs[" ".join(fields[:5])] = shlex.split(fields[5])
    return jobs
