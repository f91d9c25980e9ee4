"""End to end (issue 14): the pre-dose time-out in the installed ``sma-log``, in tmux.

The site requires the EU preset's four bedside answers. Two procedures, keys typed as
the assistant would:

1. A complete time-out: ``m`` opens it before the puncture, the four answers are
   chosen with the keyboard, ctrl+s confirms it; then the first ``a`` records at once
   (no dialog), and the drug keys ``v`` / ``w`` record their times.
2. A required answer missing: the first ``a`` opens the time-out by itself; ctrl+s
   without a reason is refused beside the reason field (nothing recorded); with a
   reason typed, ctrl+s confirms it and the attempt records.

The file is read afterwards: what the screen said is what was committed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.term import SMA_LOG, TMUX, Terminal

from sma_log.storage.store import Store

pytestmark = pytest.mark.e2e

if TMUX is None or not SMA_LOG:  # pragma: no cover - .ci/run installs both
    raise RuntimeError("the end-to-end test needs tmux and the installed sma-log command")


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for t in made:
        t.kill_server()


def press(term: Terminal, *keys: str, pause: float = 0.2) -> None:
    for key in keys:
        term.key(key)
        time.sleep(pause)  # a person's pace; the app reads keys as they come


def choose(term: Terminal, downs: int) -> None:
    """Open the focused choice (Enter), move ``downs`` rows, take it (Enter), next field."""
    press(term, "Enter", *(["Down"] * downs), "Enter", "Tab")


def start(term: Terminal, code: str) -> None:
    press(term, "+")
    term.wait_for(lambda s: "Study code" in s)
    time.sleep(0.3)
    term.type(code)
    term.wait_for(lambda s: f"New patient {code}" in s)
    press(term, "C-s")
    term.wait_for(lambda s: f"{code} · IN PROGRESS" in s and "Time-out" in s)


def end_delivered(term: Terminal) -> None:
    """c i j, e and ctrl+s (delivered), the score later: back home."""
    press(term, "c", "i", "j", "e")
    term.wait_for(lambda s: "End the procedure?" in s)
    press(term, "C-s")
    term.wait_for(lambda s: "5-minute" in s or "score" in s.lower())
    press(term, "l")
    term.wait_for(lambda s: "Recent procedures" in s)


def test_complete_time_out_and_missing_item_with_reason(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    db = tmp_path / "predose.db"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"label": "eu", "timeout_required": "eu", "timezone": "UTC"}))
    env = {"SMA_LOG_CONFIG": str(settings), "TERM": "xterm-256color", "TZ": "UTC"}
    cmd = [*SMA_LOG, "--db", str(db), "--user", "e2e-tester"]
    term = Terminal(tmp_path, "predose", cmd, env)
    terminals.append(term)
    term.wait_for(lambda s: "No procedure in progress" in s)

    # 1. A complete time-out before the puncture, then a records at once.
    start(term, "PD-001")
    assert "Time-out 4 missing" in term.screen()
    press(term, "m")
    term.wait_for(lambda s: "Pre-dose time-out — PD-001" in s)
    time.sleep(0.3)  # the dialog's first field has its focus by now
    choose(term, 1)  # consent: Yes
    choose(term, 1)  # skin: Intact
    choose(term, 1)  # anticoagulant / antiplatelet: None
    choose(term, 2)  # VP shunt: No
    term.wait_for(lambda s: "Nothing required is missing" in s)
    press(term, "C-s")
    term.wait_for(lambda s: "Time-out confirmed at" in s and "✓ confirmed" in s)
    press(term, "v", "v")
    term.wait_for(lambda s: "already" in s)  # the second v records nothing
    press(term, "w")
    term.wait_for(lambda s: "Drug drawn up recorded" in s and "left of 6 h" in s)
    press(term, "a")
    term.wait_for(lambda s: "Attempt 1 recorded" in s)
    assert "Pre-dose time-out" not in term.screen()  # no dialog: no key of its own
    end_delivered(term)

    # 2. A required answer missing: a asks for a reason, then records.
    start(term, "PD-002")
    press(term, "a")
    term.wait_for(lambda s: "Pre-dose time-out — PD-002" in s and "REASON NEEDED" in s)
    time.sleep(0.3)
    press(term, "C-s")
    term.wait_for(lambda s: "NOT SAVED" in s and "reason is needed" in s)
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM events WHERE kind = 'attempt'").fetchone() == (1,)
    raw.close()
    press(term, "C-r")  # to the reason field
    term.type("consent form in the notes; urgent dose")
    time.sleep(0.3)
    press(term, "C-s")
    term.wait_for(lambda s: "Attempt 1 recorded" in s and "after the time-out" in s)
    press(term, "C-q")
    time.sleep(0.5)

    with sqlite3.connect(db) as raw:
        rows = raw.execute(
            "SELECT p.study_code, t.complete, t.missing, t.reason, t.confirmed_by, "
            "pr.attempts_n, pr.vial_out_at IS NOT NULL, pr.drawn_up_at IS NOT NULL "
            "FROM timeouts t JOIN procedures pr ON pr.id = t.procedure_id "
            "JOIN patients p ON p.id = pr.patient_id ORDER BY p.study_code"
        ).fetchall()
        vial_events = raw.execute("SELECT count(*) FROM events WHERE kind = 'vial_out'").fetchone()
    raw.close()
    # the decoded audit log (schema 5 keeps old values only: the Store gives the new)
    with Store.open(db, "reader", readonly=True) as store:
        reason_audited = [
            sum(
                e["field"] == "reason" or "urgent dose" in (e["new_value"] or "")
                for e in store.audit_entries("timeouts", limit=-1)
            )
        ]
    assert rows == [
        ("PD-001", 1, "", None, "e2e-tester", 1, 1, 1),
        (
            "PD-002",
            0,
            "consent,skin,antithrombotic,vp_shunt",
            "consent form in the notes; urgent dose",
            "e2e-tester",
            1,
            0,
            0,
        ),
    ]
    assert vial_events == (1,)  # v pressed twice: recorded once
    assert reason_audited[0] >= 1
