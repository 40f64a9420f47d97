"""Feast feature repository: definitions, the batch job, materialization and online reads.

Importing Feast sets PROMETHEUS_MULTIPROC_DIR (for Feast's own feature server, which this
project does not run). That would switch every prometheus_client metric of the process — and of
child processes such as uvicorn workers — to files in a temporary folder. The value class is
fixed first and the variables Feast set are removed again."""

import os

import prometheus_client.values  # noqa: F401  (decides the value class while the env is clean)

_PROMETHEUS_ENV = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
_before = {name: os.environ.get(name) for name in _PROMETHEUS_ENV}
import feast  # noqa: E402, F401

for _name, _value in _before.items():
    if _value is None:
        os.environ.pop(_name, None)
