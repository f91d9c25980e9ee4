"""Fault class 3, the real forms (Pilot): hostile text typed into the start screen,
the note dialog and the follow-up close dialog is stored cleaned and shown as the
characters typed — never as markup, never as a terminal escape — and the app runs on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import Input

from sma_log.config import Settings
from sma_log.domain import fields
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import create_app
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.procedure import ProcedureScreen
from sma_log.ui.screens.start import StartScreen
from sma_log.ui.widgets.bedside import AttemptList

from .hostile import SPECIALS, check_text

NOTES = [
    "[red]x[/]",
    "[bold]bold?[/bold] [link=https://evil.example/]l[/link]",
    "[@click=app.quit]quit[/] still here",
    "\x1b[31mred\x1b[0m \x1b]0;pwned\x07 tail",
    "RTL \u202eevil\u202c مرحبا 👩‍⚕️",
    "a\x00b\x07c [/]",
]


def _screen_text(app: Any) -> str:
    """What the terminal shows: every visible line of the composited screen."""
    lines = app.screen._compositor.render_update(full=True).strips  # type: ignore[attr-defined]
    return "\n".join("".join(seg.text for seg in strip) for strip in lines)


def test_hostile_text_in_real_forms_shows_as_typed(tmp_path: Path) -> None:
    db = tmp_path / "ui.db"
    app = create_app(
        db,
        user="[b]ui[/b]",
        settings=Settings(timezone="UTC"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "s.json",
    )
    shown: list[tuple[str, str]] = []
    operator = "[bold]Dr[/bold] [@click=app.quit]X[/] \x1b[2J"

    async def main() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, HomeScreen)
            await pilot.press("plus")
            await pilot.pause()
            assert isinstance(app.screen, StartScreen)
            await pilot.press(*"UI-1")
            app.screen.query_one("#operator", Input).value = operator
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, ProcedureScreen), app.screen
            await pilot.press("a")
            for note in NOTES:
                await pilot.press("n")
                await pilot.pause()
                app.screen.query_one(Input).value = note
                await pilot.press("enter")
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, ProcedureScreen), screen
                plain = str(screen.query_one(AttemptList).render())
                shown.append((note, plain))
                assert _screen_text(app)  # the whole screen still renders
            assert app.is_running

    asyncio.run(main())
    for note, plain in shown:
        cleaned = fields.NOTE_FIELD.parse(note)
        assert cleaned is not None and cleaned in plain, (note, plain)
        assert not check_text(plain.replace("\n", " "))
    with Store.open(db, "reader") as s:
        row = s.one("SELECT operator FROM procedures")
        assert row is not None and row["operator"] == fields.SETUP_FIELDS["operator"].parse(
            operator
        )
        notes = [r["value"] for r in s.query("SELECT value FROM events WHERE kind = 'note'")]
        assert notes == [fields.NOTE_FIELD.parse(n) for n in NOTES]
        assert "[red]x[/]" in notes
        for r in s.query("SELECT DISTINCT user FROM audit_tx"):
            assert r["user"] == "[b]ui[/b]"


def test_markup_specials_never_crash_the_note_flow(tmp_path: Path) -> None:
    """Every special string, one after another, through the note dialog."""
    db = tmp_path / "ui2.db"
    with Store.open(db, "t", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "UI-2"})
        proc = s.start_procedure(
            pt["id"],
            {
                "operator": "x",
                "regimen": "std_maintenance",
                "guidance": "landmark",
                "approach": "midline",
                "level_intended": "L4-L5",
                "sedation": "none",
            },
        )
        s.record(proc, "attempt")
    app = create_app(
        db,
        user="t",
        settings=Settings(timezone="UTC"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "s.json",
    )
    accepted: list[str] = []

    async def main() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await pilot.press("l")  # the app opens on home: resume the procedure
            await pilot.pause()
            assert isinstance(app.screen, ProcedureScreen)
            for text in SPECIALS:
                await pilot.press("n")
                await pilot.pause()
                app.screen.query_one(Input).value = text
                await pilot.press("enter")
                await pilot.pause()
                if not isinstance(app.screen, ProcedureScreen):  # refused: empty, say why
                    await pilot.press("escape")
                    await pilot.pause()
                else:
                    accepted.append(text)
                assert isinstance(app.screen, ProcedureScreen)
            assert app.is_running

    asyncio.run(main())
    with Store.open(db, "reader") as s:
        notes = [r["value"] for r in s.query("SELECT value FROM events WHERE kind = 'note'")]
    assert notes == [fields.NOTE_FIELD.parse(t) for t in accepted]
    for n in notes:
        assert not check_text(n, fields.NOTE_FIELD)
