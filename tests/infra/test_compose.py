"""The container image and the compose stack, checked offline (no Docker engine needed).

docker-compose.yml is checked by docker-compose's own `config` (the Python docker-compose 1.29)
and against the current Compose Specification's JSON schema, vendored as compose-spec.json from
github.com/compose-spec/compose-spec, schema/compose-spec.json at commit
170098ba07d9f53c383a41bfd4c5166b0a4529a6; then what neither can see: dependencies, health checks,
volumes, and that app services are configured only by real settings. tests/infra/test_commands.py
checks every command against the musicrec CLI.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from musicrec.config import REPO_ROOT, Settings
from tests.infra.manifests import (
    COMPOSE,
    DOCKERFILE,
    as_list,
    compose,
    compose_commands,
    dockerfile_stages,
    documented_settings,
    image_entrypoint,
    services,
)

HERE = Path(__file__).resolve().parent
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
APP_IMAGE = "musicrec:local"
# Environment variables of app-image services that are not Settings fields: the vendors' own,
# read by the MLflow server's S3 client (boto3) for the MinIO artifact bucket.
VENDOR_ENV = {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
RESTARTING = {"always", "unless-stopped"}
# Variables compose itself reads (${...} in docker-compose.yml) that are not settings: the data
# folder mounted at /data, the host address ports are published on, and the redis container's
# password (the app services get it as FEAST_REDIS_PASSWORD, a setting).
COMPOSE_VARIABLES = {"MUSICREC_DATA", "MUSICREC_BIND_ADDRESS", "REDIS_PASSWORD"}
# The Python docker-compose (1.29, which pins PyYAML<6) lives in a venv of its own: make test
# builds it (Makefile: compose-tool).
DOCKER_COMPOSE = Path(
    os.environ.get("DOCKER_COMPOSE", REPO_ROOT / ".venv-compose/bin/docker-compose")
)


def app_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("image") == APP_IMAGE}


def validator() -> Any:
    return jsonschema_rs.validator_for(json.loads((HERE / "compose-spec.json").read_text()))


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short form: started, no condition
        return {name: {"condition": "service_started"} for name in deps}
    assert isinstance(deps, dict)
    return deps


# ---- the Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_cpu_torch() -> None:
    stages = dockerfile_stages()
    assert len(stages) == 2, "a build stage and a final stage"
    assert all(stage[0][1].split()[0] == "python:3.11-slim" for stage in stages)
    build, final = stages
    build_name = build[0][1].split()[-1]
    assert build[0][1].split()[-2].upper() == "AS"

    runs = [args for kw, args in build if kw == "RUN"]
    torch = [i for i, run in enumerate(runs) if "torch" in run]
    project = [i for i, run in enumerate(runs) if "pip install -e ." in run]
    assert torch and project, runs
    torch_run = runs[torch[0]]
    assert "torch==2.13.0" in torch_run.split()
    assert "--index-url https://download.pytorch.org/whl/cpu" in " ".join(torch_run.split())
    assert torch[0] < project[0], "torch from the CPU index must come before the project"
    assert any("build-essential" in run for run in runs)

    final_text = " ".join(f"{kw} {args}" for kw, args in final)
    assert "build-essential" not in final_text and "gcc" not in final_text
    assert "apt-get install" not in final_text
    copies = [args for kw, args in final if kw == "COPY"]
    assert f"--from={build_name} /opt/venv /opt/venv" in copies
    assert f"--from={build_name} /app /app" in copies, "the editable install points at /app"
    users = [args for kw, args in final if kw == "USER"]
    assert users and users[-1] not in {"root", "0"} and not users[-1].startswith("0:")
    env = " ".join(args for kw, args in final if kw == "ENV")
    assert "VAR_DIR=/var/lib/musicrec" in env and "HF_HUB_OFFLINE=1" in env
    assert "/opt/venv/bin" in env
    assert image_entrypoint() == ["musicrec"]


def test_hadolint_accepts_the_dockerfile(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    config = ["--config", str(REPO_ROOT / ".hadolint.yaml")]
    done = subprocess.run([str(hadolint), *config, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # Not vacuous: a shell-form entrypoint (SIGTERM would not reach musicrec) is refused.
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILE.read_text().replace('ENTRYPOINT ["musicrec"]', "ENTRYPOINT musicrec")
    )
    done = subprocess.run([str(hadolint), *config, str(broken)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3025" in done.stdout, done.stdout


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {
        part.rstrip("/")
        for kw, args in dockerfile_stages()[0]
        if kw == "COPY" and "--from" not in args
        for part in args.split()[:-1]
    }
    for pattern in includes:
        assert pattern.rstrip("*") in copied, pattern
    # alembic.ini finds its migrations next to itself; pip needs the readme pyproject names.
    assert {"pyproject.toml", "README.md", "alembic.ini", "db"} <= copied


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins)."""
    ignored = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        basename_rule = "/" not in pattern and pattern.startswith("*.")
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or (
            basename_rule and fnmatch.fnmatchcase(parts[-1], pattern)
        ):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv-recbole/lib/x.py",
        "var/musicrec.db",
        "runs/sasrec-1/events.out",
        "mlruns/0/meta.yaml",
        "results/sasrec_Video.json",
        "data/mpd.slice.0-999.json",
        "musicrec.db",
        ".git/HEAD",
        "tests/test_cli.py",
        "musicrec/__pycache__/cli.cpython-311.pyc",
        "model.pt",
        "model.onnx",
    ],
)
def test_dockerignore_keeps_state_and_data_out(path: str) -> None:
    assert dockerignored(path), path


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "alembic.ini",
        "musicrec/config.py",
        "db/migrations/env.py",
        "feature_store/definitions.py",
        "apps/api/main.py",
    ],
)
def test_dockerignore_keeps_the_source(path: str) -> None:
    assert (REPO_ROOT / path).exists(), path
    assert not dockerignored(path), path


