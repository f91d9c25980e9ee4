"""The nurse's flow through the real app (Pilot), on real files, with time travel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from factories import SETUP
from textual.widgets import DataTable

from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.modals.followup import FollowupDialog
from sma_log.ui.modals.score import ScoreDialog
from sma_log.ui.modals.settings import SettingsDialog
from sma_log.ui.screens.followups import FollowupScreen
from sma_log.ui.screens.home import HomeScreen

NOW = pendulum.datetime(2026, 5, 10, 12, 0, tz="UTC")


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Path]:
    """Four ended procedures whose 72-hour calls are overdue, due, upcoming and missed."""
    db = tmp_path / "clinic.db"
    for code, hours_ago in (("MISSED", 120), ("UPCOMING", 10), ("OVERDUE", 80), ("DUE", 66)):
        pendulum.travel_to(NOW.subtract(hours=hours_ago), freeze=True)
        with Store.open(db, "dr-rossi", clock=Clock(monotonic=False)) as s:
            pt = s.create_patient({"study_code": code})
            pid = s.start_procedure(pt["id"], SETUP)
            for kind in ("attempt", "csf", "injection_start", "injection_end"):
                s.record(pid, kind)
            s.end_procedure(pid, {"drug_delivered": "yes"})
            s.set_score(pid, 5)
    pendulum.travel_to(NOW, freeze=True)
    yield db
    pendulum.travel_back()


def make_app(db: Path, tmp_path: Path, user: str = "nurse-a") -> SmaLogApp:
    return create_app(
        db,
        user=user,
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "settings.json",
    )


def codes(app: SmaLogApp) -> list[tuple[str, str]]:
    table = app.screen.query_one("#queue", DataTable)
    return [
        (str(table.get_row_at(i)[1]), str(table.get_row_at(i)[0])) for i in range(table.row_count)
    ]


def run(app: SmaLogApp, script: Any) -> None:
    async def main() -> None:
        async with app.run_test(size=(130, 34)) as pilot:
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


def test_queue_order_and_status_words(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FollowupScreen)
        assert codes(app) == [
            ("OVERDUE", "OVERDUE"),
            ("DUE", "due now"),
            ("UPCOMING", "upcoming"),
            ("MISSED", "missed"),
        ]
        # The clock moves on: UPCOMING's call becomes due without a restart.
        pendulum.travel_to(NOW.add(hours=52), freeze=True)
        app.screen.refresh_from_store()  # what its 30-second timer does
        await pilot.pause()
        assert ("UPCOMING", "due now") in codes(app)

    run(app, script)


def test_score_entry_no_answer_twice_then_a_score_and_late_entry(
    clinic: Path, tmp_path: Path
) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        # OVERDUE is first: two calls without an answer.
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        assert codes(app)[0] == ("OVERDUE", "OVERDUE")
        table = app.screen.query_one("#queue", DataTable)
        assert str(table.get_row_at(0)[7]) == "2"
        # Third call answered: score 4, no adverse events, saved with ctrl+s.
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, FollowupDialog)
        await pilot.press("4", "ctrl+n", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, FollowupScreen)
        assert "OVERDUE" not in [c for c, _ in codes(app)]
        # MISSED (window closed) is still enterable, and flagged late.
        table = app.screen.query_one("#queue", DataTable)
        table.move_cursor(row=[c for c, _ in codes(app)].index("MISSED"))
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("5", "ctrl+n", "ctrl+s")
        await pilot.pause()

    run(app, script)
    with Store.open(clinic, "reader", clock=Clock(monotonic=False)) as s:
        rows = {
            r["study_code"]: r
            for r in s.query(
                "SELECT f.*, pt.study_code FROM followups f JOIN procedures p "
                "ON p.id = f.procedure_id JOIN patients pt ON pt.id = p.patient_id "
                "WHERE f.kind = 'day3'"
            )
        }
        over = rows["OVERDUE"]
        assert (over["state"], over["satisfaction"], over["contact_attempts_n"]) == ("done", 4, 2)
        assert (over["pdph"], over["radicular_pain"], over["nausea_vomiting"]) == (0, 0, 0)
        assert over["assessor"] == "nurse-a" and over["late"] == 0
        assert rows["MISSED"]["state"] == "done" and rows["MISSED"]["late"] == 1
        assert len(s.contact_attempts(over["id"])) == 2


def test_editing_a_followup_is_audited(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("3", "ctrl+n", "ctrl+s")
        await pilot.pause()
        await pilot.press("v")  # show done ones
        await pilot.pause()
        table = app.screen.query_one("#queue", DataTable)
        rows = [
            (str(table.get_row_at(i)[0]), str(table.get_row_at(i)[4]))
            for i in range(table.row_count)
        ]
        row = rows.index(("done", "72-h call"))
        table.move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FollowupDialog) and "Edit" in dialog.heading
        await pilot.press("backspace", "5", "ctrl+s")
        await pilot.pause()

    run(app, script)
    with Store.open(clinic, "reader", clock=Clock(monotonic=False)) as s:
        edits = s.query(
            "SELECT * FROM audit_log WHERE table_name = 'followups' AND field = 'satisfaction' "
            "AND user = 'nurse-a' ORDER BY id"
        )
        assert [(e["old_value"], e["new_value"]) for e in edits] == [(None, "3"), ("3", "5")]


def test_bad_score_is_shown_beside_the_field_and_nothing_saved(
    clinic: Path, tmp_path: Path
) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("6")
        await pilot.pause()
        error = app.screen.query_one("#field-satisfaction .field-error")
        assert "Score must be a whole number from 1 to 5" in str(error.render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, FollowupDialog)  # still open, nothing saved

    run(app, script)
    with Store.open(clinic, "reader", clock=Clock(monotonic=False)) as s:
        assert s.one(
            "SELECT count(*) AS n FROM followups WHERE state = 'done' AND kind = 'day3'"
        ) == {"n": 0}


def test_a_followup_entered_in_one_app_appears_in_the_others_queue(
    clinic: Path, tmp_path: Path
) -> None:
    station = make_app(clinic, tmp_path, "nurse-a")
    bedside = make_app(clinic, tmp_path, "nurse-b")

    async def main() -> None:
        async with station.run_test(size=(130, 34)) as p1, bedside.run_test(size=(130, 34)) as p2:
            await p1.press("f")
            await p2.press("f")
            await p1.pause()
            await p2.pause()
            assert codes(bedside)[0] == ("OVERDUE", "OVERDUE")
            await p1.press("enter")
            await p1.pause()
            await p1.press("5", "ctrl+n", "ctrl+s")
            await p1.pause()
            # The other instance notices the file changed (PRAGMA data_version poll).
            for _ in range(30):
                await p2.pause(0.1)
                if "OVERDUE" not in [c for c, _ in codes(bedside)]:
                    break
            assert "OVERDUE" not in [c for c, _ in codes(bedside)]

    asyncio.run(main())


def test_pending_5_minute_score_from_the_queue(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Store.open(db, "dr", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "LATER-1"})
        pid = s.start_procedure(pt["id"], SETUP)
        for kind in ("attempt", "csf", "injection_start", "injection_end"):
            s.record(pid, kind)
        s.end_procedure(pid, {"drug_delivered": "yes"})
    app = make_app(db, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        assert codes(app)[0][0] == "LATER-1"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ScoreDialog)
        await pilot.press("5")
        await pilot.pause()

    run(app, script)
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        assert s.one("SELECT satisfaction_5min FROM procedures") == {"satisfaction_5min": 5}


def test_unknown_time_zone_is_refused_in_settings(tmp_path: Path) -> None:
    app = make_app(tmp_path / "t.db", tmp_path)

    async def script(pilot: Any) -> None:
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, SettingsDialog)
        app.screen.query_one("#timezone").focus()
        await pilot.press("ctrl+a", *"Mars/Olympus")
        await pilot.pause()
        error = app.screen.query_one("#field-timezone .field-error")
        assert "Unknown time zone" in str(error.render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsDialog)

    run(app, script)
    assert not (tmp_path / "settings.json").exists()
