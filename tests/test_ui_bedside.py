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
from factories import SETUP
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
from sma_log.ui.widgets.bedside import AttemptList, BigNumber
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
        users = {r["user"] for r in s.query("SELECT DISTINCT user FROM audit_tx")}
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
        audit = [
            e
            for e in s.audit_entries("events", limit=-1)
            if e["action"] == "update" and e["field"] == "voided_at"
        ]
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
        said = str(dialog.query_one("#end-message").render())
        assert "NOT ENDED" in said and "Say why the drug was not delivered" in said
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


# ---------------------------------------------------------------- issue 9: bedside
def open_procedure_db(db: Path, code: str = "RM-009", attempts: int = 0) -> str:
    """A database with one procedure in progress (``attempts`` skin punctures)."""
    with Store.open(db, "dr-test", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": code})
        proc = s.start_procedure(pt["id"], SETUP)
        for _ in range(attempts):
            s.record(proc, "attempt")
    return proc


def events_of(db: Path) -> list[str]:
    with read(db) as s:
        return [e["kind"] for e in s.query("SELECT kind FROM events ORDER BY seq")]


def test_cancel_before_the_first_puncture_asks_once_then_goes_home(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot, "rm-007")
        await keys(pilot, "x")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert "RM-007" in dialog.title_text
        await keys(pilot, "x")  # a second x asks nothing more and records nothing
        assert app.screen is dialog
        await keys(pilot, "y")
        assert isinstance(app.screen, HomeScreen)
        message = status(app)
        assert message.startswith("RM-007: procedure started at ") and "cancelled" in message
        assert "No procedure in progress" in str(app.screen.query_one("#no-open").render())

    drive(db, script)
    with read(db) as s:
        proc = s.one("SELECT status, cancelled_at FROM procedures")
        assert proc is not None and proc["status"] == "cancelled" and proc["cancelled_at"]
        # no 72-hour call for a patient never punctured
        assert s.one("SELECT count(*) AS n FROM followups") == {"n": 0}
        assert s.pending_scores() == []
    assert events_of(db) == ["start", "cancel"]


def test_cancel_answered_no_keeps_the_procedure(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "x", "n")
        assert isinstance(app.screen, ProcedureScreen)
        assert status(app) == "RM-001: not cancelled; the procedure goes on"
        await keys(pilot, "x", "escape")
        assert isinstance(app.screen, ProcedureScreen)

    drive(db, script)
    with read(db) as s:
        assert s.one("SELECT status FROM procedures") == {"status": "open"}
    assert events_of(db) == ["start"]


def test_cancel_after_the_first_puncture_is_refused_on_the_status_line(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "a", "x")
        screen = app.screen
        assert isinstance(screen, ProcedureScreen)  # no question: the Store refuses
        assert refused(app)
        assert "cannot be cancelled" in status(app)
        await pilot.pause(1.3)  # ticks and the file poll leave the refusal in place
        assert refused(app) and "cannot be cancelled" in status(app)
        await keys(pilot, "r")  # the next action replaces it
        assert not refused(app)
        assert status(app).startswith("Redirection recorded at")

    drive(db, script)
    with read(db) as s:
        assert s.one("SELECT status FROM procedures") == {"status": "open"}
    assert events_of(db) == ["start", "attempt", "redirect"]


def test_early_score_needs_one_confirmation_and_no_saves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    pendulum.travel_to(T0, freeze=True)
    try:

        async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
            await start_procedure(app, pilot)
            await keys(pilot, "a", "c", "i", "j", "e", "ctrl+s")
            dialog = app.screen
            assert isinstance(dialog, ScoreDialog)
            clock = str(dialog.query_one("#score-clock").render())
            assert "0:00 since the end" in clock and "5:00 in 5:00" in clock, clock
            pendulum.travel_to(T0.add(minutes=1, seconds=15), freeze=True)
            await pilot.pause(0.6)  # a tick: recomputed from the stored end and the clock
            clock = str(dialog.query_one("#score-clock").render())
            assert "1:15 since the end" in clock and "5:00 in 3:45" in clock, clock
            await keys(pilot, "3")
            confirm = app.screen
            assert isinstance(confirm, ConfirmDialog)
            assert "EARLY" in confirm.title_text
            await keys(pilot, "3")  # the same key again answers nothing
            assert app.screen is confirm
            await keys(pilot, "n")
            assert app.screen is dialog
            assert "nothing was saved" in str(dialog.query_one("#score-message").render())
            with read(db) as s:
                assert s.one("SELECT satisfaction_5min FROM procedures") == {
                    "satisfaction_5min": None
                }
            await keys(pilot, "3", "y")
            assert isinstance(app.screen, HomeScreen)
            assert (
                status(app) == "RM-001: satisfaction at 5 min: 3 saved (EARLY, 1:15 after the end)"
            )

        drive(db, script)
    finally:
        pendulum.travel_back()
    with read(db) as s:
        assert s.one("SELECT satisfaction_5min FROM procedures") == {"satisfaction_5min": 3}
        row = s.one("SELECT early, offset_min FROM followups WHERE kind = 'score_5min'")
        assert row == {"early": 1, "offset_min": 1.25}


@pytest.mark.parametrize("key", ["0", "6", "7", "8", "9", "z"])
def test_score_keys_out_of_range_say_so_and_save_nothing(tmp_path: Path, key: str) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "a", "c", "i", "j", "e", "ctrl+s", key)
        dialog = app.screen
        assert isinstance(dialog, ScoreDialog)  # still asking
        assert "Score is 1 to 5" in str(dialog.query_one("#score-message").render())
        await keys(pilot, "escape")  # later
        assert isinstance(app.screen, HomeScreen)

    drive(db, script)
    with read(db) as s:
        assert s.one("SELECT satisfaction_5min FROM procedures") == {"satisfaction_5min": None}
        assert len(s.pending_scores()) == 1


