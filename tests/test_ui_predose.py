"""Issue 14 at the bedside, through the real app (Pilot) on a real file.

The pre-dose time-out: complete beforehand, the first attempt records with no key of
its own; a required answer missing, the first attempt opens the time-out, which asks
for a reason, stores it (audited) and then records the attempt. The drug's clock: the
keys v and w record once (a second press records nothing), the time left is derived
from the stored instants and warns before the label's limit (pendulum travel, no
sleeps), and u undoes them. Each test reads back what the app committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from factories import SETUP
from textual.pilot import Pilot
from textual.widgets import Input, Select

from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage import predose as predose_store
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.modals.timeout import TimeoutDialog
from sma_log.ui.screens.base import StatusLine, status_screen
from sma_log.ui.screens.procedure import ProcedureScreen
from sma_log.ui.widgets.predose import DrugLine, TimeoutLine

T0 = pendulum.datetime(2026, 3, 27, 9, 0, 0, tz="UTC")
SIZE = (100, 34)


@pytest.fixture
def frozen() -> Iterator[None]:
    pendulum.travel_to(T0, freeze=True)
    try:
        yield
    finally:
        pendulum.travel_back()


def make_db(db: Path, *, answers: dict[str, Any] | None = None, labs: bool = False) -> str:
    """A patient with a procedure just started; ``answers`` saved into its time-out
    before the app opens (as the start screen or another terminal would); ``labs``:
    the US label's results entered on the patient page the week before."""
    with Store.open(db, "dr-test", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "PD-001"})
        if labs:
            for test, value in (
                ("platelets", 250),
                ("pt", 12),
                ("aptt", 30),
                ("urine_protein", 0.1),
            ):
                predose_store.add_lab(s, pt["id"], test, value, "2026-03-20", tz="Europe/Rome")
        proc = s.start_procedure(pt["id"], SETUP)
        if answers:
            predose_store.save_timeout(s, proc, answers, tz="Europe/Rome")
    return proc


def make_app(db: Path, label: str = "eu") -> SmaLogApp:
    """The site requires the dosing label's preset (the default requires nothing)."""
    return create_app(
        db,
        user="dr-test",
        settings=Settings(timezone="Europe/Rome", label=label, timeout_required="label"),
        clock=Clock(monotonic=False),
        settings_path=db.parent / "s.json",
    )


def drive(
    db: Path, script: Callable[[SmaLogApp, Pilot[Any]], Awaitable[None]], label: str = "eu"
) -> None:
    app = make_app(db, label)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("l")  # home -> the live screen
            await pilot.pause()
            assert isinstance(app.screen, ProcedureScreen)
            await script(app, pilot)

    asyncio.run(main())


async def keys(pilot: Pilot[Any], *names: str) -> None:
    for k in names:
        await pilot.press(k)
        await pilot.pause()


def status(app: SmaLogApp) -> str:
    screen = status_screen(app)
    assert screen is not None
    return screen.query_one(StatusLine).message


def events(db: Path) -> list[tuple[str, bool]]:
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        return [
            (r["kind"], r["voided_at"] is not None)
            for r in s.query("SELECT kind, voided_at FROM events ORDER BY seq")
        ]


def timeout_row(db: Path) -> dict[str, Any] | None:
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        return s.one("SELECT * FROM timeouts")


def audited(db: Path, table: str, field: str) -> list[Any]:
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        # the decoded log (schema 5 stores old values only; audit_entries gives the new)
        return [
            e["new_value"] for e in s.audit_entries(table, limit=100_000) if e["field"] == field
        ]


COMPLETE = {"consent": "yes", "skin": "intact", "antithrombotic": "none", "vp_shunt": "no"}


