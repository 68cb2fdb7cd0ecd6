"""The house style is checked like behaviour: ruff's formatter and linter, and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = [
    "gateway",
    "drivers",
    "vision",
    "anomaly",
    "edge_config",
    "edge_core",
    "simulators",
    "bench",
    "examples",
    "tests",
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False, timeout=600)


def test_ruff_format_and_lint_are_clean() -> None:
    fmt = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = _run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_mypy_strict_is_clean() -> None:
    out = _run(str(BIN / "mypy"), *PACKAGES)
    assert out.returncode == 0, out.stdout + out.stderr
