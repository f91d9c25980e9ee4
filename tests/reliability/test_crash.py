"""Fault class 1: SIGKILL at any point of random bedside and follow-up flows.

See crash.py for the driver; benchmarks/stress_crash.py runs 100 kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .crash import CrashDriver

pytestmark = [
    pytest.mark.e2e,
]


@pytest.mark.parametrize("seed", [11, 12])
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(short_dir: Path, seed: int) -> None:
    driver = CrashDriver(short_dir, seed)
    figures = driver.run(kills=5)
    report = figures.as_dict()
    assert figures.failures == [], report
    assert figures.kills == 5
    assert figures.lost == 0 and figures.duplicated == 0, report
    assert figures.shown == figures.found, report
    assert figures.shown >= 8, report  # the flows did something