# ------------------------------------------------------------------ time-out
def test_a_complete_time_out_lets_the_first_attempt_record_with_no_key_of_its_own(
    tmp_path: Path,
) -> None:
    """Answers given before (and the US labs on file): the line says complete, the
    attempt key records at once and confirms the time-out in passing."""
    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE, labs=True)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        line = app.screen.query_one(TimeoutLine)
        assert line.state == "ok" and "✓ complete" in line.plain
        await keys(pilot, "a")
        assert isinstance(app.screen, ProcedureScreen)  # no dialog
        assert status(app).startswith("Attempt 1 recorded at ")
        assert "✓ confirmed" in app.screen.query_one(TimeoutLine).plain

    drive(db, script, label="us")
    assert events(db) == [("start", False), ("attempt", False)]
    row = timeout_row(db)
    assert row is not None
    assert row["confirmed_at"] is not None and row["confirmed_by"] == "dr-test"
    assert row["complete"] == 1 and row["missing"] == "" and row["reason"] is None
    assert row["platelets_lab_id"] is not None  # the results used, frozen


def test_a_missing_required_item_asks_for_a_reason_then_the_attempt_records(
    tmp_path: Path,
) -> None:
    """US label, no labs on file: a opens the time-out; ctrl+s without a reason is
    refused beside the reason field (nothing recorded); with a reason, the time-out
    is confirmed (reason stored and audited) and the attempt recorded."""
    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        assert app.screen.query_one(TimeoutLine).state == "todo"
        await keys(pilot, "a")
        dialog = app.screen
        assert isinstance(dialog, TimeoutDialog)
        assert dialog.focused is not None and dialog.focused.id == "platelets-value"
        note = str(dialog.query_one("#lab-platelets .field-note").render())
        assert note == "required, not answered"
        summary = str(dialog.query_one("#timeout-check").render())
        assert "REASON NEEDED" in summary and "platelet count" in summary
        await keys(pilot, "ctrl+s")
        assert app.screen is dialog  # refused: no reason
        assert "reason is needed" in str(dialog.query_one("#field-reason .field-error").render())
        assert events(db) == [("start", False)]
        dialog.query_one("#reason", Input).focus()
        await pilot.press(*"labs pending, urgent dose")
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, ProcedureScreen)
        assert status(app).startswith("Attempt 1 recorded at ")
        assert "after the time-out" in status(app)
        assert "with a reason" in app.screen.query_one(TimeoutLine).plain

    drive(db, script, label="us")
    assert events(db) == [("start", False), ("attempt", False)]
    row = timeout_row(db)
    assert row is not None
    assert row["reason"] == "labs pending, urgent dose"
    assert row["complete"] == 0
    assert row["missing"] == "platelets,coagulation,urine_protein"
    assert "labs pending, urgent dose" in audited(db, "timeouts", "reason")


def test_escape_from_the_time_out_records_no_attempt(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    make_db(db)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "a")
        assert isinstance(app.screen, TimeoutDialog)
        await keys(pilot, "escape")
        assert isinstance(app.screen, ProcedureScreen)
        assert "no attempt recorded" in status(app)

    drive(db, script)
    assert events(db) == [("start", False)]
    assert timeout_row(db) is None


