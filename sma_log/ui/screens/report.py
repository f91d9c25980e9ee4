"""The case-series report on screen: the CLI's table, its filters, and three plots.

The figures come from :func:`sma_log.storage.reportcache.load_report`, the very call
``sma-log report`` makes (one rule set: :func:`sma_log.domain.stats.summarise_table`),
laid out by the same :func:`sma_log.domain.report_table.table_rows`, so screen and
command agree cell for cell. Grouping by one or two groupings ("then by") and a filter
("only", the CLI's ``--where``: ``approach=paramedian, scoliosis=severe``) are offered
as on the command line. The figures are computed in a worker thread on a read-only
connection of its own; the plots' data (one pass over the kept facts in start order,
for the learning curve) follow in a second worker. A result that a newer request has
overtaken is dropped. ``c`` opens the learning curves (CUSUM and LC-CUSUM per
operator, :mod:`sma_log.ui.screens.learning`) on a screen of their own.

Dates are calendar days (YYYY-MM-DD, both inclusive) of the procedure start in the
site's time zone, checked as they are typed: a date that is not one says so beside
its field and nothing is recomputed until it is.

The table never cuts a cell at the screen's edge (issue 9). When the CLI's table is
wider than the screen, the figure labels wrap inside their column (the cells are the
CLI's, unchanged); when even that leaves too little room for the labels (many groups
on a narrow terminal), the table turns long: one line per figure, then one line per
group with its value (:func:`long_rows`), every cell of the CLI's table still there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from ...domain import stats
from ...domain.report_table import table_rows, title
from ..widgets.plots import (
    PLOT_COLUMNS,
    AttemptsPlot,
    LearningCurvePlot,
    PlotCollector,
    PlotData,
    TimeByGroupPlot,
)
from .base import AppScreen, StatusLine

if TYPE_CHECKING:
    from ...domain.schedule import Window

NO_GROUPING = "none"
_GROUP_WORDS = {
    "approach": "Approach",
    "guidance": "Guidance",
    "scoliosis": "Scoliosis (Cobb)",
    "hardware": "Spinal hardware",
    "sma_type": "SMA type",
    "operator": "Operator",
    "level": "Level",
    "year": "Year",
}
GROUP_OPTIONS: list[tuple[str, str]] = [("No grouping", NO_GROUPING)] + [
    (_GROUP_WORDS.get(key, key), key) for key in stats.GROUPINGS
]
THEN_OPTIONS: list[tuple[str, str]] = [("—", NO_GROUPING), *GROUP_OPTIONS[1:]]
UNIT_OPTIONS: list[tuple[str, str]] = [("Procedure", "procedure"), ("Patient", "patient")]

#: A DataTable cell's padding (one space each side).
CELL_PAD = 2
#: Columns the table cannot use: the body's padding and scroll bar, the table's own.
CHROME = 6
#: Narrower than this, figure labels wrap too much: the table turns long.
MIN_LABEL = 28


def long_rows(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The CLI's table with one value a line: each figure's line (label, unit), then a
    line per group (indented group name, value). Every cell of ``rows`` is kept."""
    groups = header[2:]
    out: list[list[str]] = []
    for row in rows:
        out.append([row[0], row[1], ""])
        for group, value in zip(groups, row[2:], strict=True):
            out.append([f"  {group}", "", value])
    return ["Figure / group", header[1], "Value"], out


def layout(header: list[str], rows: list[list[str]], width: int) -> tuple[str, int | None]:
    """How the table fits ``width`` cells: ("wide", None) as the CLI prints it,
    ("wrap", label width) with the labels wrapping, or ("long", label width)."""
    every = [header, *rows]
    natural = [max(cell_len(r[i]) for r in every) + CELL_PAD for i in range(len(header))]
    room = width - sum(natural[1:])
    if room >= natural[0]:
        return "wide", None
    if room >= MIN_LABEL + CELL_PAD:
        return "wrap", room - CELL_PAD
    long_header, long = long_rows(header, rows)
    every = [long_header, *long]
    label, unit, value = (max(cell_len(r[i]) for r in every) for i in range(3))
    return "long", max(min(label, width - unit - value - 3 * CELL_PAD), 12)


