"""The report screen through the real app (Pilot), on a real database, with time travel.

The screen's table must be the CLI's table of :func:`stats.summarise` over the same
rows, recomputed when a filter changes, and never recomputed from a half-typed date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from textual.widgets import DataTable, Input, Select, Static

from sma_log.config import Settings
from sma_log.domain import stats
from sma_log.domain.clock import Clock
from sma_log.domain.report_table import table_rows
from sma_log.storage.analysis import iter_analysis_rows
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.screens.base import StatusLine
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.report import (
    Params,
    ReportScreen,
    compute,
    compute_plots,
    long_rows,
    parse_only,
)
from sma_log.ui.widgets.plots import (
    PLOT_COLUMNS,
    AttemptsPlot,
    LearningCurvePlot,
    PlotCollector,
    TimeByGroupPlot,
)

T0 = pendulum.datetime(2026, 3, 2, 9, 0, tz="UTC")
NOW = pendulum.datetime(2026, 4, 20, 12, 0, tz="UTC")
BASE = {
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "level_intended": "L3-L4",
    "sedation": "none",
}
# (day, patient, operator, approach, attempts, minutes to the end, score at 5 min)
PROCEDURES = [
    (0, "RP-001", "Dr Rossi", "paramedian", 3, 18, 4),
    (1, "RP-002", "Dr Bianchi", "midline", 1, 7, 5),
    (3, "RP-003", "Dr Rossi", "paramedian", 2, 14, 5),
    (7, "RP-001", "Dr Rossi", "midline", 1, 9, 5),
    (9, "RP-004", "Dr Conti", "transforaminal", 5, 31, 3),
    (14, "RP-002", "Dr Bianchi", "paramedian", 2, 12, 4),
    (20, "RP-003", "Dr Rossi", "paramedian", 1, 8, 5),
    (28, "RP-004", "Dr Conti", "transforaminal", 4, 22, 4),
    (35, "RP-005", "Dr Bianchi", "midline", 0, 6, None),  # abandoned before the skin
]


def build(db: Path) -> None:
    """The procedures above, each written through the Store at its own instant."""
    with Store.open(db, "dr-rossi", clock=Clock(monotonic=False)) as s:
        patients: dict[str, str] = {}
        for day, code, operator, approach, attempts, end_min, score in PROCEDURES:
            start = T0.add(days=day)
            pendulum.travel_to(start, freeze=True)
            if code not in patients:
                patients[code] = s.create_patient({"study_code": code, "sma_type": "2"})["id"]
            pid = s.start_procedure(
                patients[code], {**BASE, "operator": operator, "approach": approach}
            )
            for i in range(attempts):
                pendulum.travel_to(start.add(minutes=2 + 2 * i), freeze=True)
                s.record(pid, "attempt")
            if attempts:
                for minute, kind in ((1, "csf"), (2, "injection_start"), (3, "injection_end")):
                    pendulum.travel_to(start.add(minutes=2 * attempts + minute), freeze=True)
                    s.record(pid, kind)
            pendulum.travel_to(start.add(minutes=end_min), freeze=True)
            outcome = {"drug_delivered": "yes"} if attempts else {"drug_delivered": "no"}
            if not attempts:
                outcome.update(failure_reason="patient agitated", fallback="ct")
            s.end_procedure(pid, outcome)
            if score is not None:
                # Taken when it is due: 5 minutes after the end.
                pendulum.travel_to(start.add(minutes=end_min + 5), freeze=True)
                s.set_score(pid, score)


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "report.db"
    build(db)
    pendulum.travel_to(NOW, freeze=True)
    yield db
    pendulum.travel_back()


def make_app(db: Path, tmp_path: Path) -> SmaLogApp:
    return create_app(
        db,
        user="dr-rossi",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "s.json",
    )


def run(app: SmaLogApp, script: Any, size: tuple[int, int] = (120, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


async def settle(pilot: Any) -> None:
    """Let the report worker finish and its result be drawn."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def expected(db: Path, by: str | None = None, unit: str = "procedure", **dates: Any) -> Any:
    with Store.open(db, "t", create=False, readonly=True) as s:
        rows = list(iter_analysis_rows(s, columns=None, tz="Europe/Rome", **dates))
    return table_rows(stats.summarise(rows, by, unit))  # type: ignore[arg-type]


def laid_out(app: SmaLogApp, table: Any) -> Any:
    """The CLI's ``table`` as the screen lays it out at its width."""
    return long_rows(*table) if app.screen.table_layout == "long" else table