@pytest.mark.parametrize("with_missing", [False, True])
def test_answers_and_a_flagged_lab_typed_in_the_time_out(
    tmp_path: Path, frozen: None, with_missing: bool
) -> None:
    """m opens the time-out before the puncture; the answers typed, a urine protein of
    0.35 g/L flagged beside its row (label: > 0.2); a date in the future refused
    beside its row and nothing saved; fixed, then saved with a reason and the lab
    stored as entered at the bedside; a then records at once."""
    db = tmp_path / "t.db"
    make_db(db)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "m")
        dialog = app.screen
        assert isinstance(dialog, TimeoutDialog)
        for name, value in (("consent", "yes"), ("skin", "intact"), ("vp_shunt", "no")):
            dialog.query_one(f"#{name}", Select).value = value
        dialog.query_one("#antithrombotic", Select).value = "none"
        dialog.query_one("#urine_protein-value", Input).value = "0.35"
        dialog.query_one("#urine_protein-date", Input).value = "2026-03-28"  # tomorrow
        await pilot.pause()
        error = str(dialog.query_one("#lab-urine_protein .field-error").render())
        assert "in the future" in error
        await keys(pilot, "ctrl+s")
        assert app.screen is dialog  # refused: nothing saved
        assert timeout_row(db) is None
        dialog.query_one("#urine_protein-date", Input).value = "2026-03-26"
        await pilot.pause()
        note = str(dialog.query_one("#lab-urine_protein .field-note").render())
        assert "urine protein 0.35 g/L > 0.2" in note
        assert dialog.query_one("#field-reason").display
        if with_missing:  # saved without its reason, with an answer missing too
            dialog.query_one("#vp_shunt", Select).clear()
            await keys(pilot, "ctrl+s")
            # the status line says both: the flag and what is missing (reviewer)
            assert "1 flagged; missing VP shunt — a asks for a reason" in status(app), status(app)
            await keys(pilot, "m")
            dialog = app.screen
            assert isinstance(dialog, TimeoutDialog)
            dialog.query_one("#vp_shunt", Select).value = "no"
        dialog.query_one("#reason", Input).value = "repeat sample sent; nephrology aware"
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, ProcedureScreen)
        assert "confirmed" in status(app) and "reason" in status(app)
        await keys(pilot, "a")
        assert status(app).startswith("Attempt 1 recorded at ")

    drive(db, script)
    row = timeout_row(db)
    assert row is not None and row["flags"] == "urine_protein" and row["complete"] == 1
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        lab = s.one("SELECT test, value, taken_on, source FROM labs")
    assert lab == {
        "test": "urine_protein",
        "value": 0.35,
        "taken_on": "2026-03-26",
        "source": "bedside",
    }
    assert [k for k, _ in events(db)] == ["start", "attempt"]


# ------------------------------------------------------------------ drug timing
def test_drug_keys_record_once_warn_before_the_limit_and_undo(tmp_path: Path, frozen: None) -> None:
    """v and w record once each (a second press records nothing and says so); the drug
    line counts the EU label's 6 h from the drawing up, turns to a warning 30 min
    before (class and a mark) and says when it has passed; u undoes w, then v."""
    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        line = app.screen.query_one(DrugLine)
        assert line.state == "idle" and "not drawn up" in line.plain
        await keys(pilot, "v", "v")
        assert "already" in status(app)  # the second press: nothing
        # said in the site's time like every time on the screen (09:00 UTC = 10:00 Rome)
        assert "recorded at 10:00:00;" in status(app) and "UTC" not in status(app)
        pendulum.travel_to(T0.add(minutes=20), freeze=True)
        await keys(pilot, "w", "w")
        assert "already" in status(app)
        line.tick()
        assert line.state == "running" and line.has_class("-running")
        assert "6:00:00 left" in line.plain
        pendulum.travel_to(T0.add(minutes=20, hours=5, seconds=30 * 60 + 1), freeze=True)
        line.tick()  # 29:59 left: the warning
        assert line.state == "warn" and line.has_class("-warn") and not line.has_class("-running")
        assert "! 29:59 left" in line.plain
        pendulum.travel_to(T0.add(minutes=20, hours=6, seconds=5), freeze=True)
        line.tick()
        assert line.state == "expired" and line.has_class("-expired")
        assert "LIMIT PASSED 00:05 ago" in line.plain
        await keys(pilot, "u")
        assert status(app).startswith("Undone: Drug drawn up")
        assert line.state == "idle"
        await keys(pilot, "u")
        assert status(app).startswith("Undone: Vial out of the fridge")

    drive(db, script)
    assert events(db) == [
        ("start", False),
        ("vial_out", True),
        ("drawn_up", True),
    ]


def test_the_injection_length_is_shown_and_flagged_outside_1_to_3_minutes(
    tmp_path: Path, frozen: None
) -> None:
    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "w", "a", "c", "i")
        pendulum.travel_to(T0.add(seconds=40), freeze=True)
        await keys(pilot, "j")
        line = app.screen.query_one(DrugLine)
        assert line.state == "warn" and "Injected in 0:40 ! shorter than 1 min" in line.plain
        milestones = str(app.screen.query_one("#milestones").render())
        assert "0:40 !" in milestones

    drive(db, script)


