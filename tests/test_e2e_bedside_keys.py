"""End to end: a key pressed twice never records (issue 9), in the installed ``sma-log``.

An existing database with a procedure in progress. The app opens on home with the
procedure as its first line; the resume key pressed twice (as a nurse does when the
first press seems slow) opens the live screen once and records nothing there; nor do
home's other keys pressed on the live screen by mistake. Read back from the file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import SETUP
from reliability.term import SMA_LOG, TMUX, Terminal

from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

pytestmark = pytest.mark.e2e

if TMUX is None or not SMA_LOG:  # pragma: no cover - .ci/run installs both
    raise RuntimeError("the end-to-end test needs tmux and the installed sma-log command")


def snapshot(db: Path) -> tuple[list[tuple[str, str | None]], int, int, str]:
    """Every event, the audit log's length, the attempt count and the status."""
    with sqlite3.connect(db) as raw:
        events = raw.execute("SELECT kind, voided_at FROM events ORDER BY seq").fetchall()
        audit = raw.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        attempts, status = raw.execute("SELECT attempts_n, status FROM procedures").fetchone()
    raw.close()
    return events, audit, attempts, status


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for t in made:
        t.kill_server()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_resume_key_pressed_twice_records_nothing(
    tmp_path: Path, terminals: list[Terminal], size: tuple[int, int]
) -> None:
    db = tmp_path / "keys.db"
    with Store.open(db, "dr-test", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "TWICE-1"})
        proc = s.start_procedure(pt["id"], SETUP)
        s.record(proc, "attempt")
    db.chmod(0o600)
    before = snapshot(db)
    env = {
        "SMA_LOG_CONFIG": str(tmp_path / "settings.json"),
        "TERM": "xterm-256color",
        "TZ": "UTC",
    }
    cmd = [*SMA_LOG, "--db", str(db), "--user", "e2e-tester"]
    term = Terminal(tmp_path, f"twice{size[0]}", cmd, env, size=size)
    terminals.append(term)
    home = term.wait_for(lambda s: "IN PROGRESS" in s and "l resumes" in s)
    assert "TWICE-1" in home and "Recent procedures" in home  # home, not the live screen

    term.key("l")
    term.key("l")  # the same key again, at once
    # The second press lands on the live screen ("does nothing here") or, on a loaded
    # machine, still on home (which opens the same live screen): either way nothing
    # is recorded.
    term.wait_for(lambda s: "TWICE-1 · IN PROGRESS" in s and "Milestones" in s)
    assert snapshot(db) == before

    # Home's other keys pressed on the live screen by mistake: nothing either.
    for key in ("+", "k", "f", "t", "o", "l", "g"):
        term.key(key)
        time.sleep(0.15)
    term.wait_for(lambda s: "Key g does nothing here" in s)  # the last key was read
    assert snapshot(db) == before
    assert "Milestones" in term.screen()  # still the live screen

    # The live screen's own keys still record (the test would pass on a dead app).
    term.key("a")
    term.wait_for(lambda s: "Attempt 2 recorded" in s)
    term.key("C-q")
    time.sleep(0.5)
    events, _, attempts, status = snapshot(db)
    assert [k for k, _ in events] == ["start", "attempt", "attempt"]
    assert (attempts, status) == (2, "open")