# ---- docker-compose.yml -----------------------------------------------------------------------


def docker_compose_config(path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """docker-compose's own `config`: its schema, interpolation and cross-reference checks,
    with the compose-level `variables` given (the others unset: their defaults)."""
    if not DOCKER_COMPOSE.exists():
        pytest.fail(
            f"docker-compose is required at {DOCKER_COMPOSE} (`make compose-tool` builds it)",
            pytrace=False,
        )
    return subprocess.run(
        [str(DOCKER_COMPOSE), "--project-directory", str(path.parent), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES},
            "MUSICREC_DATA": "/tmp",
            **variables,
        },
    )


def test_docker_compose_config_accepts_the_stack() -> None:
    done = docker_compose_config(COMPOSE)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == set(services())
    assert resolved["services"]["api"]["environment"]["DATABASE_URL"].startswith("postgresql://")


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ({"depends_on": {"ml": {"condition": "service_ready"}}}, "depends_on"),
        ({"depends_on": {"nosuchservice": {"condition": "service_started"}}}, "nosuchservice"),
        ({"helthcheck": {}}, "helthcheck"),
    ],
)
def test_docker_compose_config_rejects_mistakes(
    tmp_path: Path, mistake: dict[str, Any], message: str
) -> None:
    """The check is docker-compose's own: a broken copy of the file fails it."""
    broken = copy.deepcopy(compose())
    broken["services"]["api"].update(mistake)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    done = docker_compose_config(path)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_compose_matches_the_compose_specification() -> None:
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator().iter_errors(compose())]
    assert errors == []


def test_the_schema_catches_mistakes() -> None:
    """The vendored schema is the real one: it rejects what Compose rejects."""
    broken = copy.deepcopy(compose())
    broken["services"]["api"]["depends_on"] = {"ml": {"condition": "service_ready"}}
    broken["services"]["api"]["helthcheck"] = {}
    errors = list(validator().iter_errors(broken))
    assert {tuple(e.instance_path) for e in errors} >= {
        ("services", "api", "depends_on"),
        ("services", "api"),
    }


