"""Add one laboratory result to a patient (the patient page's ``+``).

The test, its value, the date the sample was taken and (if not the usual one) the
unit. Validated as you type by the domain's rules (:func:`sma_log.domain.predose.
parse_lab`): a platelet count of −3, a date in the future or older than the site's
limit gets its message beside the field and nothing is saved. ctrl+s saves (one
committed, audited transaction) and closes; a refusal keeps everything typed.
"""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Select, Static

from ...domain import fields, predose, vocab
from ...domain.fields import FieldSpec, ValidationError
from ...domain.timeline import RuleError
from ...storage import predose as predose_store
from ...storage.errors import Conflict, NotFound, StorageError
from ..widgets.form import FormField
from ..widgets.labs import today_in
from .base import Dialog

TEST = FieldSpec("test", "Test", "choice", "Laboratory test", vocab.LAB_TESTS, required=True)
VALUE = FieldSpec("value", "Value", "text", "The result", required=True, max_length=20)
TAKEN_ON = FieldSpec(
    "taken_on", "Sample taken on", "text", "YYYY-MM-DD", required=True, max_length=10
)
UNIT = FieldSpec("unit", "Unit", "text", "Empty: the test's usual unit", max_length=20)


class LabDialog(Dialog[dict[str, Any] | None]):
    """Returns the stored lab row, or None (Escape)."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", id="lab.save")]
    HELP_TITLE = "Add a lab result"

    def __init__(self, patient_id: str, study_code: str, rules: predose.Rules) -> None:
        super().__init__()
        self.patient_id = patient_id
        self.study_code = study_code
        self.rules = rules

    @property
    def _app(self) -> Any:
        return cast(Any, self.app)

    def compose(self) -> ComposeResult:
        self.today = today_in(self._app.store.now(), self._app.tz)
        with Vertical(classes="dialog", id="lab-dialog"):
            yield Static(
                Text(
                    f"Lab result for {self.study_code} (ctrl+s saves, Escape cancels)",
                    style="bold",
                ),
                classes="dialog-title",
            )
            yield FormField(TEST)
            yield FormField(VALUE, extra=self._value_problem)
            yield FormField(
                TAKEN_ON,
                placeholder=f"YYYY-MM-DD (today {self.today.isoformat()})",
                extra=self._date_problem,
            )
            yield FormField(UNIT, placeholder="the usual unit", extra=self._unit_problem)
            yield Static("", id="lab-message")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="lab-save", variant="success")
                yield Button("Back (Escape)", id="lab-back")

    def on_mount(self) -> None:
        self.query_one("#test", Select).focus()

    # ------------------------------------------------------------- as you type
    def _test(self) -> str | None:
        value = self.query_one("#test", Select).value
        return None if value is Select.NULL else str(value)

    def _value_problem(self, value: Any) -> str | None:
        test = self._test()
        if test is None:
            return None
        try:
            predose.parse_lab(
                test, value, self.today, unit=self._unit(), today=self.today, rules=self.rules
            )
        except ValidationError as exc:
            return exc.message if exc.field == "value" else None
        return None

    def _date_problem(self, value: Any) -> str | None:
        try:
            when = predose.parse_date(value, label="Sample date")
            predose.check_lab_date(when, self.today, self.rules)
        except ValidationError as exc:
            return exc.message
        return None

    def _unit(self) -> str | None:
        text = self.query_one("#unit", Input).value.strip()
        return text or None

    def _unit_problem(self, value: Any) -> str | None:
        test = self._test()
        if test is None or not value:
            return None
        spec = fields.LAB_VALUE_FIELDS[test]
        try:
            predose.parse_lab(
                test, spec.minimum or 0, self.today, unit=value, today=self.today, rules=self.rules
            )
        except ValidationError as exc:
            return exc.message if exc.field == "unit" else None
        return None

    def on_select_changed(self, event: Select.Changed) -> None:
        # The value's range and unit depend on the test: judge them again.
        for name in ("value", "unit"):
            field = self.query_one(f"#field-{name}", FormField)
            if field.raw:
                field.check()

    # ------------------------------------------------------------- saving
    def _say(self, message: str) -> None:
        text = Text()
        text.append(" NOT SAVED ", style="bold reverse")
        text.append(f" {message}")
        self.query_one("#lab-message", Static).update(text)
        self.notify(f"Not saved: {message}", severity="warning", markup=False)

    def action_save(self) -> None:
        boxes = {f.spec.name: f for f in self.query(FormField)}
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name, box in boxes.items():
            value, message = box.check()
            if message:
                errors[name] = message
            values[name] = value
        if errors:
            self._say(f"{len(errors)} field(s) to fix — {next(iter(errors.values()))}")
            return
        try:
            row = predose_store.add_lab(
                self._app.store,
                self.patient_id,
                values["test"],
                values["value"],
                values["taken_on"],
                unit=values.get("unit"),
                source="patient_page",
                rules=self.rules,
                tz=self._app.tz,
            )
        except ValidationError as exc:
            refused = boxes.get(exc.field)
            if refused is not None:
                refused.show_error(exc.message)
            self._say(exc.message)
            return
        except (RuleError, Conflict, NotFound) as exc:
            self._say(str(exc))
            return
        except StorageError as exc:
            from .message import MessageDialog

            self._say(str(exc))
            self.app.push_screen(MessageDialog("Not saved", str(exc)))
            return
        self.dismiss(row)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "lab-save":
            self.action_save()
        else:
            self.dismiss(None)
