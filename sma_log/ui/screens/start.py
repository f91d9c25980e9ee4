"""Start: find or create the patient by study code, confirm the set-up, start.

The set-up is pre-filled from the patient's previous procedure. Every field
validates as you type and says why a value is refused.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Button, Footer, Header, Input, Static

from ...domain import fields, predose, vocab
from ...domain.clock import to_text
from ...domain.fields import ValidationError
from ...storage import predose as predose_store
from ..fmt import shown
from ..modals.timeout import LAST_DOSE
from ..widgets.form import FormField, collect
from .base import AppScreen, StatusLine

PATIENT_EXTRA = ("sma_type", "birth_year", "sex", "motor_status")


class StartScreen(AppScreen):
    AUTO_FOCUS = "#study_code"
    BINDINGS = [
        # Not a priority binding: it then reaches the screen through the focused field, in
        # order after the characters typed before it (a priority binding could run first).
        # ctrl+s leads to the live screen, where it records nothing: pressed twice, the
        # second press does nothing there (tests/test_ui_keys.py).
        Binding(
            "ctrl+s",
            "start",
            "Start procedure",
            tooltip="Start with this set-up; the live screen opens",
            id="start.start",
        ),
        Binding("escape", "back", "Back", tooltip="Home, nothing started", id="start.back"),
    ]
    HELP_TITLE = "New procedure"
    HELP_NOTES = (
        ("Tab", "Next field", "shift+Tab goes back; each field says why a value is refused"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.patient: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        codes = [shown(r["study_code"]) for r in self.store.search_patients("", limit=5000)]
        yield Header()
        with VerticalScroll(id="start-form"):
            yield Static(Text("Patient", style="bold"), classes="section")
            yield FormField(
                fields.PATIENT_FIELDS["study_code"],
                suggester=SuggestFromList(codes, case_sensitive=False),
                placeholder="type a study code, e.g. RM-014",
                select_on_focus=False,
            )
            yield Static("", id="patient-status")
            with Vertical(id="new-patient"):
                for name in PATIENT_EXTRA:
                    yield FormField(fields.PATIENT_FIELDS[name])
            yield Static(
                Text("Set-up (pre-filled from the last procedure)", style="bold"), classes="section"
            )
            defaults = self._defaults({})
            for name, spec in fields.SETUP_FIELDS.items():
                yield FormField(spec, defaults.get(name))
            # Issue 14: the time-out's bedside answers may be given here, before the start
            # (all optional; the live screen's first attempt asks for what is still
            # required). Never carried over from a previous procedure: asked each dose.
            yield Static(
                Text("Pre-dose time-out (optional here; a asks for what is missing)", style="bold"),
                classes="section",
            )
            for name, spec in fields.TIMEOUT_FIELDS.items():
                yield FormField(spec, required=False)
                if name == "antithrombotic_agent":
                    yield FormField(
                        LAST_DOSE, placeholder="HH:MM or YYYY-MM-DD HH:MM", extra=self._when_problem
                    )
            with Horizontal(classes="buttons"):
                yield Button("Start procedure (ctrl+s)", id="start", variant="success")
                yield Button("Back (Escape)", id="back")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sma-log"
        self.sub_title = "New procedure"
        self.query_one("#new-patient").display = False
        self.query_one("#study_code", Input).focus()

    def on_key(self, event: events.Key) -> None:
        """Keys typed before the study-code field has focus (a fast typist pressing n
        and then the code) go into that field instead of being lost."""
        if self.focused is None and event.is_printable and event.character:
            field = self.query_one("#study_code", Input)
            field.focus()
            field.insert_text_at_cursor(event.character)
            event.stop()

    def _when_problem(self, value: Any) -> str | None:
        try:
            predose.parse_when(str(value), self.tz, self.store.now())
        except ValidationError as exc:
            return exc.message
        return None

    def _timeout_answers(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The time-out answers typed here (only those given) and the refused ones."""
        names = [*fields.TIMEOUT_FIELDS, "antithrombotic_last_at"]
        boxes = [self.query_one(f"#field-{n}", FormField) for n in names]
        values, errors = collect(boxes)
        answers = {k: v for k, v in values.items() if v is not None}
        last = answers.pop("antithrombotic_last_at", None)
        if last:
            answers["antithrombotic_last_at"] = to_text(
                predose.parse_when(last, self.tz, self.store.now())
            )
        return answers, errors

    def _defaults(self, previous: dict[str, Any]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "operator": self.sma.settings.operator or self.store.user,
            "regimen": "std_maintenance",
            "guidance": "us_marking",
            "approach": "paramedian",
            "level_intended": "L3-L4",
            "position": "lateral_left",
            "needle_tip": "pencil_point",
            "sedation": "none",
        }
        base.update(previous)
        return base

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "study_code":
            return
        try:
            code = fields.PATIENT_FIELDS["study_code"].parse(event.value)
        except ValidationError:
            code = None
        status = self.query_one("#patient-status", Static)
        new_box = self.query_one("#new-patient")
        if not code:
            self.patient = None
            status.update("")
            new_box.display = False
            return
        patient = self.store.find_patient(code)
        if patient is None:
            self.patient = None
            status.update(
                Text(f"  New patient {code}: fill in what you know below.", style="italic")
            )
            new_box.display = True
            return
        if self.patient and self.patient["id"] == patient["id"]:
            return
        self.patient = patient
        new_box.display = False
        previous = self.store.previous_setup(patient["id"])
        n = self.store.procedure_count(patient["id"])
        desc = [f"  Existing patient {shown(patient['study_code'])}"]
        if patient.get("sma_type"):
            desc.append(f"SMA type {shown(patient['sma_type'])}")
        if patient.get("birth_year"):
            desc.append(f"born {shown(patient['birth_year'])}")
        if patient.get("motor_status"):
            desc.append(shown(vocab.label(vocab.MOTOR_STATUS, patient["motor_status"])).lower())
        desc.append(f"{n} previous procedure(s)")
        status.update(Text(", ".join(desc)))
        if previous:
            defaults = self._defaults(previous)
            for name in fields.SETUP_FIELDS:
                if name in defaults:
                    self.query_one(f"#field-{name}", FormField).set_value(defaults[name])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.action_back()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_start(self) -> None:
        code_field = self.query_one("#field-study_code", FormField)
        code, message = code_field.check()
        if message or not code:
            self.refuse(f"Not started: {message or 'Study code is required'}")
            code_field.control.focus()
            return
        setup_fields = [self.query_one(f"#field-{n}", FormField) for n in fields.SETUP_FIELDS]
        setup, errors = collect(setup_fields)
        patient = self.store.find_patient(code)
        new_values: dict[str, Any] = {}
        if patient is None:
            extra = [self.query_one(f"#field-{n}", FormField) for n in PATIENT_EXTRA]
            new_values, more = collect(extra)
            errors.update(more)
        answers, more = self._timeout_answers()
        errors.update(more)
        if errors:
            first = next(iter(errors))
            self.refuse(f"Not started: {len(errors)} field(s) to fix — {errors[first]}")
            self.query_one(f"#field-{first}", FormField).control.focus()
            return
        if patient is None:
            patient = self.guarded(
                lambda: self.store.create_patient({"study_code": code, **new_values})
            )
            if patient is None:
                return
        pid = patient["id"]
        proc_id = self.guarded(lambda: self.store.start_procedure(pid, setup))
        if proc_id is None:
            return
        if answers:  # checked above: only the file itself can refuse them now
            rules = self.sma.settings.predose_rules()
            self.guarded(
                lambda: predose_store.save_timeout(self.store, proc_id, answers, rules, self.tz)
            )
        self.app.pop_screen()
        self.sma.open_procedure(proc_id)