@dataclass(frozen=True)
class Params:
    by: str | None  # one grouping, or two: "approach,scoliosis"
    unit: stats.Unit
    start: date | None
    end: date | None
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def filters(self) -> dict[str, list[str]]:
        return {dim: list(codes) for dim, codes in self.where}


@dataclass
class Result:
    params: Params
    report: stats.Report
    plots: PlotData | None = None


def parse_only(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The "only" field: ``approach=paramedian, scoliosis=severe`` → checked filters
    (ValueError with the reason, as the CLI's ``--where`` says it)."""
    out: dict[str, list[str]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        dim, sep, value = item.partition("=")
        if not sep or not dim.strip() or not value.strip():
            raise ValueError(f"{item!r} is not GROUPING=VALUE, e.g. approach=paramedian")
        out.setdefault(dim.strip(), []).append(value.strip())
    checked = stats.parse_where(out)
    return tuple((dim, tuple(sorted(codes))) for dim, codes in checked.items())


def parse_day(text: str) -> date | None:
    """A strict calendar date (YYYY-MM-DD) or None for an empty field; ValueError else."""
    import pendulum

    value = text.strip()
    if not value:
        return None
    if len(value) != 10:
        raise ValueError(value)
    return pendulum.from_format(value, "YYYY-MM-DD").date()


def compute(
    db_path: Path,
    user: str | None,
    params: Params,
    tz: str,
    windows: Mapping[str, Window] | None = None,
    missed_after_days: float | None = None,
) -> Result:
    """The figures, on a read-only connection of its own: what ``sma-log report`` gives.
    With ``missed_after_days`` (and the app store's ``windows``), also the 72-h
    follow-ups missed for longer than it (whole file, now; a data-quality line)."""
    from ...storage.store import Store

    store = Store.open_for_reading(db_path, user or "report")
    try:
        report = store.load_report(
            params.by,
            params.unit,
            params.start,
            params.end,
            tz,
            where=params.filters,
        )
        if missed_after_days is not None:
            if windows is not None:
                store.windows = dict(windows)
            store.set_missed_after(missed_after_days)
            report.set_long_missed(store.long_missed_counts()["day3"], missed_after_days)
    finally:
        store.close()
    return Result(params, report)


def compute_plots(db_path: Path, user: str | None, result: Result, tz: str) -> Result:
    """The plots' data for a computed report: one pass over the report's rows (the kept
    facts) in start order, three columns of each."""
    from ...storage.reportcache import iter_rows_by_start
    from ...storage.store import Store

    p = result.params
    collector = PlotCollector()
    store = Store.open_for_reading(db_path, user or "report")
    try:
        collector.add(iter_rows_by_start(store, PLOT_COLUMNS, p.start, p.end, tz, p.filters))
    finally:
        store.close()
    return Result(p, result.report, collector.finish(result.report))


class ReportScreen(AppScreen):
    BINDINGS = [
        Binding("escape", "home", "Home", id="report.home"),
        Binding("p", "plots", "Plots", id="report.plots"),
        Binding("g", "refresh", "Recompute", id="report.refresh"),
        # issue 14: the learning curves (CUSUM, LC-CUSUM) on their own screen; not in
        # the footer (kept as it was), listed by F1 like every binding.
        Binding("c", "learning", "Learning curves (CUSUM)", id="report.learning", show=False),
    ]
    AUTO_FOCUS = "#report-table"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    DEFAULT_CSS = """
    ReportScreen .status-line { height: auto; max-height: 3; }
    ReportScreen #report-body.-computing #report-table { text-opacity: 50%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: Params | None = None
        self._shown: Params | None = None
        self.result: Result | None = None
        #: How the table is laid out now: "wide", "wrap" or "long" (see :func:`layout`),
        #: and the figure column's width when it wraps.
        self.table_layout = "wide"
        self._label_width: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="report-filters"):
            with Vertical(classes="filter filter-by"):
                yield Label("Group by")
                yield Select(
                    GROUP_OPTIONS,
                    value=NO_GROUPING,
                    allow_blank=False,
                    id="report-by",
                    compact=True,
                )
            with Vertical(classes="filter filter-unit"):
                yield Label("Unit")
                yield Select(
                    UNIT_OPTIONS,
                    value="procedure",
                    allow_blank=False,
                    id="report-unit",
                    compact=True,
                )
            for which, words in (("from", "From"), ("to", "To")):
                with Vertical(classes="filter filter-date"):
                    yield Label(f"{words} (YYYY-MM-DD)")
                    yield Input(
                        placeholder="any day" if which == "from" else "today",
                        restrict=r"[0-9-]*",
                        max_length=10,
                        id=f"report-{which}",
                        compact=True,
                    )
                    yield Static("", id=f"report-{which}-error", classes="date-error")
        with Horizontal(id="report-filters-2"):
            with Vertical(classes="filter filter-by"):
                yield Label("Then by")
                yield Select(
                    THEN_OPTIONS,
                    value=NO_GROUPING,
                    allow_blank=False,
                    id="report-by2",
                    compact=True,
                )
            with Vertical(classes="filter filter-only"):
                yield Label("Only (e.g. approach=paramedian, scoliosis=severe)")
                yield Input(
                    placeholder="every procedure", max_length=200, id="report-only", compact=True
                )
                yield Static("", id="report-only-error", classes="date-error")
        with VerticalScroll(id="report-body"):
            yield Static("", id="report-title")
            yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="report-quality")
            with Container(id="report-plots"):
                yield AttemptsPlot(id="plot-attempts", classes="plot")
                yield TimeByGroupPlot(id="plot-time", classes="plot")
                yield LearningCurvePlot(id="plot-learning", classes="plot")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.sub_title = "Report"

    # ------------------------------------------------------------ filters
    def _params(self) -> Params | None:
        """The filters' values, or None while a date field holds no valid date."""
        by = self.query_one("#report-by", Select).value
        by2 = self.query_one("#report-by2", Select).value
        # allow_blank=False: the value is one of UNIT_OPTIONS' values
        unit: stats.Unit = (
            "patient" if self.query_one("#report-unit", Select).value == "patient" else "procedure"
        )
        days: dict[str, date | None] = {}
        ok = True
        try:
            only = parse_only(self.query_one("#report-only", Input).value)
            self._say("only", "")
        except ValueError as exc:
            self._say("only", str(exc))
            ok = False
        for which in ("from", "to"):
            field = self.query_one(f"#report-{which}", Input)
            try:
                days[which] = parse_day(field.value)
                self._say(which, "")
            except ValueError:
                self._say(which, "Not a date: use YYYY-MM-DD")
                ok = False
        if not ok:
            return None
        start, end = days["from"], days["to"]
        if start and end and end < start:
            self._say("to", f"Before the first day ({start})")
            return None
        dims = [str(d) for d in (by, by2) if d != NO_GROUPING]
        if len(dims) == 2 and dims[0] == dims[1]:
            dims = dims[:1]
        return Params(",".join(dims) or None, unit, start, end, only)

    def _say(self, which: str, message: str) -> None:
        field = self.query_one(f"#report-{which}", Input)
        error = self.query_one(f"#report-{which}-error", Static)
        field.set_class(bool(message), "-invalid")
        error.update(Text(message))
        error.display = bool(message)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._request()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._request()

    # ------------------------------------------------------------ computing
    def refresh_from_store(self) -> None:
        """On show and when another terminal writes: recompute the same filters."""
        self._request(force=True)

    def action_refresh(self) -> None:
        self._request(force=True)

    def _request(self, force: bool = False) -> None:
        params = self._params()
        if params is None or params == self._pending:
            return
        if params == self._shown and not force:
            return
        self._pending = params
        self._computing(True)
        db_path, user, tz = self.sma.db_path, self.store.user, self.tz
        windows, days = dict(self.store.windows), self.store.missed_after_days
        self.run_worker(
            lambda: compute(db_path, user, params, tz, windows, days),
            name="report",
            group="report",
            thread=True,
            exclusive=True,
            exit_on_error=False,  # a file another tool filled: a message, not a crash
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "plots":
            if event.state == WorkerState.SUCCESS:
                done = worker.result
                if (
                    isinstance(done, Result)
                    and done.params == self._shown
                    and done.plots is not None
                ):
                    self.result = done
                    self._show_plots(done.plots)
            return
        if worker.group != "report":
            return
        if event.state == WorkerState.SUCCESS:
            result = worker.result
            if not isinstance(result, Result) or result.params != self._pending:
                return  # overtaken by a newer request
            self._pending = None
            self._show(result)
            db_path, user, tz = self.sma.db_path, self.store.user, self.tz
            self.run_worker(
                lambda: compute_plots(db_path, user, result, tz),
                name="plots",
                group="plots",
                thread=True,
                exclusive=True,
                exit_on_error=False,
            )
        elif event.state == WorkerState.ERROR:
            self._pending = None
            self._computing(False)
            message = f"The report could not be computed: {worker.error}"
            self.query_one("#report-title", Static).update(Text(message))
            self.say(message, refused=True)

    def _show(self, result: Result) -> None:
        self.result = result
        self._shown = result.params
        p = result.params
        self._fill_table(result)
        self.query_one("#report-title", Static).update(
            Text(title(result.report, p.start, p.end, self.tz))
        )
        quality = result.report.quality_lines()
        self.query_one("#report-quality", Static).update(Text("\n".join(quality)))
        self._computing(False)

    def _computing(self, on: bool) -> None:
        """While the figures are computed: the shown ones greyed and a line saying so
        (static: an animated indicator would redraw for as long as the worker runs,
        and take the worker's time on a busy machine)."""
        self.query_one("#report-body").set_class(on, "-computing")
        if on:
            self.query_one("#report-title", Static).update(Text("Computing the report…"))

    def _show_plots(self, plots: PlotData) -> None:
        self.query_one(AttemptsPlot).show(plots)
        self.query_one(TimeByGroupPlot).show(plots)
        self.query_one(LearningCurvePlot).show(plots)

    def _fill_table(self, result: Result) -> None:
        """The CLI's table, laid out so that no cell is cut at the screen's edge."""
        header, rows = table_rows(result.report)
        how, label_width = layout(header, rows, self.size.width - CHROME)
        self.table_layout, self._label_width = how, label_width
        height: int | None = 1
        if how == "long":
            header, rows = long_rows(header, rows)
        if how != "wide":
            height = None  # a row as tall as its wrapped label
        table = self.query_one("#report-table", DataTable)
        table.clear(columns=True)
        for i, h in enumerate(header):
            table.add_column(
                Text(h, justify="left" if i < 2 else "right"),
                width=label_width if i == 0 and label_width else None,
            )
        for row in rows:
            cells = [Text(c, justify="left" if i < 2 else "right") for i, c in enumerate(row)]
            if how == "long" and row[2] == "":
                cells[0].stylize("bold")
            table.add_row(*cells, height=height)
        if how == "long":
            self.say("Too many groups for this width: each figure, then a line per group")
        else:
            self.say("")

    def on_resize(self, event: events.Resize) -> None:
        """A new width may need another layout: redraw the shown result (no recompute)."""
        if self.result is None:
            return
        header, rows = table_rows(self.result.report)
        if layout(header, rows, self.size.width - CHROME) != (
            self.table_layout,
            self._label_width,
        ):
            self._fill_table(self.result)

    def action_plots(self) -> None:
        """Scroll to the plots (below the table on a small terminal); arrows scroll on."""
        body = self.query_one("#report-body", VerticalScroll)
        body.focus()
        body.scroll_to_widget(self.query_one("#report-plots"), top=True, animate=False)

    def action_learning(self) -> None:
        from .learning import LearningScreen

        self.app.push_screen(LearningScreen())

    def action_home(self) -> None:
        self.sma.go_home()