def test_the_stack_has_every_part() -> None:
    expected = {"postgres", "redis", "kafka", "kafka-init", "minio", "minio-init", "mlflow"}
    expected |= {"tensorboard", "init", "api", "ml", "consumer", "relay"}
    assert expected <= set(services())
    for name in ["api", "ml", "consumer", "relay", "init", "mlflow", "tensorboard"]:
        service = services()[name]
        assert service.get("image") == APP_IMAGE and service.get("build") == ".", name


def test_dependencies_exist_and_their_conditions_can_be_met() -> None:
    all_services = services()
    for name, service in all_services.items():
        for target, spec in depends_on(service).items():
            assert target in all_services, f"{name} depends on unknown {target}"
            condition = spec.get("condition", "service_started")
            dependency = all_services[target]
            if condition == "service_healthy":
                check = dependency.get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {target} to be healthy, which has no health check"
                )
            elif condition == "service_completed_successfully":
                assert dependency.get("restart", "no") not in RESTARTING, (
                    f"{target} is a one-shot job {name} waits for, but it restarts"
                )
            # A profile-gated dependency would not start with a plain `docker compose up`.
            if not service.get("profiles"):
                assert not dependency.get("profiles"), f"{name} needs {target} of a profile"


def test_app_services_start_after_init_and_the_topic() -> None:
    for name in ["api", "ml", "consumer", "relay"]:
        deps = depends_on(services()[name])
        assert deps["init"]["condition"] == "service_completed_successfully", name
    for name in ["api", "consumer", "relay"]:
        deps = depends_on(services()[name])
        assert deps["kafka-init"]["condition"] == "service_completed_successfully", name
    assert depends_on(services()["api"])["ml"]["condition"] == "service_healthy"


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type", "volume") == "volume" and volume.get("source"):
                names.append(volume["source"])
            continue
        source = volume.split(":")[0]
        if ":" in volume and not source.startswith((".", "/", "~", "$")):
            names.append(source)
    return names


def test_every_named_volume_is_declared() -> None:
    declared = set(compose().get("volumes") or {})
    used = {v for service in services().values() for v in named_volumes(service)}
    assert used, "the stack keeps its state in named volumes"
    assert used <= declared, used - declared


