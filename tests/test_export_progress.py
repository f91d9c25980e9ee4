"""Every export format reports its progress: counts that grow to their total.

The command shows them as a bar on a terminal (``sma_log.commands.progress``) and
nothing in a pipe (tests/test_progress.py); here the writers' side, for each format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sma_log.demo import write_demo
from sma_log.export.common import ExportOptions
from sma_log.storage.store import Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "demo.db"
    write_demo(path, procedures=400, seed=3)
    return path


def _write(fmt: str, store: Store, out: Path, opts: ExportOptions) -> None:
    if fmt == "sqlite":
        from sma_log.export.sqlitecopy import write_sqlite

        write_sqlite(store, out, opts, False)
    elif fmt == "csv":
        from sma_log.export.csvfiles import write_csv

        write_csv(store, out, opts, False)
    else:
        from sma_log.export.redcap import write_redcap

        write_redcap(store, out, opts, False)


@pytest.mark.parametrize("identifiers", [False, True])
@pytest.mark.parametrize("fmt", ["sqlite", "csv", "redcap"])
def test_progress_counts_up_to_the_total(
    demo: Path, tmp_path: Path, fmt: str, identifiers: bool
) -> None:
    seen: list[tuple[int, int]] = []
    opts = ExportOptions(
        identifiers=identifiers, tz="Europe/Rome", progress=lambda d, t: seen.append((d, t))
    )
    with Store.open(demo, "tester", create=False, readonly=True) as store:
        _write(fmt, store, tmp_path / "out", opts)
    assert seen, "no progress reported"
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and seen[-1][0] == seen[-1][1] > 0, seen[-3:]


def test_no_callback_no_cost(demo: Path, tmp_path: Path) -> None:
    opts: Any = ExportOptions(identifiers=False, tz="UTC")
    with Store.open(demo, "tester", create=False, readonly=True) as store:
        _write("sqlite", store, tmp_path / "copy.db", opts)
    assert (tmp_path / "copy.db").stat().st_size > 0
