"""The report screen's plots (textual-plotext), and the data they draw.

The data is gathered in one pass over the report's kept facts in start order
(:class:`PlotCollector`, fed three columns of each row), then drawn by plain widgets
that know nothing of the database:

* :class:`AttemptsPlot`: procedures by number of needle attempts (per procedure);
* :class:`TimeByGroupPlot`: procedure time per group as a horizontal box (min,
  quartiles, median, max: the same :class:`~sma_log.domain.stats.Spread` the table
  shows);
* :class:`LearningCurvePlot`: procedure time over each operator's successive
  procedures, one series per operator (long series binned to means so the plot
  stays fast and readable).

The learning-curve screen (issue 14) draws one operator's
:class:`~sma_log.domain.learning.Curve`: :class:`CusumPlot` (the CUSUM of failure with
h0 and h1) and :class:`LcCusumPlot` (the LC-CUSUM with its h).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual_plotext import PlotextPlot

from ...domain import learning, stats

#: The analysis-row keys the plots read (besides the report's).
PLOT_COLUMNS: tuple[str, ...] = ("attempts_n", "procedure_min", "operator")
#: Attempts at or above this are drawn in one last bar ("8+").
ATTEMPTS_CAP = 8
#: The learning curve draws at most this many operators (those with most procedures).
MAX_OPERATORS = 6
#: One distinct colour per operator's series (the legend names them too).
SERIES_COLORS = ("cyan", "magenta", "green", "orange", "blue", "red")
#: An operator's series longer than this is drawn as the means of this many bins.
MAX_POINTS = 120


@dataclass
class LearningCurve:
    operator: str
    procedures: int
    #: (procedure number, minutes): the number counts all of the operator's
    #: procedures; a procedure without a time adds no point.
    points: list[tuple[float, float]]


@dataclass
class PlotData:
    attempts: Counter[int] = field(default_factory=Counter)
    #: (group label, Spread of procedure minutes), in the report's group order.
    time_by_group: list[tuple[str, stats.Spread]] = field(default_factory=list)
    by: str | None = None
    curves: list[LearningCurve] = field(default_factory=list)
    operators_total: int = 0


class PlotCollector:
    """Wraps the row stream: ``summarise(collector.rows(rows), …)``, then :meth:`finish`.

    The rows must come in start order (the learning curve numbers them).
    """

    def __init__(self) -> None:
        self.attempts: Counter[int] = Counter()
        self.times: dict[str, list[float | None]] = {}

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """Collect from analysis rows (mappings), passing them on."""
        for r in rows:
            self.add([(r["attempts_n"], r["procedure_min"], r["operator"])])
            yield r

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Collect from row tuples in the order of :data:`PLOT_COLUMNS`: one pass."""
        attempts = self.attempts
        times = self.times
        unknown = stats.UNKNOWN_LABEL
        for n, minutes, operator in rows:
            if n is not None:
                attempts[min(int(n), ATTEMPTS_CAP)] += 1
            op = operator or unknown
            series = times.get(op)
            if series is None:
                series = times[op] = []
            series.append(minutes)

    def finish(self, report: stats.Report) -> PlotData:
        groups = report.groups or [report.overall]
        data = PlotData(
            attempts=self.attempts,
            time_by_group=[(g.label, _spread(g.figure("procedure_min"))) for g in groups],
            by=report.by,
            operators_total=len(self.times),
        )
        ranked = sorted(self.times.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        for op, series in ranked[:MAX_OPERATORS]:
            data.curves.append(LearningCurve(op, len(series), _binned(series)))
        return data


def _binned(series: list[float | None]) -> list[tuple[float, float]]:
    """(procedure number, minutes); past :data:`MAX_POINTS`, the mean of each bin at
    its mid procedure number."""
    n = len(series)
    if n <= MAX_POINTS:
        return [(i + 1, v) for i, v in enumerate(series) if v is not None]
    out: list[tuple[float, float]] = []
    for b in range(MAX_POINTS):
        lo, hi = b * n // MAX_POINTS, (b + 1) * n // MAX_POINTS
        values = [v for v in series[lo:hi] if v is not None]
        if values:
            out.append(((lo + 1 + hi) / 2, sum(values) / len(values)))
    return out


def _short(label: str, width: int = 12) -> str:
    """A group label short enough to sit under its box."""
    return label if len(label) <= width else label[: width - 1] + "…"


class _Plot(PlotextPlot):
    """A plot that redraws from :meth:`show` (all state cleared first).

    The title is the widget's border title: plotext drops a title wider than the plot.
    """

    def _reset(self, title: str, subtitle: str = "") -> Any:
        plt = self.plt
        plt.clear_figure()
        self.border_title = title
        self.border_subtitle = subtitle
        return plt

    def _empty(self, title: str) -> None:
        plt = self._reset(title)
        plt.xticks([], [])
        plt.yticks([], [])
        self.refresh()


class AttemptsPlot(_Plot):
    def show(self, data: PlotData) -> None:
        title = "Attempts per procedure"
        if not data.attempts:
            self._empty(title + ": none")
            return
        top = max(data.attempts)
        xs = list(range(0, top + 1))
        labels = [f"{x}+" if x == ATTEMPTS_CAP else str(x) for x in xs]
        plt = self._reset(title, f"{sum(data.attempts.values())} procedures")
        plt.bar(labels, [data.attempts[x] for x in xs])
        plt.xlabel("attempts")
        self.refresh()


class TimeByGroupPlot(_Plot):
    def show(self, data: PlotData) -> None:
        by = f" by {data.by}" if data.by else ""
        title = f"Procedure time{by}, min"
        boxes = [(label, s) for label, s in data.time_by_group if s.n]
        if not boxes:
            self._empty(title + ": no times")
            return
        plt = self._reset(title, "range, IQR, median")
        boxes.reverse()  # the first group on top
        plt.box(
            [_short(label) for label, _ in boxes],
            [[s.max, s.q3, s.median, s.q1, s.min] for _, s in boxes],
            quintuples=True,
            # Horizontal: the group names sit on the y axis, one per box. (plotext
            # 5.3.2 lays out vertical boxes' labels differently from run to run.)
            orientation="horizontal",
        )
        plt.xlabel("min")
        self.refresh()


class LearningCurvePlot(_Plot):
    def show(self, data: PlotData) -> None:
        shown = len(data.curves)
        more = f"{shown} of {data.operators_total} operators (most procedures)"
        title = "Learning curve, min"
        curves = [c for c in data.curves if c.points]
        if not curves:
            self._empty(title + ": no times")
            return
        plt = self._reset(title, more if data.operators_total > shown else "per operator")
        for c, color in zip(curves, SERIES_COLORS, strict=False):
            xs, ys = zip(*c.points, strict=True)
            plt.plot(list(xs), list(ys), label=f"{c.operator} (n={c.procedures})", color=color)
        last = max(int(x) for c in curves for x, _ in c.points)
        step = max(1, -(-last // 5))  # about five whole-number ticks
        plt.xticks(list(range(1, last + 1, step)))
        plt.xlabel("operator's procedure number")
        self.refresh()


def _spread(figure: stats.Figure) -> stats.Spread:
    """A time figure's value: always a spread (a count or an int is another figure)."""
    if not isinstance(figure.value, stats.Spread):
        raise TypeError(f"{figure.key} is not a time figure")
    return figure.value


# ---------------------------------------------------------------- issue 14: CUSUM charts
class CusumPlot(_Plot):
    """One operator's standard CUSUM of failure with its decision limits h0 and h1."""

    def show_curve(self, curve: learning.Curve | None) -> None:
        title = "CUSUM of failure"
        if curve is None or not curve.points:
            self._empty(title + ": no procedure")
            return
        p = curve.params
        limits = f"h1 {p.h1:.2f} (red) · h0 {p.h0:.2f} (green)"
        plt = self._reset(f"{title}: {curve.operator}", limits)
        xs = [pt.number for pt in curve.points]
        plt.plot(xs, [pt.cusum for pt in curve.points], color="cyan")
        plt.hline(p.h1, "red")
        plt.hline(p.h0, "green")
        _whole_ticks(plt, len(xs))
        plt.xlabel("operator's procedure number")
        self.refresh()


class LcCusumPlot(_Plot):
    """One operator's LC-CUSUM with its limit h (adequate performance at or above)."""

    def show_curve(self, curve: learning.Curve | None) -> None:
        title = "LC-CUSUM"
        if curve is None or not curve.points:
            self._empty(title + ": no procedure")
            return
        h = curve.params.lc_h
        plt = self._reset(f"{title}: {curve.operator}", f"h {h:.2f} (green)")
        xs = [pt.number for pt in curve.points]
        plt.plot(xs, [pt.lc_cusum for pt in curve.points], color="magenta")
        plt.hline(h, "green")
        _whole_ticks(plt, len(xs))
        plt.xlabel("operator's procedure number")
        self.refresh()


def _whole_ticks(plt: Any, last: int) -> None:
    """About five whole-number ticks on the procedure-number axis."""
    step = max(1, -(-last // 5))
    plt.xticks(list(range(1, last + 1, step)))
