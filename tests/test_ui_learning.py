"""The learning-curve screen (issue 14) through the real app (Pilot): opened from the
report with ``c``, the CUSUM and LC-CUSUM of the chosen operator drawn from a worker
with the parameters in the caption, and the learning settings in the settings dialog
(a bad value: a message beside the field, nothing saved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_ui_report import clinic, make_app, run, settle
from textual.widgets import Input, Select, Static

from sma_log.config import Settings
from sma_log.domain import learning
from sma_log.storage.learning import iter_learning_rows
from sma_log.storage.store import Store
from sma_log.ui.modals.settings import SettingsDialog
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.learning import LearningScreen, summary
from sma_log.ui.screens.report import ReportScreen
from sma_log.ui.widgets.plots import CusumPlot, LcCusumPlot

# The clinic of test_ui_report (its fixture ``clinic``): Dr Rossi 1st-attempt outcomes
# in start order: 3, 2, 1, 1 attempts → failures 1, 1, 0, 0; Dr Conti 5, 4 → 1, 1;
# Dr Bianchi 1, 2 (the third abandoned before the skin: not charted) → 0, 1.
__all__ = ["clinic"]  # the fixture, used by name


def curves(db: Path, params: learning.Parameters | None = None) -> list[learning.Curve]:
    with Store.open(db, "t", create=False, readonly=True) as s:
        rows = list(iter_learning_rows(s))
    return learning.curves(rows, params or learning.Parameters())


def test_c_opens_the_curves_of_each_operator(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)
    expected = {c.operator: c for c in curves(clinic)}
    assert [p.failure for p in expected["Dr Rossi"].points] == [1, 1, 0, 0]
    assert [p.failure for p in expected["Dr Bianchi"].points] == [0, 1]

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LearningScreen)
        select = screen.query_one("#learning-operator", Select)
        assert select.value == "Dr Bianchi"  # the first by name
        caption = str(screen.query_one("#learning-caption", Static).render())
        assert "p0 0.1 (acceptable), p1 0.2 (unacceptable), α 0.1, β 0.1" in caption
        assert "h0 -2.71" in caption and "h1 2.71" in caption and "LC-CUSUM h 2.20" in caption
        text = str(screen.query_one("#learning-summary", Static).render())
        assert text == summary(expected["Dr Bianchi"])
        select.value = "Dr Rossi"
        await settle(pilot)
        text = str(screen.query_one("#learning-summary", Static).render())
        assert text == summary(expected["Dr Rossi"])
        assert "Dr Rossi: n 4, failures 2 (50.0%)" in text
        assert screen.query_one(CusumPlot).border_title == "CUSUM of failure: Dr Rossi"
        assert screen.query_one(CusumPlot).border_subtitle == "h1 2.71 (red) · h0 -2.71 (green)"
        assert screen.query_one(LcCusumPlot).border_subtitle == "h 2.20 (green)"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ReportScreen)

    run(app, script)


def test_the_settings_decide_the_curves(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)
    app.settings = Settings(
        timezone="Europe/Rome", learning_failure="first-pass", learning_p0=0.2, learning_p1=0.4
    )

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        caption = str(app.screen.query_one("#learning-caption", Static).render())
        assert caption.startswith("failure = not a first-pass success")
        assert "p0 0.2 (acceptable), p1 0.4 (unacceptable)" in caption

    run(app, script)


def test_learning_screen_snapshot(snap_compare: Any, clinic: Path, tmp_path: Path) -> None:
    """120x40: Dr Rossi's CUSUM (with h0, h1) beside the LC-CUSUM (with h)."""

    async def open_curves(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        pilot.app.screen.query_one("#learning-operator", Select).value = "Dr Rossi"
        await settle(pilot)

    assert snap_compare(make_app(clinic, tmp_path), terminal_size=(120, 40), run_before=open_curves)


def test_bad_learning_settings_are_refused_beside_the_field(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, SettingsDialog)
        dialog = app.screen

        def field(name: str, value: str) -> None:
            dialog.query_one(f"#{name}", Input).value = value

        def error(name: str) -> str:
            return str(dialog.query_one(f"#field-{name} .field-error", Static).render())

        field("learning_alpha", "1.2")
        await pilot.pause()
        assert error("learning_alpha") == "Learning: α must be a number from 0 to 1"
        field("learning_alpha", "1")  # in the field's range, refused by the domain rule
        await pilot.pause()
        assert error("learning_alpha") == "α must be between 0 and 1 (got 1)"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsDialog)
        # each value good alone, but p0 not below p1: said beside p1, nothing saved
        field("learning_alpha", "0.1")
        field("learning_p0", "0.3")
        await pilot.pause()
        assert error("learning_alpha") == "" and error("learning_p0") == ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsDialog)
        error = app.screen.query_one("#field-learning_p1 .field-error", Static)
        assert "p0 (acceptable failure rate, 0.3) must be below p1" in str(error.render())
        assert not (tmp_path / "s.json").exists()
        # a good set is saved
        field("learning_p1", "0.45")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, SettingsDialog)

    run(app, script)
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert (saved["learning_p0"], saved["learning_p1"], saved["learning_alpha"]) == (
        0.3,
        0.45,
        0.1,
    )


def test_f1_on_the_report_lists_c_although_the_footer_does_not(
    clinic: Path, tmp_path: Path
) -> None:
    from sma_log.ui.screens.help import HelpScreen

    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert any("Learning curves (CUSUM)" in line for line in app.screen.lines())

    run(app, script)
