"""A patient's page: details, procedures, follow-ups and the next dose by the label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from ...domain import dosing, fields, predose, vocab
from ...domain.cells import number_text
from ...storage import predose as predose_store
from ..fmt import cell, local_datetime, minutes, shown
from ..modals.followup import kind_words, state_words
from .base import AppScreen, StatusLine, unreadable_as_refusal

if TYPE_CHECKING:
    from ...storage.db import Row
    from ...storage.store import Store


def _status(store: Store, row: Row) -> str:
    """A follow-up's status in words, or "?" when its due time cannot be read."""
    try:
        return state_words(store.status_of(row), row["late"])
    except ValueError:
        return "?"


class PatientScreen(AppScreen):
    # No key of the live screen here (tests/test_ui_keys.py): + adds, as + starts on home.
    BINDINGS = [
        Binding(
            "plus",
            "add_lab",
            "Add lab result",
            tooltip="Platelets, PT/aPTT or INR, urine protein, with the sample's date",
            id="patient.add_lab",
        ),
        Binding(
            "delete",
            "void_lab",
            "Void lab result",
            tooltip="The highlighted lab result: kept and audited, no longer used; asks first",
            id="patient.void_lab",
        ),
        Binding("escape", "back", "Back", id="patient.back"),
    ]
    HELP_TITLE = "Patient"
    HELP_NOTES = (("Enter", "Open the highlighted procedure", "on the live screen"),)

    def __init__(self, patient_id: str) -> None:
        super().__init__()
        self.patient_id = patient_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="patient"):
            yield Static("", id="patient-facts")
            yield Static("", id="next-dose")
            yield Static(Text("Procedures", style="bold"), classes="section")
            yield DataTable(id="patient-procedures", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Follow-ups", style="bold"), classes="section")
            yield DataTable(id="patient-followups", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Lab results (+ adds one)", style="bold"), classes="section")
            yield Static("", id="patient-labs-latest")
            yield DataTable(id="patient-labs", cursor_type="row", zebra_stripes=True)
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.query_one("#patient-procedures", DataTable).add_columns(
            "Started",
            "Regimen",
            "Guidance",
            "Approach",
            "Level",
            "Attempts",
            "Time",
            "Outcome",
            "Score 5′",
        )
        self.query_one("#patient-followups", DataTable).add_columns(
            "Procedure", "What", "Status", "Score", "PDPH", "Calls"
        )
        self.query_one("#patient-labs", DataTable).add_columns(
            "Taken on", "Test", "Value", "Unit", "Entered"
        )
        # The first draw is the base class's, on the first show (one refresh on open).

    def refresh_from_store(self) -> None:
        s = self.store
        pt = self.guarded(lambda: s.patient(self.patient_id))
        if pt is None:
            return
        self.sub_title = f"Patient {shown(pt['study_code'])}"
        facts = Text()
        facts.append(f" {shown(pt['study_code'])}", style="bold")
        for label, value in (
            ("SMA type", pt.get("sma_type")),
            ("born", pt.get("birth_year")),
            ("sex", vocab.label(vocab.SEX, pt.get("sex")) if pt.get("sex") else None),
            (
                "motor",
                vocab.label(vocab.MOTOR_STATUS, pt.get("motor_status"))
                if pt.get("motor_status")
                else None,
            ),
        ):
            if value:
                facts.append(f"   {label} {shown(value)}")
        self.query_one("#patient-facts", Static).update(facts)
        settings = self.sma.settings
        today = s.now().in_timezone(self.tz).date()
        text = Text()
        try:
            nd = s.next_dose(self.patient_id, settings.label, self.tz, today)
        except ValueError as exc:  # a dose's time or regimen another tool wrote
            text.append(f" Next dose unknown: {shown(str(exc))}", style="bold")
        else:
            self._next_dose(text, nd, today)
        self.query_one("#next-dose", Static).update(text)
        self._tables()
        self._labs()

    def _labs(self) -> None:
        """The patient's results, newest first, and what a time-out today would use."""
        s = self.store
        rows = self.guarded(lambda: predose_store.patient_labs(s, self.patient_id)) or []
        table = self.query_one("#patient-labs", DataTable)
        table.clear()
        for r in rows:
            value = r["value"]
            table.add_row(
                cell(r["taken_on"]),
                cell(vocab.label(vocab.LAB_TESTS, r["test"])),
                cell(number_text(value) if isinstance(value, (int, float)) else value),
                cell(r["unit"]),
                cell(vocab.label(vocab.LAB_SOURCES, r["source"]) if r.get("source") else None),
                key=r["id"],
            )
        rules = self.sma.settings.predose_rules()
        latest = self.guarded(
            lambda: unreadable_as_refusal(
                lambda: predose_store.latest_labs(s, self.patient_id, rules=rules, tz=self.tz)
            )
        )
        text = Text()
        if not rows:
            text.append(" No lab result on file.", style="italic")
        elif latest is not None:
            text.append(" Usable today: ", style="bold")
            parts = []
            for test, lab in latest.items():
                unit = fields.LAB_VALUE_FIELDS[test].unit
                parts.append(
                    f"{fields.LAB_VALUE_FIELDS[test].label} {number_text(lab.value)}"
                    f"{' ' + unit if unit else ''} ({lab.taken_on.isoformat()})"
                )
            text.append(shown("; ".join(parts)) if parts else "none (too old for the site)")
            flagged = predose.evaluate({}, latest, rules).flag_texts
            for flag in flagged:
                text.append(f"\n ! {flag}", style="bold")
        self.query_one("#patient-labs-latest", Static).update(text)

    def action_add_lab(self) -> None:
        from ..modals.lab import LabDialog

        pt = self.guarded(lambda: self.store.patient(self.patient_id))
        if pt is None:
            return

        def done(row: dict[str, Any] | None) -> None:
            if row is None:
                return
            self.refresh_from_store()
            spec = fields.LAB_VALUE_FIELDS[row["test"]]
            self.say(
                f"{spec.label} {number_text(row['value'])} {row['unit']} of {row['taken_on']} "
                "saved (audited)"
            )

        self.app.push_screen(
            LabDialog(self.patient_id, shown(pt["study_code"]), self.sma.settings.predose_rules()),
            done,
        )

    def action_void_lab(self) -> None:
        """Delete: void the highlighted lab result (one confirmation, y)."""
        table = self.query_one("#patient-labs", DataTable)
        if not table.row_count:
            self.refuse("No lab result to void")
            return
        if self.focused is not table:
            self.refuse("Highlight the lab result first (Tab to the lab list), then Delete")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        row = next(
            (r for r in predose_store.patient_labs(self.store, self.patient_id) if r["id"] == key),
            None,
        )
        if row is None:
            self.refresh_from_store()
            return
        value = row["value"]
        number = number_text(value) if isinstance(value, float) else value
        what = (
            f"{vocab.label(vocab.LAB_TESTS, row['test'])} {shown(number)} "
            f"of {shown(row['taken_on'])}"
        )

        def answered(yes: bool | None) -> None:
            if not yes:
                self.say(f"{what}: kept")
                return
            if self.succeeded(lambda: predose_store.void_lab(self.store, str(key))):
                self.refresh_from_store()
                self.say(f"{what} voided (kept in the file and the audit log, no longer used)")

        from ..modals.confirm import ConfirmDialog

        self.app.push_screen(
            ConfirmDialog(
                f"Void the result {what}?",
                "It is kept (who and when, in the audit log) but no time-out uses it again.",
                yes_label="Void it",
                no_label="Keep it",
            ),
            answered,
        )

    def _next_dose(self, text: Text, nd: Any, today: Any) -> None:
        settings = self.sma.settings
        if nd is None:
            text.append(" No dose delivered yet: the schedule starts with the first dose.")
        else:
            text.append(f" {dosing.describe(nd, today).capitalize()}", style="bold")
            text.append(f" — {shown(vocab.label(vocab.REGIMENS, nd.regimen))}; {shown(nd.reason)}")
            label = "EU SmPC" if settings.label == "eu" else "US label"
            text.append(f" ({label})")
            if nd.missed_rule:
                text.append(f"\n ! {shown(nd.missed_rule)}", style="bold")
            for warning in nd.warnings:
                text.append(f"\n ! {shown(warning)}")

    def _tables(self) -> None:
        s = self.store
        table = self.query_one("#patient-procedures", DataTable)
        table.clear()
        for r in s.patient_procedures(self.patient_id):
            outcome = (
                "in progress"
                if r["status"] == "open"
                else "cancelled"
                if r["status"] == "cancelled"
                else "delivered"
                if r["drug_delivered"]
                else "not delivered"
            )
            table.add_row(
                Text(local_datetime(r["started_at"], self.tz)),
                cell(vocab.label(vocab.REGIMENS, r["regimen"])),
                cell(vocab.label(vocab.GUIDANCE, r["guidance"])),
                cell(vocab.label(vocab.APPROACH, r["approach"])),
                cell(r["level_final"] or r["level_intended"]),
                cell(str(r["attempts_n"])),
                Text(minutes(r["procedure_min"])),
                Text(outcome),
                cell(r["satisfaction_5min"] or None),
                key=r["id"],
            )
        table = self.query_one("#patient-followups", DataTable)
        table.clear()
        for r in s.patient_followups(self.patient_id):
            pdph = "—" if r["pdph"] is None else ("yes" if r["pdph"] else "no")
            table.add_row(
                Text(local_datetime(r["ended_at"], self.tz)),
                cell(kind_words(r["kind"])),
                cell(_status(s, r)),
                cell(r["satisfaction"] or None),
                Text(pdph),
                cell(r["contact_attempts_n"] or 0),
                key=r["id"],
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "patient-procedures" and event.row_key.value:
            self.sma.open_procedure(event.row_key.value)

    def action_back(self) -> None:
        self.app.pop_screen()
