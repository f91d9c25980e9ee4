"""Fault class 8: the wall clock jumps (NTP step, manual change) during a procedure.

The app runs under Pilot while pendulum/time-machine move the wall clock. With the
real monotonic ``Clock()`` the timer and the stored event times follow CLOCK_BOOTTIME
(time-machine does not move it) and ignore the jumps; with ``Clock(monotonic=False)``
(after a reboot) it is wall time minus start, clamped at zero. Stored event times
never go backwards: the Store stamps an event no earlier than the last one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pendulum
import pytest
from factories import SETUP as BASE_SETUP

from sma_log.config import Settings
from sma_log.domain.clock import Clock, from_text
from sma_log.storage.store import Store
from sma_log.ui.app import create_app
from sma_log.ui.screens.procedure import ProcedureScreen

T0 = pendulum.datetime(2026, 3, 29, 0, 30, tz="UTC")  # the night Europe/Rome springs forward
SETUP = {**BASE_SETUP, "guidance": "us_realtime", "sedation": "local"}


def _seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return h * 3600 + m * 60 + s


def run_with_jumps(tmp_path: Path, monotonic: bool, jumps: list[float]) -> dict[str, Any]:
    """Start a procedure at T0, then for each jump move the wall clock by that many
    seconds (from where it is), record an attempt and read the timer."""
    db = tmp_path / "clock.db"
    clock = Clock(monotonic=monotonic)
    pendulum.travel_to(T0, freeze=False)
    try:
        with Store.open(db, "t", clock=clock) as s:
            pt = s.create_patient({"study_code": "CLK-1"})
            proc = s.start_procedure(pt["id"], SETUP)
        app = create_app(
            db,
            user="t",
            settings=Settings(timezone="Europe/Rome"),
            clock=clock,
            settings_path=tmp_path / "s.json",
        )
        timers: list[int] = []

        async def main() -> None:
            async with app.run_test(size=(100, 32)) as pilot:
                await pilot.pause()
                await pilot.press("l")  # the app opens on home: resume the procedure
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, ProcedureScreen)
                for jump in jumps:
                    pendulum.travel(seconds=jump, freeze=False)
                    await pilot.press("a")
                    await pilot.pause(0.3)  # a timer tick (every 0.25 s)
                    timers.append(_seconds(screen.query_one("#timer").value))
                assert app.is_running

        asyncio.run(main())
    finally:
        pendulum.travel_back()
    with Store.open(db, "reader") as s:
        view = s.load_procedure(proc)
        stamps = [e.at for e in view.events]
        rows = s.query("SELECT at FROM events WHERE procedure_id = ? ORDER BY seq", (proc,))
    return {
        "timers": timers,
        "stamps": stamps,
        "stored": [from_text(r["at"]) for r in rows],
        "attempts": view.state.attempt_count,
    }


JUMPS = [5, -3600, 7200, -86400 * 30, 1, 3600 * 24 * 365 * 5, -3600 * 24 * 365 * 5]


def test_monotonic_timer_ignores_wall_clock_jumps(tmp_path: Path) -> None:
    if not Clock().monotonic:
        pytest.skip("no CLOCK_BOOTTIME / boot id here")
    got = run_with_jumps(tmp_path, True, JUMPS)
    assert got["attempts"] == len(JUMPS)
    # real time passed is a few seconds: the timer shows that, whatever the wall did
    assert all(0 <= t <= 60 for t in got["timers"]), got["timers"]
    assert got["timers"] == sorted(got["timers"])
    assert got["stored"] == sorted(got["stored"])  # never backwards
    # and the stored times follow the monotonic clock too: a wall clock moved by years
    # in the middle of the procedure does not put an attempt years after the start
    start = got["stored"][0]
    assert all(0 <= (t - start).total_seconds() <= 60 for t in got["stored"]), got["stored"]


def test_wall_clock_timer_never_negative_and_times_stay_ordered(tmp_path: Path) -> None:
    got = run_with_jumps(tmp_path, False, JUMPS)
    assert got["attempts"] == len(JUMPS)
    assert all(t >= 0 for t in got["timers"]), got["timers"]
    # stepping back an hour shows 00:00, not a negative time
    assert got["timers"][1] == 0
    stored = got["stored"]
    assert stored == sorted(stored), stored
    # a step back is clamped to the last stored time, not recorded in the past
    assert stored[2] == stored[1]


def test_step_back_and_forward_keep_derived_minutes_non_negative(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    pendulum.travel_to(T0, freeze=True)
    try:
        with Store.open(db, "t", clock=Clock(monotonic=False)) as s:
            pt = s.create_patient({"study_code": "CLK-2"})
            proc = s.start_procedure(pt["id"], SETUP)
            pendulum.travel_to(T0.add(minutes=2), freeze=True)
            s.record(proc, "attempt")
            pendulum.travel_to(T0.subtract(hours=1), freeze=True)  # NTP steps back
            for kind in ("csf", "injection_start", "injection_end"):
                s.record(proc, kind)
            view = s.end_procedure(proc, {"drug_delivered": "yes"})
            row = view.row
    finally:
        pendulum.travel_back()
    assert row["procedure_min"] is not None and row["procedure_min"] >= 0
    assert row["puncture_min"] is not None and row["puncture_min"] >= 0
    ats = [e.at for e in view.events]
    assert ats == sorted(ats)
