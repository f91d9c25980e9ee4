"""Fault class 5: bad files, as a user meets them — through the real command (one line,
exit 2, file unchanged) and the TUI (one message) — plus a full disk and a read-only
folder, and the app carrying on once the fault is removed.

tests/test_storage_files.py already covers the Store-level refusals; this adds the
CLI/TUI faces, a file name that is not UTF-8, a full disk and recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import SETUP as BASE_SETUP

from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import create_app
from sma_log.ui.modals.message import MessageDialog
from sma_log.ui.screens.base import StatusLine
from sma_log.ui.screens.procedure import ProcedureScreen
from sma_log.ui.screens.refused import RefusedScreen

from .term import SMA_LOG

SETUP = {**BASE_SETUP, "guidance": "us_realtime", "sedation": "local"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def good(path: Path, patients: int = 20) -> Path:
    with Store.open(path, "maker", clock=Clock(monotonic=False)) as s:
        for i in range(patients):
            s.create_patient({"study_code": f"P{i:03d}"})
    return path


def make_bad(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.db"
    if kind == "zero":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("patient,attempts\nA,3\n" * 50)
    elif kind == "truncated":
        good(path, 400)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        with sqlite3.connect(path) as c:
            c.execute("CREATE TABLE songs(title TEXT)")
            c.execute("INSERT INTO songs VALUES ('x')")
        c.close()
    elif kind == "newer":
        good(path)
        with sqlite3.connect(path) as c:
            c.execute("PRAGMA user_version = 99")
        c.close()
    elif kind == "readonly":
        good(path)
        os.chmod(path, 0o400)
    return path


BAD = {
    "zero": "empty",
    "text": "not an SQLite database",
    "truncated": "truncated",
    "foreign": "another application",
    "newer": "newer sma-log",
    "readonly": "read-only",
}


def run(args: list[str | bytes], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMA_LOG, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={
            "PATH": os.environ["PATH"],
            "TZ": "UTC",
            "SMA_LOG_CONFIG": str(cwd / "s.json"),
            **env,
        },
        timeout=60,
    )


# A read-only file given to the app itself (no command) opens the TUI, which shows the
# refusal: that case is the TUI test below, not a command-line one.
CASES = [
    (kind, command)
    for kind in sorted(BAD)
    for command in ([], ["info"], ["followups"], ["report"])
    if not (kind == "readonly" and not command)
]


@pytest.mark.parametrize(("kind", "command"), CASES)
def test_bad_file_one_line_exit_2_untouched(tmp_path: Path, kind: str, command: list[str]) -> None:
    path = make_bad(kind, tmp_path)
    before, listing = digest(path), sorted(os.listdir(tmp_path))
    out = run(["--db", str(path), *command], tmp_path)
    if kind == "readonly":  # reading a read-only file is fine, and writes nothing
        assert out.returncode == 0, out.stderr
        assert digest(path) == before  # (a WAL reader may leave an empty -wal/-shm)
        extra = set(os.listdir(tmp_path)) - set(listing)
        assert extra <= {"readonly.db-wal", "readonly.db-shm"}, extra
        return
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sma-log: error:"), out.stderr
    assert BAD[kind] in lines[0]
    assert "Traceback" not in out.stderr
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no -wal, -shm, backup, temp file
    os.chmod(path, 0o600)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_in_the_tui_one_message_untouched(tmp_path: Path, kind: str) -> None:
    path = make_bad(kind, tmp_path)
    before = digest(path)
    app = create_app(
        path,
        user="t",
        settings=Settings(timezone="UTC"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "s.json",
    )

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, RefusedScreen)
            message = str(app.screen.query_one("#refused-message").render())
            assert BAD[kind] in message and "\n" not in message.strip()
            await pilot.press("q")

    asyncio.run(main())
    assert app.return_code == 2
    assert digest(path) == before
    os.chmod(path, 0o600)


def test_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A database named with bytes that are not UTF-8 opens read-only (info, followups)."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.db"
    good(Path(os.fsdecode(raw)), 3)
    for command in (["info"], ["followups", "--format", "json"], ["report"]):
        out = subprocess.run(
            [*SMA_LOG, "--db", raw, *command],
            capture_output=True,
            cwd=tmp_path,
            timeout=60,
            env={"PATH": os.environ["PATH"], "SMA_LOG_CONFIG": str(tmp_path / "s.json")},
        )
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        assert b"Traceback" not in out.stderr


# ---------------------------------------------------------------- read-only folder
def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (a disk that fills quickly); skipped where mount is not allowed."""
    point = tmp_path / "fs"
    point.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_read_only_folder_refused_then_works_again(small_fs: Path) -> None:
    """A database in a folder mounted read-only (root passes every permission check,
    so the mount itself is read-only): one line, untouched; writable again, it opens."""
    path = good(small_fs / "ro.db")
    before = digest(path)
    if not _mount("-o", "remount,ro", str(small_fs)):
        pytest.skip("cannot remount read-only")
    try:
        out = run(["--db", str(path), "info"], small_fs.parent)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, out.stderr
        assert "folder is read-only" in lines[0] and "damaged" not in lines[0], out.stderr
        with pytest.raises(Exception, match="read-only") as info:
            Store.open(path, "t")  # what the app opens with, and shows
        assert "\n" not in str(info.value)
    finally:
        _mount("-o", "remount,rw", str(small_fs))
    assert digest(path) == before
    with Store.open(path, "t") as s:
        s.create_patient({"study_code": "AFTER-1"})
        assert s.counts()["patients"] == 21


