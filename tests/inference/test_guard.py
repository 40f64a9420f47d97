"""The serving guard: torch and transformers cannot be imported once it is installed, and only
a server process installs it."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_installed_guard_blocks_torch_and_transformers() -> None:
    result = _run(
        "from inference import guard\n"
        "assert guard.install() == []\n"
        "for name in ('torch', 'transformers.models', 'torch.nn'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError as exc:\n"
        "        assert 'not available in a serving process' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit(name + ' was imported')\n"
        "import numpy, onnxruntime\n"  # serving's own stack still imports
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_the_apps_installs_no_guard() -> None:
    result = _run(
        "import sys, apps.api.main, apps.ml.main, apps.serving\n"
        "from inference.guard import TrainingStackBlocked\n"
        "assert not any(isinstance(f, TrainingStackBlocked) for f in sys.meta_path)\n"
        "import torch\n"
    )
    assert result.returncode == 0, result.stderr
