"""The nurses' queue: overdue first, then due now, then upcoming (and missed).

It holds what needs action: a follow-up missed for longer than the setting
``missed_after_days`` (14 days after its window closed) leaves it; ``m`` shows those too.

Status is in words, not colour alone. The screen redraws by itself every 30 s (a
row turns overdue without a restart) and whenever another terminal writes.

No key lands on the wrong row: every redraw puts the cursor back on the same
follow-up *record* (by its row key), wherever the record moved; if it left the view
(saved, closed), on the record that followed it, else the one before. Every action
names the patient and the follow-up it acted on, on the status line and in a toast,
and a no-answer call or a close is undone with ``u``.

Columns give way on a narrow terminal (Next dose, Operator, Procedure, When, in that
order) rather than being cut; the highlighted row's detail line below the table
always says all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pendulum
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from ...config import Settings
from ...domain import dosing, schedule
from ...domain.clock import from_text
from ...storage.followups import QueueItem
from ...storage.store import Store
from ..fmt import cell, local_datetime, local_time, short_datetime, shown
from ..modals.confirm import ConfirmDialog
from ..modals.followup import CloseDialog, FollowupDialog, kind_words, state_words
from .base import AppScreen, StatusLine
from .scoring import ask_score

STATUS_STYLE = {"overdue": "bold reverse", "due": "bold", "missed": "dim", "upcoming": ""}

#: Every column the queue can show, in order: (key, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "Status"),
    ("code", "Study code"),
    ("procedure", "Procedure"),
    ("operator", "Operator"),
    ("what", "What"),
    ("due", "Due"),
    ("when", "When"),
    ("calls", "Calls"),
    ("next", "Next dose"),
)
#: The columns that give way, first to last, when the terminal is too narrow; the
#: others (status in words, study code, what, due time, calls) always show.
GIVE_WAY: tuple[str, ...] = ("next", "operator", "procedure", "when")
#: A DataTable cell's padding (one space each side).
CELL_PAD = 2
#: Kept free for the table's vertical scroll bar (when the rows need one).
SCROLLBAR = 2


@dataclass(frozen=True)
class Undoable:
    """A no-answer call or a close made on this screen, that ``u`` undoes."""

    action: str  # "no_answer" | "close"
    fid: str
    code: str
    what: str


@dataclass
class QueueData:
    """What one read of the queue gives: the items, their cells, their order."""

    items: dict[str, QueueItem] = field(default_factory=dict)
    #: Display cells of every item by column key (all columns, shown or not).
    cells: dict[str, dict[str, Text]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _next_dose_short(nd: dosing.NextDose | None, today: Any) -> str:
    """ "26 Mar 27 (120 d)" / "12 Jan 27 (3 d late)": fits the queue's last column at 120."""
    if nd is None:
        return "—"
    days = (nd.due - today).days
    when = f"{days} d" if days > 0 else ("today" if days == 0 else f"{-days} d late")
    flag = " !" if nd.warnings or nd.missed_rule else ""
    return f"{nd.due.format('D MMM YY')} ({when}){flag}"


def unreadable(exc: ValueError) -> str:
    """Why the queue cannot be drawn: a value another tool wrote into the file."""
    return (
        f"The queue cannot be shown: {shown(str(exc))} (a value another tool wrote into "
        "the file; sma-log info --check lists every one)"
    )


def fit_columns(widths: dict[str, int], available: int) -> list[str]:
    """The columns to show: all of them if they fit ``available`` cells, else without
    the ones that give way first (``widths`` are the natural widths, padding included)."""
    shown = [key for key, _ in COLUMNS]
    for key in GIVE_WAY:
        if sum(widths[k] for k in shown) <= available:
            break
        shown.remove(key)
    return shown


def label(row: dict[str, Any]) -> str:
    """ "DEMO-002 · 72-h call": which patient and which follow-up, for every message
    (control characters made visible: the code may come from a file another tool wrote)."""
    return f"{shown(row['study_code'])} · {shown(kind_words(row['kind']))}"