# ------------------------------------------------------------------ the patient page's labs
def test_a_lab_result_is_added_from_the_patient_page_and_bad_input_saves_nothing(
    tmp_path: Path, frozen: None
) -> None:
    """+ on the patient page: a platelet count of −3 and a date in the future get their
    messages beside the fields and nothing is saved; a good result is saved, listed,
    and offered to the next time-out."""
    from sma_log.ui.modals.lab import LabDialog
    from sma_log.ui.screens.home import HomeScreen
    from sma_log.ui.screens.patient import PatientScreen

    db = tmp_path / "t.db"
    make_db(db)
    app = make_app(db)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            home = app.screen
            assert isinstance(home, HomeScreen)
            home.query_one("#patients").focus()
            await keys(pilot, "enter")
            page = app.screen
            assert isinstance(page, PatientScreen)
            assert "No lab result on file" in str(page.query_one("#patient-labs-latest").render())
            await keys(pilot, "plus")
            dialog = app.screen
            assert isinstance(dialog, LabDialog)
            dialog.query_one("#test", Select).value = "platelets"
            dialog.query_one("#value", Input).focus()
            await pilot.press(*"-3")
            dialog.query_one("#taken_on", Input).focus()
            await pilot.press(*"2026-03-28")
            await pilot.pause()
            value_error = str(dialog.query_one("#field-value .field-error").render())
            date_error = str(dialog.query_one("#field-taken_on .field-error").render())
            assert "Platelet count must be a number" in value_error
            assert "in the future" in date_error
            await keys(pilot, "ctrl+s")
            assert app.screen is dialog  # nothing saved, the app running
            dialog.query_one("#value", Input).value = "180"
            dialog.query_one("#taken_on", Input).value = "2026-03-25"
            await keys(pilot, "ctrl+s")
            assert app.screen is page
            assert status(app).startswith("Platelet count 180 10^9/L of 2026-03-25 saved")
            table = page.query_one("#patient-labs")
            assert table.row_count == 1  # type: ignore[attr-defined]
            assert "Platelet count 180" in str(page.query_one("#patient-labs-latest").render())
            # A mistaken result: Delete on the list, one confirmation; kept, no longer used.
            await keys(pilot, "delete")
            assert "Highlight the lab result first" in status(app)
            table.focus()
            await keys(pilot, "delete")
            await keys(pilot, "y")
            assert app.screen is page
            assert "voided" in status(app)
            assert table.row_count == 0  # type: ignore[attr-defined]

    asyncio.run(main())
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        labs = s.query("SELECT test, value, taken_on, source FROM labs")
        voided = s.one("SELECT voided_at FROM labs")
    assert labs == [
        {"test": "platelets", "value": 180.0, "taken_on": "2026-03-25", "source": "patient_page"}
    ]
    assert voided is not None and voided["voided_at"] is not None  # kept, voided
    (inserted,) = audited(db, "labs", "*")  # the insert, a copy of the row, audited
    assert '"value": 180.0' in inserted and '"source": "patient_page"' in inserted


# ------------------------------------------------------------------ snapshot
def test_live_screen_with_the_time_out_line_and_the_drug_clock_warning(
    snap_compare: Any, tmp_path: Path
) -> None:
    """80x24, frozen clock: the time-out confirmed (complete), the drug drawn up in
    the pharmacy 5 h 40 min before the start (an entered time), 12 min 34 s into the
    procedure: 7 min 26 s left of the EU label's 6 h, the line in its warning colours."""
    db = tmp_path / "snap.db"
    pendulum.travel_to(T0, freeze=True)
    try:
        with Store.open(db, "dr-rossi", clock=Clock(monotonic=False)) as s:
            pt = s.create_patient({"study_code": "RM-014", "sma_type": "3"})
            pid = s.start_procedure(pt["id"], SETUP)
            predose_store.save_timeout(s, pid, COMPLETE, tz="Europe/Rome")
            predose_store.record_drug_time(s, pid, "vial_out", T0.subtract(hours=6))
            predose_store.record_drug_time(s, pid, "drawn_up", T0.subtract(hours=5, minutes=40))
            pendulum.travel_to(T0.add(minutes=2), freeze=True)
            predose_store.confirm_timeout(s, pid, tz="Europe/Rome")
            pendulum.travel_to(T0.add(minutes=3), freeze=True)
            s.record(pid, "attempt")
            pendulum.travel_to(T0.add(minutes=8), freeze=True)
            s.record(pid, "csf")
        pendulum.travel_to(T0.add(minutes=12, seconds=34), freeze=True)

        async def resume(pilot: Any) -> None:
            await pilot.press("l")
            await pilot.pause()

        app = create_app(
            db,
            user="dr-rossi",
            settings=Settings(timezone="Europe/Rome"),
            clock=Clock(monotonic=False),
            settings_path=tmp_path / "settings.json",
        )
        assert snap_compare(app, terminal_size=(80, 24), run_before=resume)
    finally:
        pendulum.travel_back()


