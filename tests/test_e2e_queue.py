"""End to end: the installed ``sma-log`` follow-up queue in a real terminal (tmux, 80x24).

Issue 9: after a follow-up was saved the queue's cursor kept its row number, the next
row slid under it and ``x`` logged a no-answer call on another patient. Here four
72-hour calls are due; the nurse saves the second one, another terminal meanwhile
enters the first one, and ``x`` must land on the record the screen says is selected
(the one that followed the saved one), which the database then shows.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest
from factories import SETUP
from reliability.term import TMUX, Terminal

from sma_log.domain import schedule
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

pytestmark = pytest.mark.e2e

#: The command installed beside this Python (not the first one on PATH).
SMA_LOG = Path(sys.executable).with_name("sma-log")

if TMUX is None or not SMA_LOG.exists():  # pragma: no cover - .ci/run installs both
    raise RuntimeError("the end-to-end test needs tmux and the installed sma-log command")

#: Study code -> hours since the procedure ended: every 72-hour call is due now
#: (its window opens 60 h after the end), in this order in the queue.
ENDED_HOURS_AGO = {"E2E-A": 70, "E2E-B": 68, "E2E-C": 66, "E2E-D": 64}


def build(db: Path) -> None:
    """Four ended procedures through the Store, each at its own instant (time travel)."""
    now = pendulum.now("UTC")
    try:
        for code, hours in ENDED_HOURS_AGO.items():
            ended = now.subtract(hours=hours)
            pendulum.travel_to(ended.subtract(minutes=15), freeze=True)
            with Store.open(db, "dr-e2e", clock=Clock(monotonic=False)) as s:
                pt = s.create_patient({"study_code": code})
                pid = s.start_procedure(pt["id"], SETUP)
                for kind in ("attempt", "csf", "injection_start", "injection_end"):
                    s.record(pid, kind)
                pendulum.travel_to(ended, freeze=True)
                s.end_procedure(pid, {"drug_delivered": "yes"})
                pendulum.travel_to(ended.add(minutes=5), freeze=True)
                s.set_score(pid, 5)
    finally:
        pendulum.travel_back()


def day3(db: Path) -> dict[str, dict[str, object]]:
    with sqlite3.connect(db) as raw:
        raw.row_factory = sqlite3.Row
        rows = raw.execute(
            "SELECT pt.study_code, f.state, f.satisfaction, f.assessor, "
            "(SELECT count(*) FROM contact_attempts c WHERE c.followup_id = f.id "
            " AND c.voided_at IS NULL) AS calls "
            "FROM followups f JOIN procedures p ON p.id = f.procedure_id "
            "JOIN patients pt ON pt.id = p.patient_id WHERE f.kind = 'day3'"
        ).fetchall()
    return {r["study_code"]: dict(r) for r in rows}


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for t in made:
        t.kill_server()


def test_x_after_a_save_lands_on_the_record_the_screen_selects(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    db = tmp_path / "queue.db"
    build(db)
    env = {
        "SMA_LOG_CONFIG": str(tmp_path / "settings.json"),
        "TERM": "xterm-256color",
        "TZ": "UTC",
    }
    cmd = [str(SMA_LOG), "--db", str(db), "--user", "e2e-nurse"]
    term = Terminal(tmp_path, "queue", cmd, env, size=(80, 24))
    terminals.append(term)
    term.wait_for(lambda s: "Follow-ups" in s)
    time.sleep(0.3)
    term.key("f")
    screen = term.wait_for(lambda s: "E2E-D" in s and "Calls" in s)
    assert screen.index("E2E-A") < screen.index("E2E-B") < screen.index("E2E-C")
    term.wait_for(lambda s: "E2E-A · 72-h call" in s)  # the detail line: the selection

    # The second row: E2E-B. Enter its answers: score 4, no adverse events, save.
    term.key("Down")
    term.wait_for(lambda s: "E2E-B · 72-h call · due now" in s)
    term.key("Enter")
    term.wait_for(lambda s: "72-hour follow-up — E2E-B" in s)
    time.sleep(0.3)
    term.type("4")
    time.sleep(0.2)
    term.key("C-n")
    term.wait_for(lambda s: "No adverse events" in s)
    term.key("C-s")
    term.wait_for(lambda s: "E2E-B · 72-h call: answers saved" in s)
    # E2E-B left the queue: the record that followed it is selected, and says so.
    term.wait_for(lambda s: "E2E-C · 72-h call · due now" in s)

    # Meanwhile another terminal enters E2E-A's call (the first row) ...
    with Store.open(db, "nurse-other", clock=Clock(monotonic=False)) as other:
        fid = other.one(
            "SELECT f.id FROM followups f JOIN procedures p ON p.id = f.procedure_id "
            "JOIN patients pt ON pt.id = p.patient_id "
            "WHERE pt.study_code = 'E2E-A' AND f.kind = 'day3'"
        )["id"]  # type: ignore[index]
        other.complete_followup(
            fid, {"satisfaction": 5, "assessor": "nurse-other", **schedule.NO_ADVERSE_EVENTS}
        )
    # ... this screen redraws (the rows above the cursor changed), the cursor stays.
    term.wait_for(lambda s: "E2E-A" not in s, timeout=10)
    screen = term.wait_for(lambda s: "E2E-C · 72-h call · due now" in s)

    # x: the no-answer call lands on E2E-C, named on the screen.
    term.key("x")
    screen = term.wait_for(lambda s: "E2E-C · 72-h call: no answer logged (call 1)" in s)
    term.key("C-q")
    time.sleep(0.5)

    rows = day3(db)
    assert {code: (r["state"], r["calls"]) for code, r in rows.items()} == {
        "E2E-A": ("done", 0),
        "E2E-B": ("done", 0),
        "E2E-C": ("open", 1),
        "E2E-D": ("open", 0),
    }
    assert (rows["E2E-B"]["satisfaction"], rows["E2E-B"]["assessor"]) == (4, "e2e-nurse")
    assert rows["E2E-A"]["assessor"] == "nurse-other"
