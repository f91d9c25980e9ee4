"""Fixtures of the reliability suite (issue 5)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path under /tmp (tmux sockets must be under ~100 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="sma-rel-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
