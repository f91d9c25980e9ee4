"""Opening files: what is not ours is refused untouched; migrations back up and are atomic."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sma_log.domain.clock import Clock
from sma_log.storage import db as dbmod
from sma_log.storage import schema
from sma_log.storage.errors import DatabaseRefused, StorageError
from sma_log.storage.store import Store

ROOT = Path(__file__).resolve().parents[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def make_db(path: Path, patients: int = 50) -> Path:
    """A real sma-log database, closed (WAL checkpointed into the main file)."""
    with Store.open(path, "maker", clock=Clock(monotonic=False)) as s:
        for i in range(patients):
            s.create_patient({"study_code": f"P{i:04d}", "sma_type": "2"})
    assert listing(path.parent).count(path.name + "-wal") == 0
    return path


@pytest.fixture
def good_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "src" / "good.db")


def assert_refused_untouched(path: Path, match: str) -> None:
    folder = path.parent
    before_list = listing(folder)
    before = digest(path) if path.is_file() else None
    mode = path.stat().st_mode
    with pytest.raises(DatabaseRefused, match=match) as info:
        Store.open(path, "tester", clock=Clock(monotonic=False))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert listing(folder) == before_list  # no -wal, -shm, backup or temp file
    if before is not None:
        assert digest(path) == before
    assert path.stat().st_mode == mode


# ---------------------------------------------------------------- refusals
def test_zero_byte_file_refused(tmp_path: Path) -> None:
    p = tmp_path / "empty.db"
    p.touch()
    assert_refused_untouched(p, "empty")


def test_text_file_refused(tmp_path: Path) -> None:
    p = tmp_path / "notes.db"
    p.write_text("study code,attempts\nSMA-001,3\n" * 20)
    assert_refused_untouched(p, "not an SQLite database")


def test_short_file_with_sqlite_magic_refused(tmp_path: Path) -> None:
    p = tmp_path / "short.db"
    p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20)
    assert_refused_untouched(p, "not an SQLite database")


def test_other_apps_sqlite_db_refused(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE contacts(name TEXT, phone TEXT)")
    c.execute("INSERT INTO contacts VALUES ('a', '1')")
    c.commit()
    c.close()
    assert_refused_untouched(p, "another application")


def test_other_apps_wal_db_refused(tmp_path: Path) -> None:
    p = tmp_path / "other-wal.db"
    c = sqlite3.connect(p)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("CREATE TABLE t(x)")
    c.commit()
    c.close()
    assert_refused_untouched(p, "another application")


def _set_user_version(path: Path, version: int) -> None:
    c = sqlite3.connect(path)
    c.execute(f"PRAGMA user_version = {version}")
    c.commit()
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def test_newer_sma_log_file_refused(good_db: Path) -> None:
    _set_user_version(good_db, schema.SCHEMA_VERSION + 1)
    assert good_db.read_bytes()[60:64] == (schema.SCHEMA_VERSION + 1).to_bytes(4, "big")
    assert_refused_untouched(good_db, "newer sma-log")


def test_newer_version_only_in_the_wal_refused(good_db: Path) -> None:
    """The header can lag the WAL: the check through SQLite catches it."""
    holder = sqlite3.connect(good_db)
    try:
        holder.execute("PRAGMA wal_autocheckpoint = 0")
        holder.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
        holder.commit()
        assert good_db.read_bytes()[60:64] == schema.SCHEMA_VERSION.to_bytes(4, "big")
        assert_refused_untouched(good_db, "newer sma-log")
    finally:
        holder.close()


@pytest.mark.parametrize("keep", [0.5, 0.1, 4096 * 2])
def test_truncated_file_refused(good_db: Path, keep: float) -> None:
    data = good_db.read_bytes()
    n = int(len(data) * keep) if keep < 1 else int(keep)
    cut = good_db.with_name("cut.db")
    cut.write_bytes(data[:n])
    assert_refused_untouched(cut, "truncated")


def test_corrupt_schema_page_refused(good_db: Path) -> None:
    data = bytearray(good_db.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # the rest of page 1 (sqlite_master)
    bad = good_db.with_name("corrupt.db")
    bad.write_bytes(bytes(data))
    assert_refused_untouched(bad, "damaged or unreadable")


def test_folder_refused(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    (folder / "inside.txt").write_text("x")
    assert_refused_untouched(folder, "is a folder")


def test_missing_file_not_created_when_create_false(tmp_path: Path) -> None:
    with pytest.raises(DatabaseRefused, match="no such database file"):
        Store.open(tmp_path / "nope.db", "t", create=False)
    with pytest.raises(DatabaseRefused, match="no such database file"):
        Store.open(tmp_path / "nope.db", "t", readonly=True)
    assert listing(tmp_path) == []


def test_unreadable_file_refused_as_root_too(good_db: Path) -> None:
    """A 0000 file: a normal user cannot read it; root can, but it has no write bit."""
    os.chmod(good_db, 0)
    try:
        match = "read-only" if os.geteuid() == 0 else "permission denied"
        assert_refused_untouched(good_db, match)
    finally:
        os.chmod(good_db, 0o600)


def test_read_only_file_is_refused_even_for_root(good_db: Path) -> None:
    """chmod 0400. Root passes os.access() whatever the mode, so sma-log reads the write
    bits too: a file its owner made read-only is refused for everyone, untouched."""
    os.chmod(good_db, 0o400)
    try:
        assert_refused_untouched(good_db, "read-only")
    finally:
        os.chmod(good_db, 0o600)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder a normal user can reach (tmp_path's parents are root-only 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="sma-log-test-"))
    os.chmod(folder, 0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


NOBODY_OPEN = """
import os, sys
from sma_log.storage.store import Store  # import first: the interpreter lives under /root
from sma_log.storage.errors import DatabaseRefused
import sqlite_utils, json, struct, getpass
os.setgroups([]); os.setgid(65534); os.setuid(65534)
try:
    Store.open(sys.argv[1], "nobody")
