"""Keeps the training stack out of a serving process: once installed, `import torch` (or
transformers) raises ImportError instead of loading hundreds of MB. Libraries that import torch
only if it is there (Feast's torch_wrapper) carry on without it; code that needs it fails at once
with a message naming the cause, instead of a worker that starts slowly and big.

Installed by the server entry point (apps.serving) only: a process that trains models (the test
suite, the jobs) imports the same app modules and must keep torch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

BLOCKED = ("torch", "transformers")


class TrainingStackBlocked(MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(
                f"{fullname} is not available in a serving process: serving runs on numpy and "
                "onnxruntime (inference/); training code belongs to ml_pipeline and the jobs",
                name=fullname,
            )
        return None  # any other module: the next finder's


def install() -> list[str]:
    """Block the training stack in this process from now on (idempotent). Returns the blocked
    modules that were already loaded (an import before the guard; they stay loaded)."""
    if not any(isinstance(finder, TrainingStackBlocked) for finder in sys.meta_path):
        sys.meta_path.insert(0, TrainingStackBlocked())
    return sorted(name for name in BLOCKED if name in sys.modules)
