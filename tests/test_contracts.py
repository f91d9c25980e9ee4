"""The rules CI enforces on the code itself: layer contracts and types.

Both tools run as the interpreter running the tests (``sys.executable``), with the
configuration in pyproject.toml, from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# import-linter 2.17 has no ``python -m`` entry point; this is its ``lint-imports`` script.
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_layer_contracts_kept() -> None:
    run = _run("-c", LINT_IMPORTS, "--no-cache")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("package", ["sma_log/domain", "sma_log/storage"])
def test_core_types_strict(tmp_path: Path, package: str) -> None:
    """The domain and the storage pass mypy with pyproject's per-module strict flags,
    and with ``--strict`` itself, so the flags spelled out in pyproject cannot fall
    behind."""
    for extra in ((), ("--strict",)):
        run = _run("-m", "mypy", "--cache-dir", str(tmp_path / "mypy"), *extra, package)
        assert run.returncode == 0, run.stdout + run.stderr


def test_package_types(tmp_path: Path) -> None:
    """The whole package passes mypy with pyproject's configuration."""
    run = _run("-m", "mypy", "--cache-dir", str(tmp_path / "mypy"), "sma_log")
    assert run.returncode == 0, run.stdout + run.stderr