def test_app_opens_on_home_with_the_open_procedure_first(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = open_procedure_db(db, "RM-021", attempts=2)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        home = app.screen
        assert isinstance(home, HomeScreen)
        table = home.query_one("#open")
        assert table.has_focus  # Enter resumes it
        line = str(table.get_row_at(0)[0])  # type: ignore[attr-defined]
        assert "IN PROGRESS" in line and "RM-021" in line and "2 attempts" in line
        assert "Enter or l resumes" in line
        await keys(pilot, "c", "a", "r", "i", "e")  # live-screen keys at home: nothing
        assert app.screen is home
        await keys(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, ProcedureScreen) and screen.procedure_id == proc
        await keys(pilot, "enter")  # the same key again records nothing
        assert app.screen is screen

    drive(db, script)
    assert events_of(db) == ["start", "attempt", "attempt"]


def test_demo_opens_on_home_with_a_line_that_says_demo(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    open_procedure_db(db)
    app = create_app(
        db,
        user="dr-test",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        demo=True,
        settings_path=tmp_path / "s.json",
    )

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(7)  # longer than any toast: the line stays
            assert isinstance(app.screen, HomeScreen)
            banner = str(app.screen.query_one("#demo-banner").render())
            assert "DEMO DATA, deleted on exit" in banner

    asyncio.run(main())


def test_a_key_the_live_screen_does_not_have_says_so(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await start_procedure(app, pilot)
        await keys(pilot, "A")  # Caps Lock on
        assert status(app) == (
            "Key A does nothing here (Caps Lock?): nothing recorded · ? lists the keys"
        )
        await keys(pilot, "l")
        assert status(app).startswith("Key l does nothing here: nothing recorded")

    drive(db, script)
    assert events_of(db) == ["start"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
def test_big_figures_are_solid_blocks_at_least_5_rows_high(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    db = tmp_path / "t.db"
    open_procedure_db(db, attempts=3)
    app = make_app(db)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await keys(pilot, "l")
            screen = app.screen
            assert isinstance(screen, ProcedureScreen)
            for box in ("#timer", "#attempts"):
                big = screen.query_one(box).query_one(BigText)
                seen[box] = (big.fit(), big.content_size.height, str(big.render()))

    asyncio.run(main())
    for box, ((scale, _px), height, drawn) in seen.items():
        assert scale >= 1, (box, size)  # the block font, not Digits' 3 thin rows
        assert height >= 5 and drawn.count("\n") + 1 >= 5, (box, size, drawn)
        assert "█" in drawn
    if size == (200, 60):
        assert seen["#timer"][0][0] >= 2


def test_a_timer_over_an_hour_stays_in_blocks_at_80_columns(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    pendulum.travel_to(T0, freeze=True)
    try:
        open_procedure_db(db)
        pendulum.travel_to(T0.add(hours=1, minutes=2, seconds=3), freeze=True)
        app = make_app(db)
        seen: dict[str, Any] = {}

        async def main() -> None:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                await keys(pilot, "l")
                big = app.screen.query_one("#timer").query_one(BigText)
                seen["value"], seen["fit"] = big.value, big.fit()

        asyncio.run(main())
    finally:
        pendulum.travel_back()
    assert seen["value"] == "1:02:03"
    assert seen["fit"][0] == 1  # 5 rows, narrow pixels


def test_every_live_key_is_on_screen_at_80x24(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    open_procedure_db(db)
    app = make_app(db)
    seen: dict[str, str] = {}

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await keys(pilot, "l")
            lines = app.screen._compositor.render_update(full=True).strips  # type: ignore[attr-defined]
            seen["text"] = "\n".join("".join(seg.text for seg in strip) for strip in lines)

    asyncio.run(main())
    for binding in ProcedureScreen.BINDINGS:
        assert not isinstance(binding, tuple)
        first = binding.key.split(",")[0]
        shown = {"escape": "Esc"}.get(first, first)
        assert f"{shown} {binding.description}" in seen["text"], (binding, seen["text"])
    assert "F1/? Help" in seen["text"]


def test_home_cuts_nothing_at_80_columns(tmp_path: Path) -> None:
    """On the demo data at 80x24 every home table fits its width (no column hidden
    behind a horizontal scroll, no "pendi"); the operator is what gives way."""
    from sma_log.demo import demo_database

    db = demo_database(tmp_path)
    app = make_app(db)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            home = app.screen
            assert isinstance(home, HomeScreen)
            for table in home.query("DataTable"):
                seen[table.id or "?"] = (
                    table.virtual_size.width,
                    table.scrollable_content_region.width,
                )
            seen["columns"] = [str(c.label) for c in home.query_one("#recent").columns.values()]  # type: ignore[attr-defined]
            lines = app.screen._compositor.render_update(full=True).strips  # type: ignore[attr-defined]
            seen["text"] = "\n".join("".join(seg.text for seg in strip) for strip in lines)
        async with make_app(db).run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            screen = pilot.app.screen
            seen["wide"] = [str(c.label) for c in screen.query_one("#recent").columns.values()]  # type: ignore[attr-defined]

    asyncio.run(main())
    for name in ("open", "scores", "recent", "patients"):
        content, room = seen[name]
        assert content <= room, (name, content, room, seen["text"])
    assert seen["columns"] == ["Study code", "Started", "Status", "Attempts", "Time", "Score 5′"]
    assert seen["wide"][-1] == "Operator"
    assert " pending" in seen["text"] and "Enter or l resumes" in seen["text"]
    assert "DEMO DATA" not in seen["text"]  # not a demo run: no demo line


def test_the_earliest_5_minute_score_follows_the_setting(tmp_path: Path) -> None:
    """With the setting at 2 minutes, a score 2 min 30 s after the end is on time."""
    db = tmp_path / "t.db"
    app = create_app(
        db,
        user="dr-test",
        settings=Settings(timezone="Europe/Rome", score_earliest_min=2.0),
        clock=Clock(monotonic=False),
    )
    pendulum.travel_to(T0, freeze=True)
    try:

        async def main() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                await start_procedure(app, pilot)
                await keys(pilot, "a", "c", "i", "j", "e", "ctrl+s")
                assert isinstance(app.screen, ScoreDialog)
                pendulum.travel_to(T0.add(minutes=2, seconds=30), freeze=True)
                await keys(pilot, "5")
                assert isinstance(app.screen, HomeScreen)  # saved without a question

        asyncio.run(main())
    finally:
        pendulum.travel_back()
    with read(db) as s:
        row = s.one("SELECT early, offset_min FROM followups WHERE kind = 'score_5min'")
        assert row == {"early": 0, "offset_min": 2.5}


def test_a_late_5_minute_score_says_so(tmp_path: Path) -> None:
    """Left for later and taken 3 hours after the end: saved, and flagged late aloud."""
    db = tmp_path / "t.db"
    pendulum.travel_to(T0, freeze=True)
    try:

        async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
            await start_procedure(app, pilot)
            await keys(pilot, "a", "c", "i", "j", "e", "ctrl+s", "l")
            pendulum.travel_to(T0.add(hours=3), freeze=True)
            await keys(pilot, "k", "4")
            assert isinstance(app.screen, HomeScreen)
            assert status(app) == (
                "RM-001: satisfaction at 5 min: 4 saved (LATE, 3:00:00 after the end: "
                "not in the in-window figure)"
            )

        drive(db, script)
    finally:
        pendulum.travel_back()
    with read(db) as s:
        row = s.one("SELECT early, late FROM followups WHERE kind = 'score_5min'")
        assert row == {"early": 0, "late": 1}


def test_each_attempt_key_shows_its_line_count_and_message_without_a_relayout(
    tmp_path: Path,
) -> None:
    """The attempt key repaints the list, the big figure and the status line in place
    (no layout pass, issue 13): what it drew must still be the whole new state."""
    db = tmp_path / "t.db"
    open_procedure_db(db)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "l")
        assert isinstance(app.screen, ProcedureScreen)
        for n in range(1, 4):
            await keys(pilot, "a")
            listed = str(app.screen.query_one(AttemptList).render())
            assert f"#{n} " in listed and f"#{n + 1} " not in listed
            assert app.screen.query_one("#attempts", BigNumber).value == str(n)
            assert status(app).startswith(f"Attempt {n} recorded at ")
            assert not app.screen._layout_required  # nothing waits for a layout pass
        regions = [w.region for w in app.screen.query("Milestones, AttemptList")]
        assert all(r.height > 3 for r in regions)  # as high as their boxes

    drive(db, script)
    assert events_of(db) == ["start", "attempt", "attempt", "attempt"]


@pytest.mark.parametrize("tz", ["Europe/Rome", "America/New_York", "UTC", "Asia/Kolkata"])
def test_times_on_screen_read_as_pendulum_writes_them_across_clock_changes(tz: str) -> None:
    """local_time formats with the standard library (15x faster at 500 dates a screen);
    the text is the one pendulum's format gives, over both clock changes of a year."""
    from sma_log.domain.clock import to_text
    from sma_log.ui import fmt

    start = pendulum.datetime(2026, 1, 1, 0, 17, 3, 250_000, tz="UTC")
    for hours in range(0, 366 * 24, 7):
        instant = start.add(hours=hours)
        for pattern in fmt._STRFTIME:
            expected = instant.in_timezone(tz).format(pattern)
            assert fmt.local_time(to_text(instant), tz, pattern) == expected
            assert fmt.local_time(instant, tz, pattern) == expected
    assert fmt.local_time("2026-13-01T00:00:00.000000Z", tz) == "2026-13-01T00:00:00.000000Z"
    assert fmt.local_time(None, tz) == fmt.NONE


def test_home_shows_the_procedure_in_progress_on_its_first_frame(tmp_path: Path) -> None:
    """Home draws from the store once on open, before its first layout: the line of
    the procedure in progress has its row (filled after the layout it stayed 0 high)."""
    db = tmp_path / "t.db"
    open_procedure_db(db, attempts=1)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        assert isinstance(app.screen, HomeScreen)
        await pilot.pause(0.1)
        table = app.screen.query_one("#open")
        assert table.display and table.region.height == 1
        line = "".join(s.text for s in app.screen._compositor.render_strips())
        assert "IN PROGRESS  RM-009" in line

    drive(db, script)
