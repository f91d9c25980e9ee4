"""Writing a demo database: beside the target, in one unsynced transaction, then moved in.

Rows are written with ``executemany`` in one ``BEGIN IMMEDIATE`` transaction (in
chunks), not through the per-action Store methods (each of which is its own fsync'd
transaction): 100k procedures take seconds. The file is private to this process until
it is moved into place, so the bulk load runs without a journal; WAL and
``synchronous=FULL`` are restored after.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..storage import reportcache
from ..storage.errors import DatabaseRefused, StorageError
from ..storage.store import Store
from .auditrows import AuditRows
from .columns import DEMO_USER, insert_sql
from .generator import Generator
from .units import text, to_us

DEMO_FILE_NAME = "sma-log-demo.db"
DEMO_META_KEY = "demo"
GENERATOR_VERSION = 2  # 2: follow-ups and contact attempts

BULK_PRAGMAS = (
    "PRAGMA journal_mode = DELETE",
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "PRAGMA cache_size = -65536",
)
DURABLE_PRAGMAS = (
    "PRAGMA journal_mode = DELETE",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA wal_checkpoint(TRUNCATE)",
)


class DemoRefused(StorageError):
    """The demo file cannot be written where asked (exists, or is not a demo database)."""


def is_demo_database(path: Path) -> bool:
    """True if ``path`` is an sma-log database written by :func:`write_demo`.

    Reads the header first (never opens a foreign file through SQLite), then the
    ``meta`` table read-only and ``immutable`` (so SQLite creates no -wal/-shm files
    beside someone's database). The ``demo`` row is written before the file is moved
    into place and fully checkpointed, so the main file alone answers.
    """
    from urllib.parse import quote

    from ..storage.db import inspect_header

    try:
        inspect_header(path)
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True)
    except (DatabaseRefused, sqlite3.Error):
        return False
    try:
        found = conn.execute("SELECT 1 FROM meta WHERE key = ?", (DEMO_META_KEY,)).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return found is not None


def write_demo(
    path: str | os.PathLike[str],
    procedures: int = 60,
    seed: int = 1,
    now: datetime | None = None,
    *,
    force: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Write a new demo database at ``path``; return what it holds (counts, seconds).

    An existing ``path`` is refused (:class:`DemoRefused`, nothing touched) unless
    ``force`` is given *and* it is itself a demo database. The file is built beside
    ``path`` and moved into place only when complete. ``progress(done)`` is called
    with the number of procedures written so far after each batch (of ``procedures``).
    """
    if procedures < 1:
        raise ValueError("procedures must be at least 1 (one of them is the open procedure)")
    began = time.perf_counter()
    path = Path(path).expanduser()
    _refuse_existing(path, force)
    now_us = to_us(now)
    gen = Generator(procedures, seed, now_us)
    meta = {
        "seed": seed,
        "procedures": procedures,
        "now": text(now_us),
        "generator": GENERATOR_VERSION,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.demo-{os.getpid()}.tmp")
    _remove_with_sidecars(tmp)
    try:
        counts = _build(tmp, gen, meta, progress)
        _fsync(tmp)
        _move_into_place(tmp, path, force)
        _fsync(path.parent)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: could not write the demo database ({exc})") from None
    finally:
        _remove_with_sidecars(tmp)
    counts["open"] = 1
    counts["pending_scores"] = gen.pending
    counts["followups"] = gen.followups
    counts["open_followups"] = gen.open_followups
    counts["contact_attempts"] = gen.contact_attempts
    counts["open_procedure_id"] = gen.open_id
    counts["seconds"] = round(time.perf_counter() - began, 3)
    return counts


def _refuse_existing(path: Path, force: bool) -> None:
    """Refuse an existing ``path`` unless ``force`` and it is a demo database."""
    if not (path.exists() or path.is_symlink()):
        return
    if not force:
        raise DemoRefused(f"{path}: already exists; choose another path or use --force")
    if not path.is_file() or not is_demo_database(path):
        raise DemoRefused(
            f"{path}: exists and is not an sma-log demo database; --force only replaces "
            "demo databases (delete it yourself if you mean to)"
        )


def _remove_with_sidecars(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _build(
    tmp: Path, gen: Generator, meta: dict[str, Any], progress: Callable[[int], Any] | None
) -> dict[str, Any]:
    """Write the whole database at ``tmp``; return the Store's counts of it."""
    store = Store.open(tmp, DEMO_USER)
    try:
        conn = store.conn
        for pragma in BULK_PRAGMAS:
            conn.execute(pragma)
        _load(conn, gen, meta, progress)
        counts: dict[str, Any] = store.counts()
        for pragma in DURABLE_PRAGMAS:
            conn.execute(pragma)
    finally:
        store.close()
    return counts


def _load(
    conn: sqlite3.Connection,
    gen: Generator,
    meta: dict[str, Any],
    progress: Callable[[int], Any] | None,
) -> None:
    """Every batch and the ``demo`` meta row, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The report's caches are filled once at the end, not by a trigger per row.
        with reportcache.suspended(conn):
            written = 0
            audit = AuditRows()
            for batch in gen.batches():
                audit.fill(batch)  # the audit rows the app writes on the way to these rows
                for table, rows in batch.items():
                    if rows:
                        rows.sort()  # by id (ULID, so by time): fewer page splits
                        conn.executemany(insert_sql(table), rows)
                written += len(batch["procedures"])
                if progress is not None:
                    progress(written)
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (DEMO_META_KEY, json.dumps(meta, sort_keys=True)),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _move_into_place(tmp: Path, path: Path, force: bool) -> None:
    """``tmp`` becomes ``path``: replacing an earlier demo (``force``) or only a new name."""
    if force:
        for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            with contextlib.suppress(FileNotFoundError):
                side.unlink()
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise DemoRefused(f"{path}: already exists; choose another path") from None


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk; the bulk load ran unsynced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def demo_database(tmpdir: str | os.PathLike[str], procedures: int = 60, seed: int = 1) -> Path:
    """A fresh demo database inside ``tmpdir`` (for ``sma-log --demo``); returns its path."""
    path = Path(tmpdir) / DEMO_FILE_NAME
    write_demo(path, procedures=procedures, seed=seed)
    return path
