"""Shared fixtures: a real sma-log database in tmp_path, a patient, an open procedure.

No mocks: every fixture writes a real SQLite file through the real Store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from hypothesis import settings

from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

# CI (.ci/run sets CI=true on the project's runner) explores the same examples every
# run, so a red build is reproducible and never a roll of the dice; a developer's run
# keeps exploring new ones (a failure prints its seed and the example to add).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A complete, valid set-up (what the start screen confirms).
VALID_SETUP: dict[str, Any] = {
    "operator": "Dr Rossi",
    "assistant": "Nurse Bianchi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "position": "lateral_left",
    "needle_tip": "pencil_point",
    "needle_gauge": "22",
    "needle_length_mm": "90",
    "cobb_angle": "45.5",
    "axial_rotation": "moderate",
    "hardware": "posterior_fusion",
    "bmi": "18.5",
    "sedation": "local",
}

# A fixed instant the clock-travelling tests start from.
T0 = pendulum.datetime(2026, 3, 27, 9, 0, 0, tz="UTC")


@pytest.fixture
def setup_values() -> dict[str, Any]:
    return dict(VALID_SETUP)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path, "tester", clock=Clock(monotonic=False))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def patient(store: Store) -> dict[str, Any]:
    return store.create_patient(
        {
            "study_code": "SMA-001",
            "sma_type": "2",
            "birth_year": "2015",
            "sex": "female",
            "motor_status": "sitter",
        }
    )


@pytest.fixture
def open_procedure(store: Store, patient: dict[str, Any], setup_values: dict[str, Any]) -> str:
    return store.start_procedure(patient["id"], setup_values)


@pytest.fixture
def frozen() -> Iterator[pendulum.DateTime]:
    """Wall clock frozen at T0 (pendulum's testing helpers, backed by time-machine)."""
    pendulum.travel_to(T0, freeze=True)
    try:
        yield T0
    finally:
        pendulum.travel_back()
