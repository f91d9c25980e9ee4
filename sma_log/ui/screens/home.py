"""Home: the procedure in progress (resume it), scores due, recent procedures, patients."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import RowDoesNotExist

from ...domain import vocab
from ...domain.clock import Anchor, format_elapsed, from_text
from ..fmt import cell, local_datetime, local_time, minutes, shown
from ..widgets.bedside import KeyLegend
from .base import AppScreen, StatusLine
from .help import legend_items

#: How many patients home lists (latest procedure first); the start screen finds any.
HOME_PATIENTS = 200


def _t(value: Any) -> Text:
    """Table cells are Text, never markup: user text shows as typed, its control
    characters made visible (a file another tool wrote may hold ESC sequences)."""
    return cell(value)


def _status_words(row: Any) -> str:
    if row["status"] == "open":
        return "in progress"
    if row["status"] == "cancelled":
        return "cancelled"
    return "delivered" if row["drug_delivered"] else "not delivered"


class HomeScreen(AppScreen):
    """Home. The app always opens here, with a procedure in progress as the first line.

    No key here is a key of the live screen (where every key records), and the keys
    that lead there (Enter on a row, l) record nothing when pressed again on it: a
    double press, or a key meant for this screen, never records
    (tests/test_ui_keys.py).
    """

    BINDINGS = [
        Binding(
            "plus",
            "new",
            "New procedure",
            tooltip="Find or create the patient, then start",
            id="home.new",
        ),
        Binding(
            "l",
            "resume",
            "Live procedure",
            tooltip="The procedure in progress (or Enter on it)",
            id="home.resume",
        ),
        Binding(
            "k",
            "score",
            "5-min score",
            tooltip="The highlighted pending score (or Enter)",
            id="home.score",
        ),
        Binding("f", "followups", "Follow-ups", tooltip="The nurses' queue", id="home.followups"),
        Binding("t", "report", "Report", tooltip="Case-series figures", id="home.report"),
        Binding("o", "app.settings", "Settings", id="home.settings"),
        Binding("g", "refresh", "Refresh", show=False, id="home.refresh"),
    ]
    HELP_TITLE = "Home"
    HELP_NOTES = (
        (
            "Enter",
            "Open the highlighted row",
            "resume, take the score, or a patient's page",
        ),
        ("Tab", "Next table", "shift+Tab goes back"),
    )

    def __init__(self, message: str | None = None) -> None:
        super().__init__()
        self._message = message or ""
        self._open: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="home"):
            if self.sma.demo:
                yield Static(
                    Text(
                        " DEMO DATA, deleted on exit: a throw-away file with made-up patients ",
                        style="bold reverse",
                    ),
                    id="demo-banner",
                )
            yield Static("", id="no-open")
            yield DataTable(id="open", cursor_type="row", show_header=False, zebra_stripes=False)
            yield Static(Text("5-minute scores pending", style="bold"), classes="section")
            yield DataTable(id="scores", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Recent procedures", style="bold"), classes="section")
            yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
            yield Static(
                Text(f"Patients, latest procedure first (up to {HOME_PATIENTS})", style="bold"),
                classes="section",
            )
            yield DataTable(id="patients", cursor_type="row", zebra_stripes=True)
        yield StatusLine(self._message)
        yield KeyLegend(legend_items(self.app, self), id="home-keys")

    def say(self, message: str, *, refused: bool = False) -> None:
        self._message = message
        super().say(message, refused=refused)

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.query_one("#open", DataTable).add_column("Procedure in progress", key="line")
        self._wide: bool | None = None
        self.query_one("#patients", DataTable).add_columns(
            "Study code", "SMA type", "Born", "Motor", "Procedures", "Last"
        )
        self.set_interval(1.0, self._tick_elapsed)
        self.draw_on_mount()  # once: the first show does not draw again

    def drawn_on_show(self, first: bool) -> None:
        if self._open:  # home, first or again: Enter resumes the procedure in progress
            self.query_one("#open", DataTable).focus()

    def refresh_from_store(self) -> None:
        self.sub_title = shown(str(self.sma.db_path))
        data = self.guarded(
            lambda: (
                self.store.open_procedures(),
                self.store.pending_scores(),
                self.store.recent_procedures(30),
                self.store.recent_patients(HOME_PATIENTS),
            )
        )
        if data is None:
            return
        self._open, scores, recent, patients = data
        self._draw_in_progress(rebuild=True)
        self._set_columns()
        wide = self._wide
        table = self.query_one("#scores", DataTable)
        keep = self._cursor_key(table)
        table.clear()
        for row in scores:
            table.add_row(
                _t(row["study_code"]),
                _t(local_datetime(row["ended_at"], self.tz)),
                _t(row["attempts_n"]),
                _t("delivered" if row["drug_delivered"] else "not delivered"),
                _t(row["operator"]),
                key=row["id"],
            )
        self._restore_cursor(table, keep)
        table = self.query_one("#recent", DataTable)
        keep = self._cursor_key(table)
        table.clear()
        for row in recent:
            table.add_row(
                _t(row["study_code"]),
                _t(local_datetime(row["started_at"], self.tz)),
                _t(_status_words(row)),
                _t(row["attempts_n"]),
                _t(minutes(row["procedure_min"]) if row["procedure_min"] is not None else "—"),
                _t(
                    row["satisfaction_5min"]
                    if row["satisfaction_5min"]
                    else ("pending" if row["status"] == "ended" else "")
                ),
                *([_t(row["operator"])] if wide else []),
                key=row["id"],
            )
        self._restore_cursor(table, keep)
        table = self.query_one("#patients", DataTable)
        keep = self._cursor_key(table)
        table.clear()
        for row in patients:
            table.add_row(
                _t(row["study_code"]),
                _t(row["sma_type"]),
                _t(row["birth_year"]),
                _t(vocab.label(vocab.MOTOR_STATUS, row["motor_status"])),
                _t(row["procedures_n"]),
                _t(
                    local_datetime(row["last_procedure_at"], self.tz)
                    if row["last_procedure_at"]
                    else "—"
                ),
                key=row["id"],
            )
        self._restore_cursor(table, keep)

    #: From this width on, recent procedures show their operator; below it (80 columns)
    #: the operator gives way so that nothing else is cut (it is on the procedure's
    #: own screen and in the report).
    WIDE = 96

    def _width(self) -> int:
        # Before its first layout a screen has no size yet: the terminal's then.
        return self.size.width or self.app.size.width

    def _set_columns(self) -> None:
        wide = self._width() >= self.WIDE
        if wide == self._wide:
            return
        self._wide = wide
        scores = self.query_one("#scores", DataTable)
        scores.clear(columns=True)
        scores.add_columns("Study code", "Ended", "Attempts", "Outcome", "Operator")
        recent = self.query_one("#recent", DataTable)
        recent.clear(columns=True)
        recent.add_columns(
            "Study code",
            "Started",
            "Status",
            "Attempts",
            "Time",
            "Score 5′",
            *(["Operator"] if wide else []),
        )

    def on_resize(self) -> None:
        if getattr(self, "_wide", None) is not None and (self._width() >= self.WIDE) != (
            self._wide
        ):
            self.refresh_from_store()

    @staticmethod
    def _cursor_key(table: DataTable[Any]) -> str | None:
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @staticmethod
    def _restore_cursor(table: DataTable[Any], key: str | None) -> None:
        """Keep the cursor on the same record after a redraw, not the same row number."""
        if key is None:
            return
        with contextlib.suppress(RowDoesNotExist):  # gone: the cursor stays where it is
            table.move_cursor(row=table.get_row_index(key), animate=False)

    def _open_line(self, row: dict[str, Any]) -> Text:
        anchor = None
        if row.get("anchor_boot_id") and isinstance(row.get("anchor_boottime"), (int, float)):
            anchor = Anchor(row["anchor_boot_id"], float(row["anchor_boottime"]))
        try:
            since = format_elapsed(self.sma.clock.elapsed(from_text(row["started_at"]), anchor))
        except ValueError:  # a start another tool wrote that is not a time
            since = "?"
        n = row["attempts_n"] or 0
        text = Text()
        text.append(" ▶ IN PROGRESS ", style="bold reverse")
        text.append(f" {shown(row['study_code'])}", style="bold")
        text.append(
            f" · {local_time(row['started_at'], self.tz, 'HH:mm')}"
            f" · {since} · {shown(n)} attempt{'' if n == 1 else 's'}"
        )
        text.append(" · Enter or l resumes", style="bold")
        return text

    def _draw_in_progress(self, rebuild: bool = False) -> None:
        table = self.query_one("#open", DataTable)
        none = self.query_one("#no-open", Static)
        if not self._open:
            none.update(
                Text.assemble((" No procedure in progress. ", "bold"), "Press + to start one.")
            )
            none.display = True
            table.display = False
            table.clear()
            return
        none.display = False
        table.display = True
        keys = [r["id"] for r in self._open]
        current = [row.value for row in table.rows]
        if rebuild or keys != current:
            keep = self._cursor_key(table)
            table.clear()
            for row in self._open:
                table.add_row(self._open_line(row), key=row["id"])
            self._restore_cursor(table, keep)
            return
        for row in self._open:
            table.update_cell(row["id"], "line", self._open_line(row), update_width=True)

    def _tick_elapsed(self) -> None:
        if self._open:
            self._draw_in_progress()

    def action_refresh(self) -> None:
        self.refresh_from_store()
        self.say("Redrawn from the database")

    def action_followups(self) -> None:
        from .followups import FollowupScreen

        self.app.push_screen(FollowupScreen())

    def action_report(self) -> None:
        from .report import ReportScreen

        self.app.push_screen(ReportScreen())

    def action_new(self) -> None:
        from .start import StartScreen

        self.app.push_screen(StartScreen())

    def action_resume(self) -> None:
        """l: the procedure in progress (the highlighted one if there are several)."""
        if not self._open:
            self.refuse("No procedure in progress: + starts one.")
            return
        key = self._cursor_key(self.query_one("#open", DataTable))
        chosen = next((r for r in self._open if r["id"] == key), self._open[0])
        self.sma.open_procedure(chosen["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if not key:
            return
        if event.data_table.id in ("open", "recent"):
            self.sma.open_procedure(key)
        elif event.data_table.id == "scores":
            self._ask_score(key)
        elif event.data_table.id == "patients":
            from .patient import PatientScreen

            self.app.push_screen(PatientScreen(key))

    def action_score(self) -> None:
        key = self._cursor_key(self.query_one("#scores", DataTable))
        if key is None:
            self.refuse("No 5-minute score is pending.")
            return
        self._ask_score(key)

    def _ask_score(self, proc_id: str) -> None:
        from .scoring import ask_score  # its dialog is not on the start-up path

        ask_score(self, proc_id, then=lambda _score: self.refresh_from_store())