def shown(app: SmaLogApp) -> tuple[list[str], list[list[str]]]:
    table = app.screen.query_one("#report-table", DataTable)
    header = [str(c.label) for c in table.ordered_columns]
    rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return header, rows


def test_t_opens_the_report_and_the_table_is_summarise(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)
    computed: list[Any] = []

    async def script(pilot: Any) -> None:
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        computed.append(screen.result)
        assert shown(app) == expected(clinic)
        header, rows = shown(app)
        assert header == ["Figure", "Unit", "Overall"]
        assert ["Procedures, n", "proc.", "9"] in rows
        title = str(screen.query_one("#report-title", Static).render())
        assert "9 ended procedure(s)" in title
        # Cells are Text, never markup.
        table = screen.query_one("#report-table", DataTable)
        assert all(type(c).__name__ == "Text" for c in table.get_row_at(0))
        # The plots got their data: attempts 0..5, one box, one curve per operator.
        plots = screen.result.plots
        assert dict(plots.attempts) == {0: 1, 1: 3, 2: 2, 3: 1, 4: 1, 5: 1}
        assert [label for label, _ in plots.time_by_group] == ["Overall"]
        assert {c.operator: c.procedures for c in plots.curves} == {
            "Dr Rossi": 4,
            "Dr Bianchi": 3,
            "Dr Conti": 2,
        }
        rossi = next(c for c in plots.curves if c.operator == "Dr Rossi")
        assert rossi.points == [(1, 18.0), (2, 14.0), (3, 9.0), (4, 8.0)]
        assert "Learning curve" in str(screen.query_one(LearningCurvePlot).border_title)
        assert screen.query_one(AttemptsPlot).border_title
        assert screen.query_one(TimeByGroupPlot).border_title
        # Escape: home.
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)

    run(app, script)
    assert computed