def read_queue(
    store: Store,
    closed: bool,
    missed: bool,
    settings: Settings,
    tz: str,
    zone: pendulum.Timezone,
) -> QueueData:
    """The queue's rows and cells as ``store`` holds them now (no widget touched: the
    periodic redraw runs this in a worker thread, on a connection of its own)."""
    items = store.followup_queue(
        include_closed=closed,
        missed_too=missed,
        missed_after_days=settings.missed_after_days,
    )
    now = store.now()
    today = now.in_timezone(zone).date()
    # One query for the next doses of the patients of these rows only.
    found = store.next_doses(
        (item.row["patient_id"] for item in items), settings.label, zone, today
    )
    next_doses = {
        pid: "?" if isinstance(nd, ValueError) else _next_dose_short(nd, today)
        for pid, nd in found.items()
    }
    data = QueueData()
    for item in items:
        row = item.row
        data.counts[item.status] = data.counts.get(item.status, 0) + 1
        data.items[item.id] = item
        data.order.append(item.id)
        when = (
            schedule.relative_phrase(item.due, now, settings.locale)
            if row["state"] == "open"
            else local_datetime(row["completed_at"], tz)
        )
        data.cells[item.id] = {
            "status": Text(
                state_words(item.status, row.get("late"), row.get("early")),
                style=STATUS_STYLE.get(item.status, ""),
            ),
            "code": cell(row["study_code"]),
            "procedure": Text(local_time(row["ended_at"], tz, "DD MMM YY")),
            "operator": cell(row["operator"]),
            "what": cell(kind_words(row["kind"])),
            "due": Text(short_datetime(row["due_at"], tz)),
            "when": Text(when),
            "calls": cell(row["contact_attempts_n"] or 0),
            "next": Text(next_doses[row["patient_id"]]),
        }
    return data


