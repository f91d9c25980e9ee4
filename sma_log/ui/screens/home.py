"""Home: the procedure in progress (resume it), scores due, recent procedures, patients."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from ...domain import vocab
from ...domain.clock import Anchor, format_elapsed, from_text
from ..fmt import local_datetime, local_time, minutes
from ..modals.score import ScoreDialog
from .base import AppScreen


def _t(value: Any) -> Text:
    """Table cells are Text, never markup: user text shows as typed."""
    return Text("—" if value is None or value == "" else str(value))


class HomeScreen(AppScreen):
    BINDINGS = [
        Binding("n", "new", "New procedure", id="home.new"),
        Binding("r", "resume", "Resume", id="home.resume"),
        Binding("s", "score", "Enter 5-min score", id="home.score"),
        Binding("f", "followups", "Follow-ups", id="home.followups"),
        Binding("o", "app.settings", "Settings", id="home.settings"),
        Binding("t", "report", "Report", id="home.report"),
        Binding("g", "refresh", "Refresh", show=False, id="home.refresh"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="home"):
            yield Static("", id="in-progress")
            yield Static(Text("5-minute scores pending", style="bold"), classes="section")
            yield DataTable(id="scores", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Recent procedures", style="bold"), classes="section")
            yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Patients", style="bold"), classes="section")
            yield DataTable(id="patients", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.query_one("#scores", DataTable).add_columns(
            "Study code", "Ended", "Operator", "Attempts", "Outcome"
        )
        self.query_one("#recent", DataTable).add_columns(
            "Study code", "Started", "Status", "Operator", "Attempts", "Time", "Score 5′"
        )
        self.query_one("#patients", DataTable).add_columns(
            "Study code", "SMA type", "Birth year", "Motor", "Procedures", "Last"
        )
        self.set_interval(1.0, self._tick_elapsed)
        self.refresh_from_store()

    def refresh_from_store(self) -> None:
        self.sub_title = str(self.sma.db_path)
        data = self.guarded(
            lambda: (
                self.store.open_procedures(),
                self.store.pending_scores(),
                self.store.recent_procedures(30),
                self.store.list_patients(),
            )
        )
        if data is None:
            return
        self._open, scores, recent, patients = data
        self._draw_in_progress()
        table = self.query_one("#scores", DataTable)
        table.clear()
        for row in scores:
            table.add_row(
                _t(row["study_code"]),
                _t(local_datetime(row["ended_at"], self.tz)),
                _t(row["operator"]),
                _t(row["attempts_n"]),
                _t("delivered" if row["drug_delivered"] else "not delivered"),
                key=row["id"],
            )
        table = self.query_one("#recent", DataTable)
        table.clear()
        for row in recent:
            table.add_row(
                _t(row["study_code"]),
                _t(local_datetime(row["started_at"], self.tz)),
                _t(
                    "in progress"
                    if row["status"] == "open"
                    else ("delivered" if row["drug_delivered"] else "not delivered")
                ),
                _t(row["operator"]),
                _t(row["attempts_n"]),
                _t(minutes(row["procedure_min"]) if row["procedure_min"] is not None else "—"),
                _t(
                    row["satisfaction_5min"]
                    if row["satisfaction_5min"]
                    else ("pending" if row["status"] == "ended" else "")
                ),
                key=row["id"],
            )
        table = self.query_one("#patients", DataTable)
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

    def _draw_in_progress(self) -> None:
        text = Text()
        if not getattr(self, "_open", None):
            text.append(" No procedure in progress. ", style="bold")
            text.append("Press n to start one.")
        for row in self._open:
            anchor = None
            if row.get("anchor_boot_id") and row.get("anchor_boottime") is not None:
                anchor = Anchor(row["anchor_boot_id"], float(row["anchor_boottime"]))
            elapsed = self.sma.clock.elapsed(from_text(row["started_at"]), anchor)
            text.append(" ▶ IN PROGRESS ", style="bold reverse")
            text.append(f" {row['study_code']}", style="bold")
            text.append(
                f" since {local_time(row['started_at'], self.tz, 'HH:mm')}"
                f" · {format_elapsed(elapsed)} · {row['attempts_n']} attempt(s) · r resumes\n"
            )
        self.query_one("#in-progress", Static).update(text)

    def _tick_elapsed(self) -> None:
        if getattr(self, "_open", None):
            self._draw_in_progress()

    def action_refresh(self) -> None:
        self.refresh_from_store()

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
        rows = getattr(self, "_open", [])
        if not rows:
            self.notify("No procedure in progress.", severity="warning")
            return
        chosen = rows[0]
        recent = self.query_one("#recent", DataTable)
        if self.focused is recent and recent.row_count:
            key = recent.coordinate_to_cell_key(recent.cursor_coordinate).row_key.value
            chosen = next((r for r in rows if r["id"] == key), chosen)
        self.sma.open_procedure(chosen["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if event.data_table.id == "scores" and key:
            self._ask_score(key)
        elif event.data_table.id == "recent" and key:
            self.sma.open_procedure(key)
        elif event.data_table.id == "patients" and key:
            from .patient import PatientScreen

            self.app.push_screen(PatientScreen(key))

    def action_score(self) -> None:
        table = self.query_one("#scores", DataTable)
        if not table.row_count:
            self.notify("No 5-minute score is pending.")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key:
            self._ask_score(key)

    def _ask_score(self, proc_id: str) -> None:
        row = self.store.one(
            "SELECT pt.study_code FROM procedures p JOIN patients pt ON pt.id = p.patient_id "
            "WHERE p.id = ?",
            (proc_id,),
        )
        if row is None:
            return

        def done(score: int | None) -> None:
            if score is not None:
                saved = self.guarded(lambda: self.store.set_score(proc_id, score))
                if saved is not None:
                    self.notify(
                        f"{row['study_code']}: satisfaction at 5 min {saved} saved", markup=False
                    )
            self.refresh_from_store()

        self.app.push_screen(ScoreDialog(row["study_code"]), done)
