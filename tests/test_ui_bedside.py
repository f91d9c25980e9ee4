"""The bedside flow through the real app (Textual's Pilot) on a real database file.

Each test drives keys, then reads the database the app wrote: what the screen
showed must be what was committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.modals.confirm import ConfirmDialog
from sma_log.ui.modals.end import EndDialog
from sma_log.ui.modals.score import ScoreDialog
from sma_log.ui.screens.base import StatusLine
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.procedure import ProcedureScreen
from sma_log.ui.screens.refused import RefusedScreen
from sma_log.ui.screens.start import StartScreen
from sma_log.ui.widgets.bigtext import BigText

SIZE = (100, 34)
T0 = pendulum.datetime(2026, 3, 27, 9, 0, 0, tz="UTC")


def make_app(db: Path) -> SmaLogApp:
    return create_app(
        db, user="dr-test", settings=Settings(timezone="Europe/Rome"), clock=Clock(monotonic=False)
    )


def drive(db: Path, script: Callable[[SmaLogApp, Pilot[Any]], Awaitable[None]]) -> SmaLogApp:
    app = make_app(db)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(main())
    return app


async def keys(pilot: Pilot[Any], *keys: str) -> None:
    for k in keys:
        await pilot.press(k)
        await pilot.pause()


async def start_procedure(app: SmaLogApp, pilot: Pilot[Any], code: str = "rm-001") -> None:
    await keys(pilot, "plus")
    assert isinstance(app.screen, StartScreen)
    await pilot.press(*code)
    await keys(pilot, "ctrl+s")
    assert isinstance(app.screen, ProcedureScreen), app.screen


def status(app: SmaLogApp) -> str:
    """The message on the status line of the screen in front (under any dialog)."""
    from sma_log.ui.screens.base import status_screen

    screen = status_screen(app)
    assert screen is not None
    return screen.query_one(StatusLine).message


def refused(app: SmaLogApp) -> bool:
    from sma_log.ui.screens.base import status_screen

    screen = status_screen(app)
    assert screen is not None
    return screen.query_one(StatusLine).refused


def read(db: Path) -> Store:
    return Store.open(db, "reader", clock=Clock(monotonic=False))


def test_whole_bedside_flow_lands_in_the_database(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        assert isinstance(app.screen, HomeScreen)
        await start_procedure(app, pilot)
        # 3 attempts, a redirection in the second; CSF; injection start and end.
        await keys(pilot, "a", "a", "r", "a", "c", "i", "j")
        screen = app.screen
        assert isinstance(screen, ProcedureScreen)
        assert screen.query_one("#attempts").query_one(BigText).value == "3"
        assert screen.query_one("#redirections").query_one(BigText).value == "1"
        await keys(pilot, "e")
        assert isinstance(app.screen, EndDialog)
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, ScoreDialog)
        await keys(pilot, "5")  # seconds after the end: too early, asks once
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "y")
        assert isinstance(app.screen, HomeScreen)
        assert "RM-001: satisfaction at 5 min: 5 saved (EARLY" in status(app)

    drive(db, script)
    with read(db) as s:
        proc = s.one("SELECT * FROM procedures")
        assert proc is not None
        assert proc["status"] == "ended"
        assert proc["attempts_n"] == 3
        assert proc["redirections_n"] == 1
        assert proc["drug_delivered"] == 1
        assert proc["satisfaction_5min"] == 5
        assert proc["operator"] == "dr-test"
        assert proc["level_final"] == "L3-L4"
        attempts = s.query("SELECT * FROM attempts ORDER BY number")
        assert [a["number"] for a in attempts] == [1, 2, 3]
        assert [a["redirections"] for a in attempts] == [0, 1, 0]
        assert [a["csf_obtained"] for a in attempts] == [0, 0, 1]
        kinds = [e["kind"] for e in s.query("SELECT kind FROM events ORDER BY seq")]
        assert kinds == [
            "start",
            "attempt",
            "attempt",
            "redirect",
            "attempt",
            "csf",
            "injection_start",
            "injection_end",
            "end",
        ]
        patient = s.one("SELECT * FROM patients")
        assert patient is not None and patient["study_code"] == "RM-001"
        users = {r["user"] for r in s.query("SELECT DISTINCT user FROM audit_log")}
        assert users == {"dr-test"}
        score = s.one("SELECT early, satisfaction FROM followups WHERE kind = 'score_5min'")
        assert score == {"early": 1, "satisfaction": 5}


def test_undo_voids_the_last_action_and_is_audited(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "a", "a", "u")
        screen = app.screen
        assert screen.query_one("#attempts").query_one(BigText).value == "1"
        assert "Undone" in status(app)

    drive(db, script)
    with read(db) as s:
        events = s.query("SELECT * FROM events WHERE kind = 'attempt' ORDER BY seq")
        assert len(events) == 2  # nothing deleted
        assert events[0]["voided_at"] is None
        assert events[1]["voided_at"] is not None
        audit = s.query(
            "SELECT * FROM audit_log WHERE table_name = 'events' AND action = 'update' "
            "AND field = 'voided_at'"
        )
        assert len(audit) == 1 and audit[0]["record_id"] == events[1]["id"]
        assert s.one("SELECT attempts_n FROM procedures")["attempts_n"] == 1  # type: ignore[index]


def test_out_of_order_milestones_are_refused_with_a_message(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    messages: list[str] = []

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "c")  # CSF before any skin puncture
        await keys(pilot, "a", "i")  # injection before CSF
        await keys(pilot, "j")  # injection end before its start
        messages.extend(n.message for n in app._notifications)
        assert app.screen.query_one("#attempts").query_one(BigText).value == "1"

    drive(db, script)
    assert any("CSF cannot come before the first skin puncture" in m for m in messages)
    assert any("before the injection starts" in m for m in messages)
    assert any("before its end" in m for m in messages)
    with read(db) as s:
        kinds = [e["kind"] for e in s.query("SELECT kind FROM events ORDER BY seq")]
        assert kinds == ["start", "attempt"]


def test_invalid_setup_is_shown_beside_the_field_and_nothing_starts(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "plus")
        await pilot.press(*"rm-002")
        gauge = app.screen.query_one("#needle_gauge", Input)
        gauge.focus()
        await pilot.press("4", "0")
        await pilot.pause()
        error = app.screen.query_one("#field-needle_gauge .field-error")
        assert "Needle gauge must be a whole number from 18 to 27" in str(error.render())
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, StartScreen)  # not started

    drive(db, script)
    with read(db) as s:
        assert s.counts()["procedures"] == 0
        assert s.counts()["patients"] == 0


def test_failed_procedure_asks_why(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "a", "a", "e")
        dialog = app.screen
        assert isinstance(dialog, EndDialog)
        # No injection: "delivered" defaults to No and the reason is required.
        assert dialog.query_one("#field-failure_reason").display
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, EndDialog)  # refused: no reason, no fallback
        dialog.query_one("#failure_reason", Input).focus()
        await pilot.press(*"bone contact at every level")
        dialog.query_one("#fallback").value = "ct"  # type: ignore[attr-defined]
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, ScoreDialog)
        await keys(pilot, "l")  # score later
        assert isinstance(app.screen, HomeScreen)

    drive(db, script)
    with read(db) as s:
        proc = s.one("SELECT * FROM procedures")
        assert proc is not None
        assert proc["drug_delivered"] == 0
        assert proc["failure_reason"] == "bone contact at every level"
        assert proc["fallback"] == "ct"
        assert proc["satisfaction_5min"] is None
        assert len(s.pending_scores()) == 1


def test_second_procedure_for_the_same_patient_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    messages: list[str] = []

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "escape")  # home; the procedure keeps running
        assert isinstance(app.screen, HomeScreen)
        await keys(pilot, "plus")
        await pilot.press(*"RM-001")
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, StartScreen)
        messages.extend(n.message for n in app._notifications)

    drive(db, script)
    assert any("already has a procedure in progress" in m for m in messages)
    with read(db) as s:
        assert s.counts()["procedures"] == 1


def test_restart_resumes_the_open_procedure_with_the_timer_from_the_stored_start(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    pendulum.travel_to(T0, freeze=True)
    try:

        async def first(app: SmaLogApp, pilot: Pilot[Any]) -> None:
            await start_procedure(app, pilot)
            await keys(pilot, "a", "r", "a")

        drive(db, first)  # the app goes away without ending the procedure
        pendulum.travel_to(T0.add(minutes=7, seconds=5), freeze=True)

        async def second(app: SmaLogApp, pilot: Pilot[Any]) -> None:
            assert isinstance(app.screen, HomeScreen)  # home first, the procedure on top
            await keys(pilot, "l")
            screen = app.screen
            assert isinstance(screen, ProcedureScreen)
            assert screen.query_one("#timer").query_one(BigText).value == "07:05"
            assert screen.query_one("#attempts").query_one(BigText).value == "2"
            assert screen.query_one("#redirections").query_one(BigText).value == "1"
            pendulum.travel_to(T0.add(minutes=8), freeze=True)
            await pilot.pause(0.3)  # the timer redraws from the clock, not from a counter
            assert screen.query_one("#timer").query_one(BigText).value == "08:00"

        drive(db, second)
    finally:
        pendulum.travel_back()


def test_pending_score_is_entered_from_home_when_due_without_asking(tmp_path: Path) -> None:
    """Left for later at the end; 4 min 30 s after the end it is open: one key saves it."""
    db = tmp_path / "t.db"
    pendulum.travel_to(T0, freeze=True)
    try:

        async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
            await start_procedure(app, pilot)
            await keys(pilot, "a", "c", "i", "j", "e", "ctrl+s")
            assert isinstance(app.screen, ScoreDialog)
            await keys(pilot, "l")  # later
            assert isinstance(app.screen, HomeScreen)
            assert "RM-001: 5-minute score left pending" in status(app)
            pendulum.travel_to(T0.add(minutes=4, seconds=30), freeze=True)
            await keys(pilot, "k")
            dialog = app.screen
            assert isinstance(dialog, ScoreDialog)
            shown = str(dialog.query_one("#score-clock").render())
            assert "4:30 since the end" in shown and "5:00 in 0:30" in shown, shown
            await keys(pilot, "4")
            assert isinstance(app.screen, HomeScreen)  # no confirmation: it was open
            assert status(app) == "RM-001: satisfaction at 5 min: 4 saved"

        drive(db, script)
    finally:
        pendulum.travel_back()
    with read(db) as s:
        assert s.one("SELECT satisfaction_5min FROM procedures") == {"satisfaction_5min": 4}
        row = s.one("SELECT early, offset_min FROM followups WHERE kind = 'score_5min'")
        assert row == {"early": 0, "offset_min": 4.5}


@pytest.mark.parametrize("content", [b"", b"hello, not a database\n"])
def test_a_refused_file_shows_a_message_and_exits_2(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "foreign.db"
    db.write_bytes(content)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        assert isinstance(app.screen, RefusedScreen)
        assert "not an sma-log database" in app.screen.message
        await keys(pilot, "q")

    app = drive(db, script)
    assert app.return_code == 2
    assert db.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]