class FollowupScreen(AppScreen):
    DEFAULT_CSS = """
    FollowupScreen .status-line { height: auto; max-height: 3; }
    """
    BINDINGS = [
        Binding("enter", "enter", "Enter answers", id="queue.enter", show=True),
        Binding("x", "no_answer", "No answer", id="queue.no_answer"),
        Binding("c", "close", "Close", id="queue.close"),
        Binding("u", "undo", "Undo x/c", id="queue.undo"),
        Binding("o", "reopen", "Reopen", id="queue.reopen"),
        Binding("v", "toggle_closed", "Done rows", id="queue.closed"),
        Binding(
            "m",
            "toggle_missed",
            "Missed too",
            tooltip="Also the follow-ups missed for longer than the setting missed_after_days",
            id="queue.missed",
        ),
        Binding("escape", "home", "Home", id="queue.home"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.show_closed = False
        #: Also the follow-ups missed for longer than ``missed_after_days`` (``m``).
        self.show_missed = False
        self.items: dict[str, QueueItem] = {}
        #: Display cells of every item by column key (all columns, shown or not).
        self.cells: dict[str, dict[str, Text]] = {}
        #: The row keys in the order shown: where a record that left the view was.
        self.order: list[str] = []
        self.columns: list[str] = []
        self.undo_stack: list[Undoable] = []
        #: Counts the synchronous redraws: a background read started before the last
        #: one is stale when it arrives, and is dropped.
        self.generation = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="queue-summary")
        yield DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield Static("", id="queue-detail")
        yield StatusLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.sub_title = "Follow-ups"
        # The first draw is the base class's, on the first show (one refresh on open).
        self.set_interval(30, self.refresh_in_background)

    def drawn_on_show(self, first: bool) -> None:
        if first:
            self.query_one("#queue", DataTable).focus()

    _zone: pendulum.Timezone | None = None

    @property
    def zone(self) -> pendulum.Timezone:
        """The site's time zone, parsed once (not per patient's dose)."""
        if self._zone is None or self._zone.name != self.tz:
            self._zone = pendulum.timezone(self.tz)
        return self._zone

    def on_resize(self, event: events.Resize) -> None:
        if self.cells and self._fit()[0] != self.columns:
            self._draw(self.current_key())

    # ------------------------------------------------------------ drawing
    def current_key(self) -> str | None:
        """The row key (follow-up id) under the cursor, or None for an empty queue."""
        table = self.query_one("#queue", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key if key in self.items else None

    def refresh_from_store(self, focus: str | None = None) -> None:
        """Redraw from the database now, on the event loop (on open and after the
        nurse's own action: the screen shows what was committed); the cursor stays on
        the record it was on (or on ``focus``, a record just acted on). A background
        read started before this one is discarded when it arrives (:attr:`generation`)."""
        self.generation += 1
        try:
            data = self.guarded(lambda: read_queue(self.store, *self._what()))
        except ValueError as exc:  # a time another tool wrote that cannot be read
            self.refuse(unreadable(exc))
            return
        if data is not None:
            self._apply(data, focus)

    def refresh_in_background(self) -> None:
        """The periodic redraw (every 30 s, and when another terminal writes): the
        queue is read in a thread on a read-only connection of its own, so keys are
        not kept waiting; :meth:`on_worker_state_changed` draws the rows."""
        main = self.store
        generation, what = self.generation, self._what()

        def read() -> tuple[int, QueueData]:
            reader = main.reader()  # opened in this thread: a connection of its own
            try:
                return generation, read_queue(reader, *what)
            finally:
                reader.close()

        self.run_worker(
            read,
            name="queue-refresh",
            group="queue-refresh",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "queue-refresh":
            return
        if event.state == WorkerState.SUCCESS:
            generation, data = cast("tuple[int, QueueData]", worker.result)
            if self.accepts(generation):
                self._apply(data)
        elif event.state == WorkerState.ERROR and self.is_attached:
            # A file another tool filled, a read-only open refused: the synchronous
            # read says why in the screen's own words.
            self.refresh_from_store()

    def accepts(self, generation: int) -> bool:
        """Whether a background read started at ``generation`` is still the newest
        state: no synchronous redraw (the nurse's action) came after it started."""
        return generation == self.generation and self.is_attached

    def _what(self) -> tuple[bool, bool, Settings, str, pendulum.Timezone]:
        """What :func:`read_queue` needs of this screen, taken on the event loop."""
        return self.show_closed, self.show_missed, self.sma.settings, self.tz, self.zone

    def _apply(self, data: QueueData, focus: str | None = None) -> None:
        """Draw ``data``, the cursor on ``focus`` or on the record it is on now."""
        keep = focus or self.current_key()
        old_order = self.order
        self.items, self.cells, self.order = data.items, data.cells, data.order
        self._draw(self._landing(keep, old_order))
        self._summary(data.counts, bool(data.items))

    def _landing(self, keep: str | None, old_order: list[str]) -> str | None:
        """Where the cursor goes: the same record; if it left the view, the record that
        followed it before the redraw (the one a person working down the list expects),
        else the one before it; None lets the table keep its row number."""
        if keep is None or keep in self.items:
            return keep
        if keep in old_order:
            at = old_order.index(keep)
            for key in old_order[at + 1 :]:
                if key in self.items:
                    return key
            for key in reversed(old_order[:at]):
                if key in self.items:
                    return key
        return None

    def _fit(self) -> tuple[list[str], dict[str, int]]:
        """The columns that fit, and each column's natural width (padding included)."""
        widths = {
            key: max(
                [len(header)] + [c[key].cell_len for c in self.cells.values()],
            )
            + CELL_PAD
            for key, header in COLUMNS
        }
        table = self.query_one("#queue", DataTable)
        rows_seen = (table.size.height or self.size.height - 7) - 1  # less the header
        scrollbar = SCROLLBAR if len(self.order) > rows_seen else 0
        return fit_columns(widths, self.size.width - scrollbar), widths

    def _draw(self, land_on: str | None) -> None:
        table = self.query_one("#queue", DataTable)
        old_row = table.cursor_row
        self.columns, widths = self._fit()
        headers = dict(COLUMNS)
        table.clear(columns=True)
        for key in self.columns:
            # Explicit widths: a table redrawn under a dialog (the 5-minute score) must
            # not size its columns before its rows are measured (seen: "upcomi").
            table.add_column(headers[key], key=key, width=widths[key] - CELL_PAD)
        for fid in self.order:
            cells = self.cells[fid]
            table.add_row(*(cells[key] for key in self.columns), key=fid)
        if table.row_count:
            if land_on is not None and land_on in self.items:
                table.move_cursor(row=table.get_row_index(land_on))
            else:
                table.move_cursor(row=min(max(old_row, 0), table.row_count - 1))
        self._show_detail()

    def _summary(self, counts: dict[str, int], any_items: bool) -> None:
        order = [*schedule.STATUS_ORDER, *schedule.CLOSED_STATUSES]
        summary = Text(" ")
        for status in order:
            if counts.get(status):
                summary.append(f"{state_words(status)}: {counts[status]}   ")
        if not any_items:
            summary.append("Nothing due: the queue is clear.", style="bold")
        summary.append(
            "  enter: answers · v: "
            + ("show done" if not self.show_closed else "hide done")
            + " · m: "
            + (
                f"missed > {self.sma.settings.missed_after_days:g} d too"
                if not self.show_missed
                else "hide long missed"
            ),
            style="dim",
        )
        self.query_one("#queue-summary", Static).update(summary)

    def _current(self) -> QueueItem | None:
        key = self.current_key()
        return None if key is None else self.items.get(key)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """The highlighted record in full: what any column that gave way would say."""
        item = self._current()
        text = Text()
        if item is not None:
            row = item.row
            cells = self.cells.get(item.id, {})
            text.append(f" {label(row)}", style="bold")
            text.append(f" · {state_words(item.status, row.get('late'), row.get('early'))}")
            text.append(
                f" · procedure {local_datetime(row['ended_at'], self.tz)}"
                f" by {shown(row['operator'])}"
            )
            text.append(f" · due {short_datetime(row['due_at'], self.tz)}")
            if row["state"] == "open" and "when" in cells:
                text.append(f" ({cells['when'].plain})")
            elif row.get("completed_at"):
                text.append(f" · closed {local_datetime(row['completed_at'], self.tz)}")
            if "next" in cells:
                text.append(f" · next dose {cells['next'].plain}")
            calls = self.store.contact_attempts(item.id)
            if calls:
                text.append(" · calls without answer: ")
                text.append(", ".join(local_datetime(c["at"], self.tz) for c in calls))
            if row.get("closed_reason"):
                text.append(f" · reason: {shown(row['closed_reason'])}")
        self.query_one("#queue-detail", Static).update(text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_enter()

    # ------------------------------------------------------------ messages
    def done(self, message: str) -> None:
        """An action was recorded: the status line (until the next action) and a toast."""
        self.say(message)
        self.notify(message, markup=False)

    # ------------------------------------------------------------ actions
    def action_enter(self) -> None:
        item = self._current()
        if item is None:
            return
        row = item.row
        if row["state"] in ("unreachable", "declined"):
            self.refuse(f"{label(row)} was closed as {state_words(row['state'])}: o reopens it.")
            return
        if row["kind"] == "score_5min":
            self._score(item)
            return
        if row["state"] == "open" and item.status == "upcoming":
            self._confirm_early(item, lambda: self._open_form(item, early_ok=True))
            return
        self._open_form(item, early_ok=False)

    def _opens_at_words(self, row: dict[str, Any]) -> str:
        opens = self.store.opens_at(row["kind"], from_text(row["ended_at"]))
        return local_time(opens, self.tz, "ddd D MMM YYYY HH:mm")

    def _confirm_early(
        self, item: QueueItem, then: Callable[[], None], *, form_open: bool = False
    ) -> None:
        """One explicit question before an answer is taken before its window opens.
        (From an open form, "no" leaves the form and the refusal as they are.)"""
        row = item.row

        def answered(yes: bool | None) -> None:
            if yes:
                then()
            elif not form_open:
                self.say(f"{label(row)}: not entered (its window is not open yet)")

        self.app.push_screen(
            ConfirmDialog(
                f"{label(row)}: too early",
                f"The window for this follow-up opens on {self._opens_at_words(row)} "
                f"({self.tz}). Enter it now, flagged as early (left out of the in-window "
                "figures)?",
                yes_label="Enter it as early",
                no_label="Not now",
            ),
            answered,
        )

    def _score(self, item: QueueItem) -> None:
        """The bedside's own 5-minute score flow (it counts down from the end, asks
        before an early score and names the patient in its message)."""
        ask_score(self, item.row["procedure_id"], lambda _: self.refresh_from_store(focus=item.id))

    def _open_form(self, item: QueueItem, *, early_ok: bool) -> None:
        row = item.row
        code = shown(row["study_code"])
        heading = (
            f"72-hour follow-up — {code} (procedure {local_datetime(row['ended_at'], self.tz)})"
        )
        if row["state"] == "done":
            heading = "Edit " + heading
        elif early_ok:
            heading += f" — EARLY: its window opens {self._opens_at_words(row)}"

        dialog: FollowupDialog

        def save(values: dict[str, Any], early: bool = early_ok) -> bool:
            """The Store's call, made from the open form: True when saved (the form
            then closes); on a refusal the form stays open with the answers."""
            too_early: list[schedule.TooEarly] = []

            def call() -> dict[str, Any] | None:
                try:
                    return self.store.complete_followup(item.id, values, early_ok=early)
                except schedule.TooEarly as exc:
                    too_early.append(exc)
                    return None

            saved = self.guarded(call)
            if too_early:
                # The Store judges the window when saving: say why nothing was saved,
                # then ask whether to save the same answers as early.
                self.refuse(str(too_early[0]))
                dialog.show_message(f"Not saved: {too_early[0]}")

                def as_early() -> None:
                    if save(values, True):
                        dialog.dismiss(values)

                self._confirm_early(item, as_early, form_open=True)
                return False
            if saved is None:
                dialog.show_message(f"Not saved: {self._status_message()}")
                return False
            when = (
                " (early)"
                if saved.get("early")
                else (" (entered late)" if saved.get("late") else "")
            )
            self.done(f"{label(row)}: answers saved{when}")
            return True

        def closed(values: dict[str, Any] | None) -> None:
            if values is None:
                self.say(f"{label(row)}: form closed, nothing saved")
            self.refresh_from_store(focus=item.id)

        dialog = FollowupDialog(heading, dict(row), self.store.user, save=save)
        self.app.push_screen(dialog, closed)

    def _status_message(self) -> str:
        try:
            return self.query_one(StatusLine).message
        except Exception:  # pragma: no cover - the line is always composed
            return ""

    def action_no_answer(self) -> None:
        item = self._current()
        if item is None:
            return
        row = item.row
        n = self.guarded(lambda: self.store.record_no_answer(item.id))
        if n is not None:
            self.undo_stack.append(
                Undoable("no_answer", item.id, shown(row["study_code"]), label(row))
            )
            self.done(f"{label(row)}: no answer logged (call {n}), still in the queue; u undoes")
        self.refresh_from_store(focus=item.id)

    def action_close(self) -> None:
        item = self._current()
        if item is None:
            return
        row = item.row
        if row["state"] != "open":
            self.refuse(f"{label(row)} is already {state_words(row['state'])}")
            return

        def closed(result: tuple[str, str] | None) -> None:
            if result is None:
                self.say(f"{label(row)}: still open (close cancelled)")
                return
            state, reason = result
            ok = self.succeeded(lambda: self.store.close_followup(item.id, state, reason))
            if ok:
                self.undo_stack.append(
                    Undoable("close", item.id, shown(row["study_code"]), label(row))
                )
                self.done(f"{label(row)}: closed as {state_words(state)} · u undoes")
            self.refresh_from_store(focus=item.id)

        self.app.push_screen(CloseDialog(f"Close follow-up — {label(row)}"), closed)

    def action_undo(self) -> None:
        """Undo the last no-answer call or close made here (whichever row is highlighted)."""
        if not self.undo_stack:
            self.refuse("Nothing to undo here: u undoes this screen's x and c (o reopens)")
            return
        last = self.undo_stack[-1]
        if last.action == "no_answer":
            left = self.guarded(lambda: self.store.undo_no_answer(last.fid))
            if left is None:
                return
            self.undo_stack.pop()
            self.done(f"{last.what}: no-answer call undone ({left} left)")
        else:
            ok = self.succeeded(lambda: self.store.reopen_followup(last.fid))
            if not ok:
                return
            self.undo_stack.pop()
            self.done(f"{last.what}: close undone, open again")
        self.refresh_from_store(focus=last.fid)

    def action_reopen(self) -> None:
        item = self._current()
        if item is None:
            return
        row = item.row
        if row["state"] == "open":
            self.refuse(f"{label(row)} is open already")
            return
        ok = self.succeeded(lambda: self.store.reopen_followup(item.id))
        if ok:
            self.done(f"{label(row)}: reopened")
        self.refresh_from_store(focus=item.id)

    def action_toggle_closed(self) -> None:
        self.show_closed = not self.show_closed
        self.refresh_from_store()

    def action_toggle_missed(self) -> None:
        """Also show (or hide again) the follow-ups missed for longer than the setting."""
        self.show_missed = not self.show_missed
        self.refresh_from_store()
        days = f"{self.sma.settings.missed_after_days:g}"
        self.say(
            f"Showing also the follow-ups missed for more than {days} days (m hides them)"
            if self.show_missed
            else f"Follow-ups missed for more than {days} days hidden (m shows them)"
        )

    def action_home(self) -> None:
        self.app.pop_screen()