def test_grouping_and_unit_recompute(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#report-by", Select).value = "approach"
        await settle(pilot)
        by_approach = expected(clinic, "approach")
        assert by_approach[0] == ["Figure", "Unit", *_approach_labels(), "Overall"]
        # Three long group names do not fit side by side in 120 columns: one line each.
        assert screen.table_layout == "long"
        assert shown(app) == long_rows(*by_approach)
        assert [g for g, _ in screen.result.plots.time_by_group] == _approach_labels()
        screen.query_one("#report-by", Select).value = "operator"
        screen.query_one("#report-unit", Select).value = "patient"
        await settle(pilot)
        by_operator = expected(clinic, "operator", "patient")
        assert by_operator[0][2:] == ["Dr Bianchi", "Dr Conti", "Dr Rossi", "Overall"]
        assert screen.table_layout == "long"
        assert shown(app) == long_rows(*by_operator)

    run(app, script)


def _approach_labels() -> list[str]:
    return [stats.group_label("approach", c) for c in ("midline", "paramedian", "transforaminal")]


def test_dates_validated_as_typed_and_a_bad_date_does_not_recompute(
    clinic: Path, tmp_path: Path
) -> None:
    app = make_app(clinic, tmp_path)
    runs: list[Any] = []

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        original = screen._request

        def counting(force: bool = False) -> None:
            before = screen._pending
            original(force)
            if screen._pending is not None and screen._pending is not before:
                runs.append(screen._pending)

        screen._request = counting  # type: ignore[method-assign]
        frm = screen.query_one("#report-from", Input)
        error = screen.query_one("#report-from-error", Static)
        frm.focus()
        # Half-typed: a message beside the field, the table untouched, nothing computed.
        await pilot.press(*"2026-03")
        await settle(pilot)
        assert error.display and "YYYY-MM-DD" in str(error.render())
        assert frm.has_class("-invalid")
        assert runs == []
        assert shown(app) == expected(clinic)
        # Not a calendar day: still refused.
        await pilot.press(*"-32")
        await settle(pilot)
        assert frm.value == "2026-03-32"
        assert error.display and runs == []
        # Fixed: the message goes, the report is recomputed for the window.
        await pilot.press("backspace", "backspace", *"10")
        await settle(pilot)
        assert frm.value == "2026-03-10"
        assert not error.display and not frm.has_class("-invalid")
        assert len(runs) == 1
        assert shown(app) == expected(clinic, date_from="2026-03-10")
        assert ["Procedures, n", "proc.", "5"] in shown(app)[1]
        # "To" before "From": refused beside "To", nothing recomputed.
        to = screen.query_one("#report-to", Input)
        to.focus()
        await pilot.press(*"2026-03-01")
        await settle(pilot)
        to_error = screen.query_one("#report-to-error", Static)
        assert to_error.display and "Before the first day" in str(to_error.render())
        assert len(runs) == 1
        await pilot.press(*["backspace"] * 10, *"2026-03-20")
        await settle(pilot)
        assert shown(app) == expected(clinic, date_from="2026-03-10", date_to="2026-03-20")
        assert ["Procedures, n", "proc.", "2"] in shown(app)[1]

    run(app, script)


def test_usable_at_80x24(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert screen.has_class("-narrow")
        for plot in (AttemptsPlot, LearningCurvePlot, TimeByGroupPlot):
            widget = screen.query_one(plot)
            assert widget.size.width >= 60 and widget.size.height >= 8
        assert screen.query_one("#report-table", DataTable).size.height >= 5

    run(app, script, size=(80, 24))


def no_cell_cut(app: SmaLogApp) -> bool:
    """The table's columns fit inside it: nothing runs past the screen's edge."""
    table = app.screen.query_one("#report-table", DataTable)
    return table.virtual_size.width <= table.scrollable_content_region.width


def test_at_80_columns_the_labels_wrap_and_no_cell_is_cut(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert screen.table_layout == "wrap"
        assert no_cell_cut(app)
        # The cells are the CLI's, whole ("5.8 min" style values are never cut).
        assert shown(app) == expected(clinic)
        table = screen.query_one("#report-table", DataTable)
        label = table.ordered_columns[0]
        assert label.width < max(len(r[0]) for r in expected(clinic)[1])
        assert max(row.height for row in table.rows.values()) == 2  # wrapped, not cut
        assert screen.query_one(StatusLine).message == ""

    run(app, script, size=(80, 24))


def test_many_groups_at_80_columns_turn_the_table_long(clinic: Path, tmp_path: Path) -> None:
    """Grouped by operator, side by side would not fit 80 columns: each figure, then
    one line per group with its value; every cell of the CLI's table is there."""
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#report-by", Select).value = "operator"
        await settle(pilot)
        assert screen.table_layout == "long"
        assert no_cell_cut(app)
        header, rows = expected(clinic, "operator")
        assert shown(app) == long_rows(header, rows)
        long_cells = {c for r in shown(app)[1] for c in r}
        for row in rows:
            assert row[0] in long_cells
            assert all(value in long_cells for value in row[2:])
        assert "a line per group" in screen.query_one(StatusLine).message
        # Wider: side by side again (the shown result is laid out anew, not recomputed).
        result = screen.result
        await pilot.resize_terminal(200, 40)
        await pilot.pause()
        await pilot.pause()
        assert screen.result is result
        assert screen.table_layout == "wide" and no_cell_cut(app)
        assert shown(app) == (header, rows)
        assert screen.query_one(StatusLine).message == ""

    run(app, script, size=(80, 24))


def test_palette_command_opens_the_report(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        names = [c.title for c in app.get_system_commands(app.screen)]
        assert "Report" in names
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Report")
        command.callback()
        await settle(pilot)
        assert isinstance(app.screen, ReportScreen)

    run(app, script)


def test_learning_curve_bins_long_series() -> None:
    collector = PlotCollector()
    rows = [
        {"attempts_n": 12, "procedure_min": float(i % 10), "operator": None} for i in range(1000)
    ]
    list(collector.rows(rows))
    data = collector.finish(stats.summarise([]))
    assert data.attempts == {8: 1000}  # capped in one "8+" bar
    (curve,) = data.curves
    assert curve.operator == stats.UNKNOWN_LABEL and curve.procedures == 1000
    assert len(curve.points) == 120
    assert all(0 <= y <= 9 for _, y in curve.points)


def test_p_scrolls_to_the_plots_at_80x24(clinic: Path, tmp_path: Path) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        body = app.screen.query_one("#report-body")
        assert body.scroll_y == 0
        await pilot.press("p")
        await pilot.pause()
        assert app.screen.focused is body
        assert body.scroll_y > 10

    run(app, script, size=(80, 24))


def test_report_screen_snapshot(snap_compare: Any, clinic: Path, tmp_path: Path) -> None:
    """120x40, grouped by operator: table, box per operator, one curve per operator."""

    async def open_report(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        pilot.app.screen.query_one("#report-by", Select).value = "operator"
        await settle(pilot)

    assert snap_compare(make_app(clinic, tmp_path), terminal_size=(120, 40), run_before=open_report)


# ---------------------------------------------------------------- issue 10: two-way, filters
def test_then_by_and_only_give_the_cli_s_two_way_table(clinic: Path, tmp_path: Path) -> None:
    """The screen offers what ``report --by approach,operator --where …`` does, and
    shows the same table (one rule set: both call load_report)."""
    from sma_log.storage.reportcache import load_report

    app = make_app(clinic, tmp_path)

    def cli(by: str, where: dict[str, list[str]]) -> Any:
        with Store.open(clinic, "t", create=False, readonly=True) as s:
            return table_rows(load_report(s.conn, by, where=where))

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#report-by", Select).value = "approach"
        screen.query_one("#report-by2", Select).value = "operator"
        await settle(pilot)
        two_way = cli("approach,operator", {})
        assert laid_out(app, two_way) == shown(app)
        assert any("Paramedian" in h and "Dr Rossi" in h for h in two_way[0])
        # a filter, typed: checked as typed, recomputed when valid
        only = screen.query_one("#report-only", Input)
        only.value = "approach=sideways"
        await settle(pilot)
        error = str(screen.query_one("#report-only-error", Static).render())
        assert "approach='sideways' is not a approach" in error
        assert laid_out(app, two_way) == shown(app)  # nothing recomputed meanwhile
        only.value = "approach=paramedian"
        await settle(pilot)
        filtered = cli("approach,operator", {"approach": ["paramedian"]})
        assert laid_out(app, filtered) == shown(app)
        title = str(screen.query_one("#report-title", Static).render())
        assert title.startswith("Case series by approach × operator, only approach = paramedian")
        assert screen.result is not None and screen.result.plots is not None

    run(app, script)


def test_a_value_another_tool_wrote_is_a_message_not_a_crash(clinic: Path, tmp_path: Path) -> None:
    """Text where a number belongs: ``sma-log report`` says so in one line; the screen
    says the same and the app keeps running (it used to stop with a traceback)."""
    import shutil
    import sqlite3

    db = Path(shutil.copy(clinic, tmp_path / "odd.db"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE procedures SET procedure_min = 'abc' WHERE rowid = 1")
    conn.close()
    app = make_app(db, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("t")
        await settle(pilot)
        assert app.is_running
        line = app.screen.query_one(StatusLine)
        assert line.refused and "not a number" in line.message

    run(app, script)


@pytest.mark.parametrize(
    "params",
    [
        Params(None, "procedure", None, None),
        Params("operator", "patient", None, None, parse_only("approach=paramedian")),
        Params("approach", "procedure", pendulum.date(2026, 3, 3), NOW.date()),
    ],
)
def test_plots_come_from_the_kept_facts_as_from_the_analysis_rows(
    clinic: Path, params: Params
) -> None:
    """The plots' data, one pass over the kept facts in start order, equals what the
    analysis rows in start order give (as the screen drew them before issue 13)."""
    result = compute(clinic, "t", params, "Europe/Rome")
    plots = compute_plots(clinic, "t", result, "Europe/Rome").plots
    columns = [*PLOT_COLUMNS, "approach"]
    with Store.open(clinic, "t", create=False, readonly=True) as s:
        rows = iter_analysis_rows(s, params.start, params.end, columns=columns, tz="Europe/Rome")
        kept = [r for r in rows if all(stats.group_key(r, d) in c for d, c in params.where)]
    collector = PlotCollector()
    list(collector.rows(kept))
    assert plots == collector.finish(result.report)
    assert plots is not None and sum(plots.attempts.values()) > 0


# ---------------------------------------------------------------- issue 13: out of the queue
def test_the_screen_counts_the_follow_ups_out_of_the_queue(clinic: Path, tmp_path: Path) -> None:
    """The 72-h follow-ups missed for longer than the app's missed_after_days (out of the
    queue) are counted now, whole file, under the table; the setting moves the count."""
    with Store.open(clinic, "t", create=False, readonly=True) as s:
        out = s.long_missed_counts(NOW)["day3"]  # the queue's own rule
        s.set_missed_after(0)
        every_missed = s.long_missed_counts(NOW)["day3"]
    assert 0 < out < every_missed  # the file has both: long missed and recently missed

    def shown(settings: Settings) -> str:
        app = create_app(
            clinic,
            user="dr-rossi",
            settings=settings,
            clock=Clock(monotonic=False),
            settings_path=tmp_path / "s.json",
        )
        text: list[str] = []

        async def script(pilot: Any) -> None:
            await pilot.press("t")
            await settle(pilot)
            text.append(str(pilot.app.screen.query_one("#report-quality", Static).render()))

        run(app, script)
        return text[0]

    line = "72-h follow-ups missed > {} d (out of the queue; whole file, now): {}"
    assert line.format(14, out) in shown(Settings(timezone="Europe/Rome"))
    assert line.format(0, every_missed) in shown(
        Settings(timezone="Europe/Rome", missed_after_days=0)
    )