def test_answers_given_on_the_start_screen_make_the_first_attempt_record_at_once(
    tmp_path: Path,
) -> None:
    """The standard flow with no key added: the four answers chosen on the start form
    (EU preset), ctrl+s starts, the line says complete, a records, no dialog."""
    from sma_log.ui.screens.start import StartScreen

    db = tmp_path / "t.db"
    app = make_app(db)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await keys(pilot, "plus")
            start = app.screen
            assert isinstance(start, StartScreen)
            await pilot.press(*"PD-009")
            for name, value in COMPLETE.items():
                start.query_one(f"#{name}", Select).value = "yes" if value == "yes" else value
            await keys(pilot, "ctrl+s")
            live = app.screen
            assert isinstance(live, ProcedureScreen)
            assert "✓ complete" in live.query_one(TimeoutLine).plain
            await keys(pilot, "a")
            assert app.screen is live
            assert status(app).startswith("Attempt 1 recorded at ")

    asyncio.run(main())
    assert events(db) == [("start", False), ("attempt", False)]
    row = timeout_row(db)
    assert row is not None and row["consent"] == 1 and row["vp_shunt"] == 0
    assert row["confirmed_at"] is not None and row["complete"] == 1


# ------------------------------------------------------------------ settings block
def test_the_settings_dialog_keeps_the_pre_dose_block_and_empty_limits_stay_empty(
    tmp_path: Path,
) -> None:
    """o on home: an unknown required item is refused beside its field (nothing
    saved); a platelet limit and the US preset are saved; the other limits stay empty."""
    import json

    from sma_log.ui.modals.settings import SettingsDialog

    db = tmp_path / "t.db"
    make_db(db)
    app = make_app(db)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await keys(pilot, "o")
            dialog = app.screen
            assert isinstance(dialog, SettingsDialog)
            dialog.query_one("#timeout_required", Input).value = "consent,xray"
            await pilot.pause()
            error = str(dialog.query_one("#field-timeout_required .field-error").render())
            assert "unknown time-out item 'xray'" in error
            await keys(pilot, "ctrl+s")
            assert app.screen is dialog
            assert not (tmp_path / "s.json").exists()
            dialog.query_one("#timeout_required", Input).value = "us"
            dialog.query_one("#platelets_min", Input).value = "50"
            await keys(pilot, "ctrl+s")
            assert app.screen is not dialog

    asyncio.run(main())
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["timeout_required"] == "us" and saved["platelets_min"] == 50.0
    assert saved["inr_max"] is None and saved["drug_warn_min"] == 30.0
    rules = app.settings.predose_rules()
    assert rules.platelets_min == 50.0 and "platelets" in rules.required


def test_by_default_nothing_is_required_and_the_first_attempt_records_as_before(
    tmp_path: Path,
) -> None:
    """The default settings require nothing: the line says so, a records at once and
    writes no time-out nobody did; an answer that raises a flag (consent not given)
    still asks for a reason."""
    db = tmp_path / "t.db"
    make_db(db)
    other = tmp_path / "flag.db"
    make_db(other, answers={"consent": "no"})

    def plain(path: Path) -> SmaLogApp:
        return create_app(
            path,
            user="dr-test",
            settings=Settings(timezone="Europe/Rome"),
            clock=Clock(monotonic=False),
            settings_path=tmp_path / "s.json",
        )

    async def main(app: SmaLogApp, flagged: bool) -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await keys(pilot, "l")
            line = app.screen.query_one(TimeoutLine)
            await keys(pilot, "a")
            if flagged:
                assert line.state == "flag"
                assert isinstance(app.screen, TimeoutDialog)
                assert "consent not confirmed" in str(
                    app.screen.query_one("#timeout-check").render()
                )
            else:
                assert line.state == "idle" and "not required" in line.plain
                assert status(app).startswith("Attempt 1 recorded at ")

    asyncio.run(main(plain(db), False))
    asyncio.run(main(plain(other), True))
    assert events(db) == [("start", False), ("attempt", False)]
    assert timeout_row(db) is None
    assert events(other) == [("start", False)]


