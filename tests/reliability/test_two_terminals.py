"""Fault class 2: two processes on one file (bedside + office with exports/reports)."""

from __future__ import annotations

from pathlib import Path

from .twoterm import run


def test_bedside_and_office_on_one_file(short_dir: Path) -> None:
    figures = run(short_dir, n_bedside=200, n_office=200, cli_every=50, pace=0.01)
    assert figures["errors"] == 0, figures
    assert figures["locked_errors"] == 0
    assert figures["lost"] == [], figures
    assert figures["audit_problems"] == [], figures
    assert figures["integrity"] == "ok"
    assert figures["bedside_actions"] >= 200 and figures["office_actions"] >= 200
    assert figures["office_cli_runs"] >= 4
