"""F1 and ? open the keys of the screen in front, generated from its bindings (issue 9)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from factories import SETUP
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Input

from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.modals.note import NoteDialog
from sma_log.ui.modals.score import ScoreDialog
from sma_log.ui.screens.help import HelpScreen
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.procedure import ProcedureScreen


def make_db(db: Path) -> None:
    with Store.open(db, "dr-test", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "HELP-1"})
        proc = s.start_procedure(pt["id"], SETUP)
        s.record(proc, "attempt")
        pt2 = s.create_patient({"study_code": "HELP-2"})
        done = s.start_procedure(pt2["id"], SETUP)
        for kind in ("attempt", "csf", "injection_start", "injection_end"):
            s.record(done, kind)
        s.end_procedure(done, {"drug_delivered": "yes"})


def drive(
    tmp_path: Path, script: Callable[[SmaLogApp, Pilot[Any]], Awaitable[None]], size=(100, 34)
) -> None:
    db = tmp_path / "h.db"
    make_db(db)
    app = create_app(
        db,
        user="dr-test",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "s.json",
    )

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(main())


def screen_text(app: SmaLogApp) -> str:
    """What the terminal shows: every visible line of the composited screen."""
    lines = app.screen._compositor.render_update(full=True).strips  # type: ignore[attr-defined]
    return "\n".join("".join(seg.text for seg in strip) for strip in lines)


def descriptions(cls: type[Any]) -> list[str]:
    return [b.description for b in cls.BINDINGS if isinstance(b, Binding) and b.description]


@pytest.mark.parametrize("key", ["f1", "question_mark"])
def test_help_on_home_lists_homes_keys_and_escape_closes_it(tmp_path: Path, key: str) -> None:
    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        home = app.screen
        assert isinstance(home, HomeScreen)
        await pilot.press(key)
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        lines = help_screen.lines()
        assert lines[0] == "Home"
        for binding in HomeScreen.BINDINGS:
            assert isinstance(binding, Binding)
            assert any(line.endswith(f"  {binding.description}") for line in lines), binding
        assert "+  New procedure" in lines and "l  Live procedure" in lines
        assert "Enter  Open the highlighted row" in lines
        assert "F1 / ?  Help" in lines and "^q  Quit" in lines
        # Live-screen keys are not home's: not listed as home keys.
        assert not any(line.startswith("a  ") for line in lines)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is home

    drive(tmp_path, script)


def test_help_on_the_live_screen_lists_every_live_key(tmp_path: Path) -> None:
    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await pilot.press("l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, ProcedureScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        lines = help_screen.lines()
        assert lines[0] == "Live procedure"
        for description in descriptions(ProcedureScreen):
            assert any(line.endswith(f"  {description}") for line in lines), description
        assert "u / ^z  Undo" in lines
        assert "x  Cancel start" in lines
        assert "New skin puncture" in screen_text(app)  # the binding's tooltip explains it
        await pilot.press("question_mark")  # ? again closes it
        await pilot.pause()
        assert app.screen is live
        await pilot.press("f1", "escape")
        await pilot.pause()
        assert app.screen is live  # Escape closed the help, not the live screen

    drive(tmp_path, script)
    with Store.open(tmp_path / "h.db", "r") as s:
        assert s.one("SELECT count(*) AS n FROM events") == {"n": 8}  # nothing recorded


def test_help_in_a_dialog_lists_the_dialogs_keys(tmp_path: Path) -> None:
    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await pilot.press("k")  # the pending score of HELP-2
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ScoreDialog)
        await pilot.press("f1")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        lines = help_screen.lines()
        assert lines[0] == "5-minute score"
        assert "1  Very dissatisfied" in lines and "5  Very satisfied" in lines
        assert "l  Later" in lines
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is dialog

    drive(tmp_path, script)


def test_a_question_mark_typed_in_a_field_stays_text(tmp_path: Path) -> None:
    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await pilot.press("l", "n")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, NoteDialog)
        await pilot.press(*"why?")
        await pilot.pause()
        assert app.screen is dialog
        assert dialog.query_one(Input).value == "why?"

    drive(tmp_path, script)


def test_help_fits_80x24(tmp_path: Path) -> None:
    """At 80x24 the live screen's help shows every key without scrolling."""
    seen: dict[str, str] = {}

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await pilot.press("l", "f1")
        await pilot.pause()
        seen["text"] = screen_text(app)

    drive(tmp_path, script, size=(80, 24))
    text = seen["text"]
    for binding in ProcedureScreen.BINDINGS:
        assert isinstance(binding, Binding)
        assert f"{binding.description}  {binding.tooltip}" in text, (binding, text)
    assert "Quit" in text and "Help" in text
