"""The nurses' queue: overdue first, then due now, then upcoming (and missed).

Status is in words, not colour alone. The screen redraws by itself every 30 s (a
row turns overdue without a restart) and whenever another terminal writes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from ...domain import dosing, schedule
from ...storage.followups import QueueItem
from ..fmt import local_datetime, local_time, short_datetime
from ..modals.followup import CloseDialog, FollowupDialog, kind_words, state_words
from ..modals.score import ScoreDialog
from .base import AppScreen

STATUS_STYLE = {"overdue": "bold reverse", "due": "bold", "missed": "dim", "upcoming": ""}


def _next_dose_short(nd: dosing.NextDose | None, today: Any) -> str:
    """ "26 Mar 27 (120 d)" / "12 Jan 27 (3 d late)": fits the queue's last column at 120."""
    if nd is None:
        return "—"
    days = (nd.due - today).days
    when = f"{days} d" if days > 0 else ("today" if days == 0 else f"{-days} d late")
    flag = " !" if nd.warnings or nd.missed_rule else ""
    return f"{nd.due.format('D MMM YY')} ({when}){flag}"


class FollowupScreen(AppScreen):
    BINDINGS = [
        Binding("enter", "enter", "Enter follow-up", id="queue.enter", show=True),
        Binding("x", "no_answer", "No answer", id="queue.no_answer"),
        Binding("c", "close", "Not reachable/declined", id="queue.close"),
        Binding("o", "reopen", "Reopen", id="queue.reopen"),
        Binding("v", "toggle_closed", "Show done", id="queue.closed"),
        Binding("escape", "home", "Home", id="queue.home"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.show_closed = False
        self.items: dict[str, QueueItem] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="queue-summary")
        yield DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield Static("", id="queue-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.sub_title = "Follow-ups"
        self.query_one("#queue", DataTable).add_columns(
            "Status",
            "Study code",
            "Procedure",
            "Operator",
            "What",
            "Due",
            "When",
            "Calls",
            "Next dose",
        )
        self.set_interval(30, self.refresh_from_store)
        self.refresh_from_store()
        self.query_one("#queue", DataTable).focus()

    def refresh_from_store(self) -> None:
        settings = self.sma.settings
        items = self.guarded(lambda: self.store.followup_queue(include_closed=self.show_closed))
        if items is None:
            return
        now = self.store.now()
        today = now.in_timezone(self.tz).date()
        next_doses: dict[str, str] = {}
        table = self.query_one("#queue", DataTable)
        keep = table.cursor_row
        table.clear()
        self.items = {}
        counts: dict[str, int] = {}
        for item in items:
            row = item.row
            counts[item.status] = counts.get(item.status, 0) + 1
            pid = row["patient_id"]
            if pid not in next_doses:
                nd = self.store.next_dose(pid, settings.label, self.tz, today)
                next_doses[pid] = _next_dose_short(nd, today)
            self.items[item.id] = item
            when = (
                schedule.relative_phrase(item.due, now, settings.locale)
                if row["state"] == "open"
                else local_datetime(row["completed_at"], self.tz)
            )
            table.add_row(
                Text(
                    state_words(item.status, row.get("late")),
                    style=STATUS_STYLE.get(item.status, ""),
                ),
                Text(row["study_code"]),
                Text(local_time(row["ended_at"], self.tz, "DD MMM YY")),
                Text(row["operator"] or "—"),
                Text(kind_words(row["kind"])),
                Text(short_datetime(row["due_at"], self.tz)),
                Text(when),
                Text(str(row["contact_attempts_n"] or 0)),
                Text(next_doses[pid]),
                key=item.id,
            )
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        order = [*schedule.STATUS_ORDER, *schedule.CLOSED_STATUSES]
        summary = Text(" ")
        for status in order:
            if counts.get(status):
                summary.append(f"{state_words(status)}: {counts[status]}   ")
        if not items:
            summary.append("Nothing due: the queue is clear.", style="bold")
        summary.append(
            "   enter: answers · x: no answer · "
            + ("v: show done" if not self.show_closed else "v: hide done"),
            style="dim",
        )
        self.query_one("#queue-summary", Static).update(summary)
        self._show_detail()

    def _current(self) -> QueueItem | None:
        table = self.query_one("#queue", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.items.get(key or "")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        item = self._current()
        text = Text()
        if item is not None:
            calls = self.store.contact_attempts(item.id)
            if calls:
                text.append(" Calls without answer: ")
                text.append(", ".join(local_datetime(c["at"], self.tz) for c in calls))
            if item.row.get("closed_reason"):
                text.append(f"  Reason: {item.row['closed_reason']}")
        self.query_one("#queue-detail", Static).update(text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_enter()

    # ------------------------------------------------------------ actions
    def action_enter(self) -> None:
        item = self._current()
        if item is None:
            return
        row = item.row
        code = row["study_code"]
        if row["state"] in ("unreachable", "declined"):
            self.notify("Closed follow-up: press o to reopen it first.", severity="warning")
            return
        if row["kind"] == "score_5min":

            def score_done(score: int | None) -> None:
                if score is not None:
                    saved = self.guarded(lambda: self.store.set_score(row["procedure_id"], score))
                    if saved is not None:
                        self.notify(f"{code}: 5-minute score {saved} saved", markup=False)
                self.refresh_from_store()

            self.app.push_screen(ScoreDialog(code), score_done)
            return
        heading = (
            f"72-hour follow-up — {code} (procedure {local_datetime(row['ended_at'], self.tz)})"
        )
        if row["state"] == "done":
            heading = "Edit " + heading

        def done(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            saved = self.guarded(lambda: self.store.complete_followup(item.id, values))
            if saved is not None:
                late = " (entered late)" if saved.get("late") else ""
                self.notify(f"{code}: follow-up saved{late}", markup=False)
            self.refresh_from_store()

        self.app.push_screen(FollowupDialog(heading, dict(row), self.store.user), done)

    def action_no_answer(self) -> None:
        item = self._current()
        if item is None:
            return
        n = self.guarded(lambda: self.store.record_no_answer(item.id))
        if n is not None:
            self.notify(
                f"{item.row['study_code']}: no answer recorded (call {n}); it stays in the queue",
                markup=False,
            )
        self.refresh_from_store()

    def action_close(self) -> None:
        item = self._current()
        if item is None:
            return

        def done(result: tuple[str, str] | None) -> None:
            if result is None:
                return
            state, reason = result
            ok = self.guarded(lambda: self.store.close_followup(item.id, state, reason) or True)
            if ok:
                self.notify(f"{item.row['study_code']}: {state_words(state)}", markup=False)
            self.refresh_from_store()

        self.app.push_screen(CloseDialog(f"Close follow-up — {item.row['study_code']}"), done)

    def action_reopen(self) -> None:
        item = self._current()
        if item is None or item.row["state"] == "open":
            return
        ok = self.guarded(lambda: self.store.reopen_followup(item.id) or True)
        if ok:
            self.notify(f"{item.row['study_code']}: reopened", markup=False)
        self.refresh_from_store()

    def action_toggle_closed(self) -> None:
        self.show_closed = not self.show_closed
        self.refresh_from_store()

    def action_home(self) -> None:
        self.app.pop_screen()
