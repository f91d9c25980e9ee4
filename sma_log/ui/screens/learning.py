"""Learning curves on screen (issue 14): one operator's CUSUM and LC-CUSUM, opened
from the report screen with ``c``.

The curves are :func:`sma_log.domain.learning.curves` over
:func:`sma_log.storage.learning.iter_learning_rows` — what ``sma-log learning`` prints —
computed in a thread worker on a read-only connection of its own (as the report's
plots), with the site's learning settings; the caption prints every value a chart used.
Choosing another operator redraws from the computed curves (no new read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.widgets import Footer, Header, Label, Select, Static
from textual.worker import Worker, WorkerState

from ...domain import learning
from ..widgets.plots import CusumPlot, LcCusumPlot
from .base import AppScreen, StatusLine


@dataclass
class LearningResult:
    curves: list[learning.Curve]
    params: learning.Parameters
    definition: str


def compute_learning(
    db_path: Path, user: str | None, params: learning.Parameters, definition: str
) -> LearningResult:
    """Every operator's curve, read on a read-only connection of its own."""
    from ...storage.learning import iter_learning_rows
    from ...storage.store import Store

    store = Store.open_for_reading(db_path, user or "report")
    try:
        rows = list(iter_learning_rows(store))
    finally:
        store.close()
    return LearningResult(learning.curves(rows, params, definition), params, definition)


def caption(params: learning.Parameters, definition: str) -> str:
    """The values the charts use (every chart must print them)."""
    what = dict(learning.FAILURE_DEFINITIONS).get(definition, definition)
    return (
        f"{what}. p0 {params.p0:g} (acceptable), p1 {params.p1:g} (unacceptable), "
        f"α {params.alpha:g}, β {params.beta:g} → s {params.s:.4f}, h0 {params.h0:.2f}, "
        f"h1 {params.h1:.2f}; LC-CUSUM h {params.lc_h:.2f} = ln((1−β)/α). "
        "Ended procedures with a skin insertion, in start order."
    )


def summary(curve: learning.Curve) -> str:
    def at(point: Any) -> str:
        return "not reached" if point is None else f"#{point.number} ({point.started_at[:10]})"

    rate = curve.failure_rate
    share = "—" if rate is None else f"{100 * rate:.1f}%"
    return (
        f"{curve.operator}: n {curve.n}, failures {curve.failures} ({share}). "
        f"CUSUM h1 (unacceptable): {at(curve.h1_crossed)}; h0 (acceptable): "
        f"{at(curve.h0_crossed)}. LC-CUSUM h (adequate): {at(curve.lc_signal)}."
    )


class LearningScreen(AppScreen):
    BINDINGS = [
        Binding("escape", "back", "Report", id="learning.back"),
        Binding("g", "refresh", "Recompute", id="learning.refresh"),
    ]
    AUTO_FOCUS = "#learning-operator"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]

    def __init__(self) -> None:
        super().__init__()
        self.result: LearningResult | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="learning-filters"):
            yield Label("Operator", classes="learning-label")
            yield Select[str]([], prompt="no operator", id="learning-operator", compact=True)
        yield Static("", id="learning-caption")
        yield Static("Computing the learning curves…", id="learning-summary")
        with Container(id="learning-plots"):
            yield CusumPlot(id="plot-cusum", classes="plot")
            yield LcCusumPlot(id="plot-lc-cusum", classes="plot")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.sub_title = "Learning curves"

    def refresh_from_store(self) -> None:
        """On show and when another terminal writes: recompute in a worker."""
        settings = self.sma.settings
        params = settings.learning_parameters()
        definition = settings.learning_failure
        db_path, user = self.sma.db_path, self.store.user
        self.run_worker(
            lambda: compute_learning(db_path, user, params, definition),
            name="learning",
            group="learning",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def action_refresh(self) -> None:
        self.refresh_from_store()

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "learning":
            return
        if event.state == WorkerState.SUCCESS and isinstance(worker.result, LearningResult):
            self._show(worker.result)
        elif event.state == WorkerState.ERROR:
            message = f"The learning curves could not be computed: {worker.error}"
            self.query_one("#learning-summary", Static).update(Text(message))
            self.say(message, refused=True)

    def _show(self, result: LearningResult) -> None:
        self.result = result
        self.query_one("#learning-caption", Static).update(
            Text(caption(result.params, result.definition))
        )
        select: Select[str] = self.query_one("#learning-operator", Select)
        names = [c.operator for c in result.curves]
        current = select.value if isinstance(select.value, str) else None
        with select.prevent(Select.Changed):
            select.set_options([(name, name) for name in names])
            if names:
                select.value = current if current in names else names[0]
        self._draw()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._draw()

    def selected(self) -> learning.Curve | None:
        if self.result is None:
            return None
        value = self.query_one("#learning-operator", Select).value
        return next((c for c in self.result.curves if c.operator == value), None)

    def _draw(self) -> None:
        curve = self.selected()
        text = summary(curve) if curve is not None else "No charted procedure yet."
        self.query_one("#learning-summary", Static).update(Text(text))
        self.query_one(CusumPlot).show_curve(curve)
        self.query_one(LcCusumPlot).show_curve(curve)
