"""No key lands on the wrong screen (issue 9).

On the live procedure screen every key records. So no screen that leads to it may
use one of those keys for anything else (a key meant for home, pressed when the live
screen is already up, would record), and the key that opens the live screen records
nothing there (a double press never records).

The screens are found by walking the ``sma_log.ui`` package, not listed by hand: a
new screen that opens the live screen is checked without anyone remembering to.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from factories import SETUP
from textual.binding import Binding
from textual.pilot import Pilot
from textual.screen import Screen

import sma_log.ui
from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.patient import PatientScreen
from sma_log.ui.screens.procedure import RECORDING_ACTIONS, ProcedureScreen, recording_keys
from sma_log.ui.screens.start import StartScreen

#: Keys of the live screen that do not record: Escape goes home.
LIVE_NAVIGATION = {"escape"}


def all_screen_classes() -> list[type[Screen[Any]]]:
    """Every Screen (and dialog) class defined in the sma_log.ui package."""
    found: dict[str, type[Screen[Any]]] = {}
    for info in pkgutil.walk_packages(sma_log.ui.__path__, "sma_log.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Screen) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def leads_to_live_screen(cls: type[Any]) -> bool:
    """A screen whose own code opens the live screen."""
    source = inspect.getsource(cls)
    return "open_procedure(" in source or "ProcedureScreen(" in source


def keys_of(cls: type[Any]) -> set[str]:
    """Every key bound by the class and its bases (as Textual merges them)."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        for b in klass.__dict__.get("BINDINGS", ()):
            key = b.key if isinstance(b, Binding) else b[0]
            keys.update(k.strip() for k in key.split(","))
    return keys


def test_the_recording_keys_are_every_live_key_but_escape() -> None:
    live = keys_of(ProcedureScreen) - keys_of(Screen)
    assert recording_keys() == live - LIVE_NAVIGATION
    assert {"a", "r", "c", "i", "j", "e", "b", "p", "h", "d", "s", "n", "u", "x"} <= (
        recording_keys()
    )
    for b in ProcedureScreen.BINDINGS:
        assert isinstance(b, Binding)
        action = b.action.partition("(")[0]
        assert action in RECORDING_ACTIONS or b.key in LIVE_NAVIGATION, b


def test_the_walk_finds_the_screens_that_lead_to_the_live_screen() -> None:
    leading = {cls for cls in all_screen_classes() if leads_to_live_screen(cls)}
    assert {HomeScreen, StartScreen, PatientScreen} <= leading


@pytest.mark.parametrize(
    "cls",
    [c for c in all_screen_classes() if leads_to_live_screen(c) and c is not ProcedureScreen],
    ids=lambda c: c.__name__,
)
def test_no_screen_that_leads_to_the_live_screen_uses_a_recording_key(cls: type[Any]) -> None:
    clash = keys_of(cls) & recording_keys()
    assert not clash, f"{cls.__name__} binds {sorted(clash)}, which record on the live screen"


def test_the_apps_own_keys_are_not_recording_keys() -> None:
    """App bindings are active on every screen, the live one included."""
    assert not (keys_of(SmaLogApp) & recording_keys())


# ------------------------------------------------------------------ Pilot: double presses
def make_db(db: Path, attempts: int = 0) -> str:
    with Store.open(db, "dr-test", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "KEY-1"})
        proc = s.start_procedure(pt["id"], SETUP)
        for _ in range(attempts):
            s.record(proc, "attempt")
    return proc


def counts(db: Path) -> tuple[list[str], int]:
    """Every event kind in order, and the audit log's length."""
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        kinds = [e["kind"] for e in s.query("SELECT kind FROM events ORDER BY seq")]
        audit = s.one("SELECT count(*) AS n FROM audit_log")
    return kinds, audit["n"] if audit else 0


def drive(db: Path, script: Callable[[SmaLogApp, Pilot[Any]], Awaitable[None]]) -> None:
    app = create_app(
        db,
        user="dr-test",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=db.parent / "s.json",
    )

    async def main() -> None:
        async with app.run_test(size=(100, 34)) as pilot:
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(main())


@pytest.mark.parametrize("key", ["l", "enter"])
def test_the_resume_key_pressed_twice_records_nothing(tmp_path: Path, key: str) -> None:
    db = tmp_path / "k.db"
    make_db(db, attempts=1)
    before = counts(db)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        assert isinstance(app.screen, HomeScreen)
        await pilot.press(key, key)
        await pilot.pause()
        assert isinstance(app.screen, ProcedureScreen)

    drive(db, script)
    assert counts(db) == before


def test_the_start_key_pressed_twice_records_nothing_more(tmp_path: Path) -> None:
    db = tmp_path / "k.db"

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await pilot.press("plus")
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)
        await pilot.press(*"KEY-2")
        await pilot.press("ctrl+s", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ProcedureScreen)

    drive(db, script)
    assert counts(db)[0] == ["start"]


def test_enter_twice_on_a_patients_procedure_records_nothing(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    make_db(db, attempts=1)
    before = counts(db)

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        home = app.screen
        assert isinstance(home, HomeScreen)
        home.query_one("#patients").focus()
        await pilot.press("enter")
        await pilot.pause()
        patient = app.screen
        assert isinstance(patient, PatientScreen)
        patient.query_one("#patient-procedures").focus()
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcedureScreen)

    drive(db, script)
    assert counts(db) == before


def test_every_key_of_the_leading_screens_records_nothing_on_the_live_screen(
    tmp_path: Path,
) -> None:
    """Pressed on the live screen by mistake (the nurse thought home was up), each key
    of home, start and a patient's page records nothing and leaves the screen up."""
    db = tmp_path / "k.db"
    make_db(db, attempts=1)
    before = counts(db)
    leading: set[str] = set()
    for cls in all_screen_classes():
        if leads_to_live_screen(cls) and cls is not ProcedureScreen:
            leading |= keys_of(cls) - keys_of(Screen)
    leading -= {"escape"}  # goes home on every screen; it records nothing
    assert {"plus", "l", "k", "f", "t", "o", "ctrl+s"} <= leading
    pressed: list[str] = []

    async def script(app: SmaLogApp, pilot: Pilot[Any]) -> None:
        await pilot.press("l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, ProcedureScreen)
        for key in sorted(leading):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is live, (key, app.screen)
            pressed.append(key)

    drive(db, script)
    assert pressed == sorted(leading)
    assert counts(db) == before
