"""ruff's lint rules and formatting hold for the whole tree (configured in pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("sma_log", "tests", "benchmarks")


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *TREES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_check() -> None:
    run = _ruff("check", "--no-cache")
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format() -> None:
    run = _ruff("format", "--check", "--no-cache")
    assert run.returncode == 0, run.stdout + run.stderr
