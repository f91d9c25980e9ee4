"""Fixtures of the reliability suite (issue 5)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .term import SMA_LOG, TMUX

# The suite attacks the installed command in a real terminal: without them it must
# fail loudly, never skip (.ci/run installs tmux and the package).
if TMUX is None or not SMA_LOG:  # pragma: no cover
    raise RuntimeError("the reliability suite needs tmux and the installed sma-log command")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path under /tmp (tmux sockets must be under ~100 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="sma-rel-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
