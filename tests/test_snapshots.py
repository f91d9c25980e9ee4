"""SVG snapshots where the screen matters: the live procedure screen (frozen clock)
and its help screen.

Regenerate after an intended change with ``pytest tests/test_snapshots.py
--snapshot-update`` and look at the report before committing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest

from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import create_app

T0 = pendulum.datetime(2026, 3, 27, 9, 0, 0, tz="UTC")
SETUP = {
    "operator": "Dr Rossi",
    "assistant": "Nurse Bianchi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "position": "lateral_left",
    "needle_tip": "pencil_point",
    "needle_gauge": "22",
    "cobb_angle": "62",
    "axial_rotation": "severe",
    "hardware": "posterior_fusion",
    "sedation": "local",
}


@pytest.fixture
def live_db(tmp_path: Path) -> Iterator[Path]:
    """A procedure in progress: 3 attempts, 2 redirections, bone contact, CSF obtained."""
    db = tmp_path / "snap.db"
    with Store.open(db, "dr-rossi", clock=Clock(monotonic=False)) as s:
        pendulum.travel_to(T0, freeze=True)
        pt = s.create_patient({"study_code": "RM-014", "sma_type": "3", "birth_year": "1994"})
        pid = s.start_procedure(pt["id"], SETUP)
        for minutes, kind in ((1, "attempt"), (2, "redirect"), (3, "attempt"), (4, "redirect")):
            pendulum.travel_to(T0.add(minutes=minutes), freeze=True)
            s.record(pid, kind)
        pendulum.travel_to(T0.add(minutes=5), freeze=True)
        s.record(pid, "flag", "bone_contact")
        pendulum.travel_to(T0.add(minutes=6, seconds=30), freeze=True)
        s.record(pid, "attempt")
        pendulum.travel_to(T0.add(minutes=8), freeze=True)
        s.record(pid, "csf")
    # The screen is drawn 12 min 34 s after the start.
    pendulum.travel_to(T0.add(minutes=12, seconds=34), freeze=True)
    yield db
    pendulum.travel_back()


def _app(db: Path, tmp_path: Path) -> Any:
    return create_app(
        db,
        user="dr-rossi",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "settings.json",
    )


async def resume(pilot: Any) -> None:
    """The app opens on home; l resumes the procedure in progress."""
    await pilot.press("l")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_live_procedure_screen(
    snap_compare: Any, live_db: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(_app(live_db, tmp_path), terminal_size=size, run_before=resume)


def test_help_on_the_live_screen(snap_compare: Any, live_db: Path, tmp_path: Path) -> None:
    async def open_help(pilot: Any) -> None:
        await resume(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(_app(live_db, tmp_path), terminal_size=(80, 24), run_before=open_help)


def test_end_dialog(snap_compare: Any, live_db: Path, tmp_path: Path) -> None:
    async def open_end(pilot: Any) -> None:
        await resume(pilot)
        await pilot.press("i", "j", "e")
        await pilot.pause()

    assert snap_compare(_app(live_db, tmp_path), terminal_size=(100, 32), run_before=open_end)
