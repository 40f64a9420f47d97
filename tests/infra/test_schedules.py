"""The crontab and the Kubernetes CronJobs run the same commands on the same schedules (that each
command is one the CLI has is checked with every other command in tests/infra/test_commands.py)."""

from __future__ import annotations

import yaml

from tests.infra.manifests import K8S, crontab_jobs


def cronjobs() -> dict[str, list[str]]:
    jobs = {}
    for doc in yaml.safe_load_all((K8S / "base" / "cronjobs.yaml").read_text()):
        if doc and doc["kind"] == "CronJob":
            assert doc["spec"]["concurrencyPolicy"] == "Forbid"
            (container,) = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            jobs[doc["spec"]["schedule"]] = container["command"]
    return jobs


def test_crontab_and_cronjobs_agree() -> None:
    assert crontab_jobs() == cronjobs()
    assert len(crontab_jobs()) == 4