except DatabaseRefused as exc:
    print("REFUSED", exc)
else:
    print("OPENED")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
@pytest.mark.parametrize(("mode", "words"), [(0o400, "read-only"), (0o000, "permission denied")])
def test_read_only_and_unreadable_file_refused_for_a_normal_user(
    shared_dir: Path, mode: int, words: str
) -> None:
    path = make_db(shared_dir / "ro.db")
    os.chown(path, 65534, 65534)
    os.chmod(path, mode)
    before = digest(path)
    out = subprocess.run(
        [sys.executable, "-c", NOBODY_OPEN, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("REFUSED"), out.stdout
    assert words in out.stdout
    assert digest(path) == before
    assert listing(shared_dir) == ["ro.db"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_read_only_folder_refused_for_a_normal_user(shared_dir: Path) -> None:
    path = make_db(shared_dir / "rofolder.db")
    os.chown(path, 65534, 65534)
    os.chmod(shared_dir, 0o755)  # the user owns the file, not the folder
    before = digest(path)
    out = subprocess.run(
        [sys.executable, "-c", NOBODY_OPEN, str(path)], cwd=ROOT, capture_output=True, text=True
    )
    assert out.stdout.startswith("REFUSED"), out.stdout + out.stderr
    assert "folder is read-only" in out.stdout
    assert digest(path) == before


# ---------------------------------------------------------------- opening our own files
def test_reopening_a_current_file_takes_no_backup(good_db: Path) -> None:
    before = listing(good_db.parent)
    with Store.open(good_db, "t", clock=Clock(monotonic=False)) as s:
        assert s.backup is None
        assert s.counts()["patients"] == 50
    assert listing(good_db.parent) == before


def test_readonly_open_writes_nothing(good_db: Path) -> None:
    before = digest(good_db)
    with Store.open(good_db, "t", readonly=True) as s:
        assert s.counts()["patients"] == 50
    assert digest(good_db) == before


# ---------------------------------------------------------------- migration machinery
def _register(monkeypatch: pytest.MonkeyPatch, version: int, fn: Callable[..., None]) -> None:
    """Register an extra migration for the real migration code (db.py reads these names)."""
    monkeypatch.setitem(schema.MIGRATIONS, version, fn)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", version)
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", version)


# Inspect with a read-write connection: a read-only one leaves -wal/-shm beside a WAL file.
def _user_version(path: Path) -> int:
    c = sqlite3.connect(path)
    try:
        return int(c.execute("PRAGMA user_version").fetchone()[0])
    finally:
        c.close()


def _tables(path: Path) -> set[str]:
    c = sqlite3.connect(path)
    try:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        c.close()


def test_migration_takes_a_private_backup_then_migrates(
    good_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = schema.SCHEMA_VERSION
    old_digest = digest(good_db)

    def v_next(db: object) -> None:
        db.execute("ALTER TABLE patients ADD COLUMN test_weight_kg REAL")  # type: ignore[attr-defined]
        db["test_extra"].create({"id": str, "procedure_id": str}, pk="id")  # type: ignore[index]

    _register(monkeypatch, old + 1, v_next)
    with Store.open(good_db, "t", clock=Clock(monotonic=False)) as s:
        backup = s.backup
        assert backup is not None
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == old + 1
        cols = {r[1] for r in s.conn.execute("PRAGMA table_info(patients)")}
        assert "test_weight_kg" in cols
        assert s.counts()["patients"] == 50
    assert backup.parent == good_db.parent
    assert backup.name.startswith(f"{good_db.name}.schema{old}-")
    assert backup.name.endswith(".bak")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert _user_version(backup) == old
    assert "test_extra" not in _tables(backup)
    assert _user_version(good_db) == old + 1
    assert "test_extra" in _tables(good_db)
    # the backup is a complete, consistent copy of the old file
    c = sqlite3.connect(backup)
    try:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT count(*) FROM patients").fetchone()[0] == 50
    finally:
        c.close()
    assert old_digest != digest(good_db)
    # nothing left beside it but the db and its backup
    assert listing(good_db.parent) == sorted([good_db.name, backup.name])
    # a second open at the new version takes no new backup
    with Store.open(good_db, "t", clock=Clock(monotonic=False)) as s:
        assert s.backup is None


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(RuntimeError("migration bug"), id="python-error"),
        pytest.param(sqlite3.OperationalError("no such column: x"), id="sql-error"),
    ],
)
def test_failing_migration_leaves_the_old_version(
    good_db: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    old = schema.SCHEMA_VERSION

    def v_bad(db: object) -> None:
        db["half_done"].create({"id": str}, pk="id")  # type: ignore[index]
        db.execute("UPDATE patients SET sma_type = 4")  # type: ignore[attr-defined]
        raise failure

    _register(monkeypatch, old + 1, v_bad)
    with pytest.raises(StorageError, match="upgrading the database from schema") as info:
        Store.open(good_db, "t", clock=Clock(monotonic=False))
    assert "migration bug" in str(info.value) or "no such column" in str(info.value)
    assert "\n" not in str(info.value)
    assert _user_version(good_db) == old
    assert "half_done" not in _tables(good_db)
    c = sqlite3.connect(good_db)
    try:
        assert c.execute("SELECT count(*) FROM patients WHERE sma_type = 4").fetchone()[0] == 0
    finally:
        c.close()
    backups = [n for n in listing(good_db.parent) if n.endswith(".bak")]
    assert len(backups) == 1
    # the app (without the faulty migration) still opens it, data intact
    monkeypatch.undo()
    with Store.open(good_db, "t", clock=Clock(monotonic=False)) as s:
        assert s.backup is None
        assert s.counts()["patients"] == 50
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_failing_migration_raises_a_storage_error_and_closes(
    good_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken migration reaches the caller as one readable line, not a raw traceback."""

    def v_bad(db: object) -> None:
        raise RuntimeError("migration bug")

    _register(monkeypatch, schema.SCHEMA_VERSION + 1, v_bad)
    with pytest.raises(StorageError, match="migration bug"):
        Store.open(good_db, "t", clock=Clock(monotonic=False))
    # the connection was closed: the WAL was checkpointed away, nothing left open
    assert listing(good_db.parent) == sorted(
        [good_db.name, *(n for n in listing(good_db.parent) if n.endswith(".bak"))]
    )


@pytest.mark.parametrize("with_shm", [True, False], ids=["wal+shm", "wal-only"])
def test_newer_version_in_a_leftover_wal_refused_untouched(good_db: Path, with_shm: bool) -> None:
    """A newer sma-log was killed (or the file copied with its -wal): the newer schema is
    only in the log. Refusing it must not checkpoint the log into the file on close."""
    holder = sqlite3.connect(good_db)
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    holder.execute("CREATE TABLE from_the_future(x)")
    holder.commit()
    copy = good_db.parent.parent / "copy"
    copy.mkdir()
    suffixes = ["", "-wal", "-shm"] if with_shm else ["", "-wal"]
    for suffix in suffixes:
        shutil.copy(f"{good_db}{suffix}", copy / f"good.db{suffix}")
    holder.close()
    target = copy / "good.db"
    wal_before = digest(copy / "good.db-wal")
    if with_shm:
        assert_refused_untouched(target, "newer sma-log")
    else:
        # Known limit: the read-only probe creates a -shm index beside the -wal (an index
        # SQLite rebuilds from the log; no data). The database and its log are unchanged.
        before = digest(target)
        with pytest.raises(DatabaseRefused, match="newer sma-log"):
            Store.open(target, "tester", clock=Clock(monotonic=False))
        assert digest(target) == before
        assert listing(copy) == ["good.db", "good.db-shm", "good.db-wal"]
    assert digest(copy / "good.db-wal") == wal_before
