"""End to end: the installed ``sma-log`` in a real terminal (tmux), killed with SIGKILL.

A fresh database; keys typed as the assistant would; ``kill -9`` in the middle of
the procedure; a restart finds every attempt and the timer still counting from the
original start (read off the screen's big figures).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.term import SMA_LOG, TMUX, Terminal

from sma_log.domain.clock import from_text
from sma_log.ui.widgets.bigtext import render_big

pytestmark = pytest.mark.e2e

if TMUX is None or not SMA_LOG:  # pragma: no cover - .ci/run installs both
    raise RuntimeError("the end-to-end test needs tmux and the installed sma-log command")


def press(term: Terminal, *keys: str, pause: float = 0.15) -> None:
    for key in keys:
        term.key(key)
        time.sleep(pause)  # a person's pace; the app reads keys as they come


def shows_elapsed(screen: str, seconds: int) -> bool:
    """The screen shows ``mm:ss`` in the big block font (the 100x32 terminal's size)."""
    minutes, secs = divmod(seconds, 60)
    rows = [r.strip() for r in render_big(f"{minutes:02d}:{secs:02d}", 1)]
    lines = screen.splitlines()
    return any(
        all(rows[k] in lines[i + k] for k in range(len(rows)))
        for i in range(len(lines) - len(rows) + 1)
    )


@pytest.fixture
def terminals(tmp_path: Path) -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for t in made:
        t.kill_server()


def test_kill_9_mid_procedure_then_resume(tmp_path: Path, terminals: list[Terminal]) -> None:
    db = tmp_path / "e2e.db"
    env = {
        "SMA_LOG_CONFIG": str(tmp_path / "settings.json"),
        "TERM": "xterm-256color",
        "TZ": "UTC",
    }
    cmd = [*SMA_LOG, "--db", str(db), "--user", "e2e-tester"]
    term = Terminal(tmp_path, "one", cmd, env)
    terminals.append(term)
    term.wait_for(lambda s: "No procedure in progress" in s)
    assert db.exists() and db.stat().st_mode & 0o777 == 0o600

    press(term, "+")
    term.wait_for(lambda s: "Study code" in s)
    time.sleep(0.3)
    term.type("E2E-001")
    term.wait_for(lambda s: "New patient E2E-001" in s)
    press(term, "C-s")
    term.wait_for(lambda s: "IN PROGRESS" in s)
    for key in ("a", "r", "a", "a"):
        press(term, key)
    term.wait_for(lambda s: "Attempt 3 recorded" in s)

    # SIGKILL: no clean-up, no atexit, exactly like a crash or a pulled plug.
    term.sigkill()
    with sqlite3.connect(db) as raw:
        attempts = raw.execute("SELECT count(*) FROM attempts WHERE voided = 0").fetchone()[0]
        redirections = raw.execute("SELECT redirections_n FROM procedures").fetchone()[0]
        started_at = raw.execute("SELECT started_at FROM procedures").fetchone()[0]
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (attempts, redirections) == (3, 1)

    again = Terminal(tmp_path, "two", cmd, env)
    terminals.append(again)
    # The app opens on home, the procedure in progress its first line; l resumes it.
    again.wait_for(lambda s: "IN PROGRESS" in s and "E2E-001" in s and "l resumes" in s)
    press(again, "l")
    screen = again.wait_for(lambda s: "IN PROGRESS" in s and "In progress since" in s)
    assert "E2E-001" in screen
    assert "#3" in screen and "#1" in screen  # every attempt is listed

    # The timer counts from the stored start, not from the restart: it reads the
    # elapsed time since the original start (give or take a second of drawing).
    def elapsed_now() -> int:
        return int(time.time() - from_text(started_at).timestamp())

    screen = again.wait_for(
        lambda s: any(shows_elapsed(s, elapsed_now() + d) for d in (-1, 0, 1)), timeout=10
    )
    first = elapsed_now()
    time.sleep(2.2)
    again.wait_for(
        lambda s: any(shows_elapsed(s, elapsed_now() + d) for d in (-1, 0, 1)), timeout=10
    )
    assert elapsed_now() > first  # still counting
    # And the procedure goes on from there: a fourth attempt, then a clean exit.
    press(again, "a")
    again.wait_for(lambda s: "Attempt 4 recorded" in s)
    press(again, "C-q")
    time.sleep(0.5)
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT attempts_n FROM procedures").fetchone()[0] == 4


def test_a_fast_typist_loses_no_key_on_the_start_screen(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    """The study code and ctrl+s sent in one burst, as a fast typist or a barcode reader
    would: every character lands in the field and the procedure starts. (ctrl+s was a
    priority binding and ran before the field had taken the characters: the form then
    said "Study code is required".)"""
    env = {"SMA_LOG_CONFIG": str(tmp_path / "settings.json"), "TERM": "xterm-256color"}
    for i in range(3):
        db = tmp_path / f"fast{i}.db"
        term = Terminal(tmp_path, f"fast{i}", [*SMA_LOG, "--db", str(db)], env)
        terminals.append(term)
        term.wait_for(lambda s: "No procedure in progress" in s)
        term.key("+")
        term.wait_for(lambda s: "Study code" in s)
        time.sleep(0.3)  # the field has its focus by now
        term.type(f"FAST-{i}")  # then the code and ctrl+s in one burst
        term.key("C-s")
        term.wait_for(lambda s, i=i: f"FAST-{i} · IN PROGRESS" in s)
        term.kill_server()