# ---------------------------------------------------------------- full disk
def _fill(folder: Path) -> Path:
    """Fill the file system to the last byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_disk_full_at_bedside_not_saved_then_carries_on(small_fs: Path) -> None:
    """Disk full during bedside keys: "Not saved" (acknowledged), the action not shown
    as done, the file intact; after freeing space the next key works."""
    db = small_fs / "full.db"
    with Store.open(db, "t", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "FULL-1"})
        proc = s.start_procedure(pt["id"], SETUP)
    app = create_app(
        db,
        user="t",
        settings=Settings(timezone="UTC"),
        clock=Clock(monotonic=False),
        settings_path=small_fs.parent / "s.json",
    )
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await pilot.press("l")  # the app opens on home: resume the procedure
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ProcedureScreen)
            filler = None
            attempts_shown = 0
            for _ in range(400):  # keys until the disk is full and a key is refused
                if filler is None:
                    filler = _fill(small_fs)
                await pilot.press("a" if attempts_shown < 3 else "r")
                await pilot.pause()
                if isinstance(app.screen, MessageDialog):
                    break
                attempts_shown = screen.view.state.attempt_count if screen.view else 0
            assert isinstance(app.screen, MessageDialog), "the disk never filled"
            seen["message"] = app.screen.message
            seen["shown_before"] = (
                screen.view.state.attempt_count,
                screen.view.state.redirection_count,
            )
            await pilot.press("enter")  # acknowledge
            await pilot.pause()
            assert app.screen is screen
            # nothing shown as done by the refused key
            assert (
                screen.view.state.attempt_count,
                screen.view.state.redirection_count,
            ) == seen["shown_before"]
            assert filler is not None
            filler.unlink()  # the fault is removed
            await pilot.press("a")
            await pilot.pause()
            assert not isinstance(app.screen, MessageDialog)
            seen["after"] = screen.view.state.attempt_count
            seen["last"] = screen.query_one(StatusLine).message

    asyncio.run(main())
    assert "disk is full" in seen["message"].lower() and "nothing was saved" in seen["message"]
    assert seen["after"] == seen["shown_before"][0] + 1
    assert "recorded" in seen["last"]
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = c.execute("SELECT attempts_n, redirections_n FROM procedures").fetchone()
    c.close()
    assert (n[0], n[1]) == (seen["after"], seen["shown_before"][1])
    with Store.open(db, "t") as s:
        view = s.load_procedure(proc)
        assert view.state.attempt_count == seen["after"]


def test_disk_full_while_creating_a_database(small_fs: Path) -> None:
    """No room for a new file: one clear line, and no half-made database left behind."""
    filler = _fill(small_fs)
    with pytest.raises(Exception) as info:
        Store.open(small_fs / "new.db", "t")
    assert "\n" not in str(info.value)
    assert "new.db" in str(info.value)
    assert not (small_fs / "new.db").exists()
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]
    filler.unlink()
    with Store.open(small_fs / "new.db", "t") as s:
        s.create_patient({"study_code": "OK-1"})


def test_disk_full_during_export_leaves_no_partial_file(small_fs: Path) -> None:
    db = small_fs / "x.db"
    good(db, 30)
    filler = _fill(small_fs)
    out = run(
        ["--db", str(db), "export", "--format", "json", "--out", str(small_fs / "e.json")],
        small_fs.parent,
    )
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not (small_fs / "e.json").exists()
    assert not [p for p in small_fs.iterdir() if p.name.startswith(".e.json")]
    filler.unlink()
    out = run(
        ["--db", str(db), "export", "--format", "json", "--out", str(small_fs / "e.json")],
        small_fs.parent,
    )
    assert out.returncode == 0, out.stderr
    shutil.rmtree(small_fs / "e.json", ignore_errors=True)


@pytest.mark.parametrize("command", [["info"], ["followups"], []])
def test_db_path_with_a_tilde_of_no_known_user(tmp_path: Path, command: list[str]) -> None:
    """``--db ~nosuchuser/x.db``: Python cannot expand it; one line, exit 2."""
    out = run(["--db", "~no-such-user-zz/x.db", *command], tmp_path)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot expand" in lines[0], out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--format", "json", "--out", "~no-such-user-zz/x.json"],
        ["followups", "--ics", "~no-such-user-zz/x.ics"],
        ["import", "~no-such-user-zz/x.db"],
        ["demo", "~no-such-user-zz/x.db"],
    ],
)
def test_output_path_with_a_tilde_of_no_known_user(tmp_path: Path, args: list[str]) -> None:
    db = good(tmp_path / "t.db", 2)
    out = run(["--db", str(db), *args], tmp_path)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot expand" in lines[0], out.stderr