def test_drug_times_typed_in_the_time_out_and_a_drawn_up_time_after_the_injection(
    tmp_path: Path, frozen: None
) -> None:
    """Times typed in the time-out (local HH:MM): the drawing up at 09:40 local, before
    the start, is stored as that instant and the drug line counts from it; after the
    injection started, a drawn-up time after it is refused beside its field, nothing
    saved, the dialog open."""
    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "m")
        dialog = app.screen
        assert isinstance(dialog, TimeoutDialog)
        dialog.query_one("#vial_out", Input).value = "09:30"  # Rome, = 08:30 UTC
        dialog.query_one("#drawn_up", Input).value = "09:40"
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, ProcedureScreen)
        line = app.screen.query_one(DrugLine)
        assert "5:40:00 left of 6 h, drawn 09:40" in line.plain  # 20 min before T0
        await keys(pilot, "a", "c", "i")
        pendulum.travel_to(T0.add(minutes=1), freeze=True)
        await keys(pilot, "m")
        dialog = app.screen
        assert isinstance(dialog, TimeoutDialog)
        dialog.query_one("#drawn_up", Input).value = "10:01"  # after the injection start
        await keys(pilot, "ctrl+s")
        assert app.screen is dialog
        error = str(dialog.query_one("#field-drawn_up .field-error").render())
        assert "cannot be after the injection start (10:00:00)" in error  # Rome time

    drive(db, script)
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        row = s.one("SELECT vial_out_at, drawn_up_at FROM procedures")
        drawn = s.query("SELECT value FROM events WHERE kind = 'drawn_up'")
    assert row == {
        "vial_out_at": "2026-03-27T08:30:00.000000Z",
        "drawn_up_at": "2026-03-27T08:40:00.000000Z",
    }
    assert len(drawn) == 1  # the refused time added nothing


def test_undoing_a_typed_drug_time_says_the_time_it_stood_for(tmp_path: Path, frozen: None) -> None:
    """u after a drawn-up time typed in the time-out names that time (09:40 local), not
    the moment it was typed (reviewer: it said the typing time)."""
    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await keys(pilot, "m")
        app.screen.query_one("#drawn_up", Input).value = "09:40"
        await keys(pilot, "ctrl+s", "u")
        assert status(app).startswith("Undone: Drug drawn up (09:40:00)"), status(app)

    drive(db, script)


def test_a_lab_date_another_tool_wrote_wrong_is_said_not_a_traceback(tmp_path: Path) -> None:
    """A labs row whose date is no date (written by another tool): the patient page,
    the live screen, m and a all stay up and say so; nothing is recorded."""
    import sqlite3

    from sma_log.ui.screens.home import HomeScreen
    from sma_log.ui.screens.patient import PatientScreen

    db = tmp_path / "t.db"
    make_db(db, answers=COMPLETE, labs=True)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE labs SET taken_on = '2026-13-45' WHERE test = 'platelets'")
    raw.close()

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        live = app.screen
        await keys(pilot, "m")
        assert isinstance(app.screen, TimeoutDialog)
        assert "Cannot be read" in str(app.screen.query_one("#timeout-failed").render())
        await keys(pilot, "escape", "a")
        assert app.screen is live
        assert "cannot be read" in status(app)
        await keys(pilot, "escape")
        home = app.screen
        assert isinstance(home, HomeScreen)
        home.query_one("#patients").focus()
        await keys(pilot, "enter")
        assert isinstance(app.screen, PatientScreen)
        assert "cannot be read" in status(app)

    drive(db, script, label="us")
    assert events(db) == [("start", False)]