def test_app_services_are_configured_only_by_settings() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name, service in app_services().items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        unknown = set(environment) - fields - VENDOR_ENV
        assert not unknown, f"{name}: not settings: {sorted(unknown)}"
        undocumented = set(environment) - documented_settings() - VENDOR_ENV
        assert not undocumented, f"{name}: not in README's table: {sorted(undocumented)}"
        # The values are valid settings too (types, bounds), apart from the host pass-throughs.
        values = {k.lower(): v for k, v in environment.items() if k in fields and v is not None}
        Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_services_reach_each_other_where_they_listen() -> None:
    env = services()["api"]["environment"]
    ml_command = services()["ml"]["command"]
    ml_port = ml_command[ml_command.index("--port") + 1]
    assert env["ML_SERVICE_URL"] == f"http://ml:{ml_port}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (
        "PLAINTEXT://kafka:9092" in services()["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    mlflow = services()["mlflow"]["command"]
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{mlflow[mlflow.index('--port') + 1]}"
    assert env["MLFLOW_ARTIFACT_ROOT"].startswith("mlflow-artifacts://mlflow:")
    assert "--serve-artifacts" in mlflow
    # Artifacts land in the MinIO bucket that minio-init creates, before MLflow starts.
    bucket = mlflow[mlflow.index("--artifacts-destination") + 1]
    assert bucket.startswith("s3://") and bucket.rstrip("/").endswith("/mlflow")
    assert "local/mlflow" in " ".join(as_list(services()["minio-init"]["command"]))
    assert services()["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert depends_on(services()["mlflow"])["minio-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert (
        env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    )
    assert env["FEAST_REDIS_HOST"] == "redis"
    for name, port in [("api", "8000"), ("ml", ml_port)]:
        service = services()[name]
        assert service["command"][service["command"].index("--port") + 1] == port
        assert any(str(p).endswith(f":{port}:{port}") for p in service["ports"])
        assert f"localhost:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    tensorboard = services()["tensorboard"]["command"]
    assert tensorboard[tensorboard.index("--logdir") + 1] == env["TENSORBOARD_DIR"]


def test_kafka_init_creates_the_feedback_topic() -> None:
    topic = Settings.model_fields["kafka_feedback_topic"].default
    argv = as_list(services()["kafka-init"]["command"])
    assert argv[argv.index("--topic") + 1] == topic
    assert services()["api"]["environment"].get("KAFKA_FEEDBACK_TOPIC", topic) == topic
    assert "--if-not-exists" in argv and "--create" in argv
    assert int(argv[argv.index("--partitions") + 1]) >= 2, "consumers share the partitions"


def test_init_migrates_then_applies_features() -> None:
    assert [argv[1:] for argv in compose_commands(services()["init"])] == [
        ["db", "upgrade"],
        ["features", "apply"],
    ]


def test_compose_variables_are_settings_or_known() -> None:
    """Every ${VARIABLE} compose interpolates is a documented setting or one of the few
    compose-level ones (`$$` is the container shell's, not compose's)."""
    text = COMPOSE.read_text().replace("$$", "")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used, "the file interpolates variables"
    assert used - COMPOSE_VARIABLES <= documented_settings(), used - COMPOSE_VARIABLES


def published_ports(resolved: dict[str, Any]) -> dict[str, list[str]]:
    return {
        name: [str(p) for p in service.get("ports", [])]
        for name, service in resolved["services"].items()
        if service.get("ports")
    }


def test_published_ports_bind_to_loopback_unless_told_otherwise() -> None:
    done = docker_compose_config(COMPOSE)
    assert done.returncode == 0, done.stderr
    ports = published_ports(yaml.safe_load(done.stdout))
    assert {"api", "ml", "postgres", "redis", "kafka", "mlflow"} <= set(ports)
    for name, mappings in ports.items():
        for mapping in mappings:
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} to the network"

    done = docker_compose_config(COMPOSE, MUSICREC_BIND_ADDRESS="0.0.0.0")
    assert done.returncode == 0, done.stderr
    everywhere = published_ports(yaml.safe_load(done.stdout))
    assert everywhere.keys() == ports.keys()
    assert all(m.startswith("0.0.0.0:") for mappings in everywhere.values() for m in mappings)


def test_redis_requires_the_password_the_apps_are_given() -> None:
    for variables in ({}, {"REDIS_PASSWORD": "another-one"}):
        done = docker_compose_config(COMPOSE, **variables)
        assert done.returncode == 0, done.stderr
        resolved = yaml.safe_load(done.stdout)["services"]
        redis = resolved["redis"]
        command = as_list(redis["command"])
        password = command[command.index("--requirepass") + 1]
        assert password and password == variables.get("REDIS_PASSWORD", password)
        users = [n for n, s in resolved.items() if "FEAST_REDIS_HOST" in s.get("environment", {})]
        assert {"api", "ml", "consumer", "init"} <= set(users)
        for name in users:
            assert resolved[name]["environment"]["FEAST_REDIS_PASSWORD"] == password, name
        # The health check authenticates (a bare `redis-cli ping` gets NOAUTH, never PONG).
        check = " ".join(as_list(redis["healthcheck"]["test"]))
        assert "-a" in check.split() and "$REDIS_PASSWORD" in check and "PONG" in check
        assert redis["environment"]["REDIS_PASSWORD"] == password
