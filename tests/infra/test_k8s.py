"""The Kubernetes manifests, checked offline: each overlay renders with `kubectl kustomize`, every
rendered object passes the Kubernetes 1.33 OpenAPI schema (kubernetes-validate, strict: unknown
fields are errors), and what a schema cannot see: probes on routes the apps really serve, ports
that match the commands, resources, autoscaling, configuration that is real settings, schedules,
and the ArgoCD Applications."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apps.api.main import create_app as create_api
from apps.ml.main import create_app as create_ml
from musicrec.config import Settings
from tests.infra.manifests import (
    ARGOCD,
    K8S,
    OVERLAYS,
    container_commands,
    containers,
    documented_settings,
    pod_specs,
    render,
)

KUBERNETES_VERSION = "1.33.0"
SERVED = ["musicrec-api", "musicrec-ml"]  # HTTP services, autoscaled
WORKERS = ["musicrec-consumer", "musicrec-relay"]  # no port: heartbeat-file liveness
SECRET_KEYS = {
    "DATABASE_URL",
    "ADMIN_TOKEN",
    "METRICS_TOKEN",
    "FEAST_REDIS_PASSWORD",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
}


def objects(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(K8S / "overlays" / overlay)


def by_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects(overlay) if o["kind"] == kind}


def only_container(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = containers(obj)
    return container


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_passes_the_kubernetes_schema(overlay: str) -> None:
    rendered = objects(overlay)
    kinds = Counter(o["kind"] for o in rendered)
    assert kinds["Deployment"] == 4 and kinds["CronJob"] == 4 and kinds["Job"] == 1
    assert kinds["HorizontalPodAutoscaler"] == 2 and kinds["Namespace"] == 1
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_mistakes() -> None:
    deployment = copy.deepcopy(by_kind("staging", "Deployment")["musicrec-api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProb"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(by_kind("staging", "Deployment")["musicrec-api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_keep_to_their_namespace(overlay: str) -> None:
    (namespace,) = by_kind(overlay, "Namespace")
    for obj in objects(overlay):
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]
    images = {c["image"] for o in objects(overlay) for c in containers(o)}
    assert len(images) == 1 and ":" in next(iter(images)), images  # one pinned image


def test_the_environments_differ_only_where_meant() -> None:
    staging, production = (by_kind(o, "HorizontalPodAutoscaler") for o in OVERLAYS)
    for name in staging:
        assert staging[name]["spec"]["minReplicas"] < production[name]["spec"]["minReplicas"]
    assert set(by_kind("staging", "Deployment")) == set(by_kind("production", "Deployment"))
    namespaces = {name for overlay in OVERLAYS for name in by_kind(overlay, "Namespace")}
    assert len(namespaces) == len(OVERLAYS)


def routes(name: str) -> set[str]:
    app = create_api(Settings(_env_file=None)) if name == "musicrec-api" else create_ml()  # type: ignore[call-arg]
    return set(app.openapi()["paths"])


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVED)
def test_served_deployments_probe_real_routes_on_their_port(overlay: str, name: str) -> None:
    deployment = by_kind(overlay, "Deployment")[name]
    container = only_container(deployment)
    [argv] = container_commands(container)
    port = int(option(argv, "--port"))
    assert option(argv, "--host") == "0.0.0.0"
    (declared,) = container["ports"]
    assert declared["containerPort"] == port
    served = routes(name)
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
        check = container[probe]["httpGet"]
        assert check["port"] in {port, declared["name"]}, probe
        assert check["path"] in served, (probe, check["path"])
    assert container["readinessProbe"]["httpGet"]["path"] != "/healthz", "readiness checks deps"
    service = by_kind(overlay, "Service")[name]
    assert service["spec"]["ports"][0]["targetPort"] in {port, declared["name"]}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_reaches_the_ml_service_where_it_listens(overlay: str) -> None:
    config = next(iter(by_kind(overlay, "ConfigMap").values()))["data"]
    service = by_kind(overlay, "Service")["musicrec-ml"]
    assert config["ML_SERVICE_URL"] == (
        f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", WORKERS)
def test_workers_prove_liveness_through_the_heartbeat_they_write(overlay: str, name: str) -> None:
    container = only_container(by_kind(overlay, "Deployment")[name])
    [argv] = container_commands(container)
    heartbeat = option(argv, "--heartbeat-file")
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert f"'{heartbeat}'" in probe
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert any(heartbeat.startswith(m + "/") for m in mounts), "the heartbeat is writable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_sized_and_unprivileged(overlay: str) -> None:
    for obj in objects(overlay):
        for pod in pod_specs(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        for container in containers(obj):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), obj["metadata"]["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), obj["metadata"]["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_own_the_served_replica_counts(overlay: str) -> None:
    deployments = by_kind(overlay, "Deployment")
    autoscalers = by_kind(overlay, "HorizontalPodAutoscaler")
    assert set(autoscalers) == set(SERVED)
    for name, hpa in autoscalers.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA sets replicas"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        requests = only_container(deployments[name])["resources"]["requests"]
        assert "cpu" in requests, "CPU utilization is measured against the request"
    budgets = by_kind(overlay, "PodDisruptionBudget")
    assert set(budgets) == set(SERVED)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_is_settings_and_comes_from_the_rendered_objects(overlay: str) -> None:
    (config,) = by_kind(overlay, "ConfigMap").values()
    fields = {name.upper() for name in Settings.model_fields}
    assert set(config["data"]) <= fields, set(config["data"]) - fields
    assert set(config["data"]) <= documented_settings(), set(config["data"]) - documented_settings()
    assert not set(config["data"]) & SECRET_KEYS, "secrets belong in the Secret"
    Settings(_env_file=None, **{k.lower(): v for k, v in config["data"].items()})  # type: ignore[call-arg]
    for obj in objects(overlay):
        for container in containers(obj):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
            assert {"secretRef": {"name": "musicrec-secrets"}} in sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scheduled_jobs_never_overlap(overlay: str) -> None:
    cronjobs = by_kind(overlay, "CronJob")
    commands = {tuple(container_commands(only_container(c))[0][1:2]) for c in cronjobs.values()}
    assert {("features",), ("retrain",), ("interest-graph",), ("promote",)} == commands
    for cronjob in cronjobs.values():
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    init = by_kind(overlay, "Job")["musicrec-init"]
    assert [argv[1:] for argv in container_commands(only_container(init))] == [
        ["db", "upgrade"],
        ["features", "apply"],
    ]
    assert init["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_argocd_application_points_at_its_overlay(overlay: str) -> None:
    application = yaml.safe_load((ARGOCD / f"{overlay}.yaml").read_text())
    assert (application["apiVersion"], application["kind"]) == (
        "argoproj.io/v1alpha1",
        "Application",
    )
    assert application["metadata"]["namespace"] == "argocd"
    spec = application["spec"]
    assert set(spec) >= {"project", "source", "destination", "syncPolicy"}
    assert spec["source"]["path"] == f"infra/k8s/overlays/{overlay}"
    assert (K8S / "overlays" / overlay / "kustomization.yaml").is_file()
    (namespace,) = by_kind(overlay, "Namespace")
    assert spec["destination"]["namespace"] == namespace
    assert spec["source"]["repoURL"] and spec["source"]["targetRevision"]
