"""One laboratory result typed as a value and its date, validated as you type.

Used by the time-out dialog (one row per test, the patient's latest result beside it)
and the patient page's lab form. The value and the date are judged by the domain
(:func:`sma_log.domain.predose.parse_lab`): a value no laboratory reports, a date in
the future or older than the site's limit gets its message beside the row, and
nothing is saved.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from ...domain import fields, predose
from ...domain.cells import number_text
from ...domain.fields import ValidationError
from .form import BoundedInput


def lab_words(lab: predose.LabResult | None, today: _dt.date | None = None) -> str:
    """``210 ×10⁹/L on 2026-11-20 (10 days)``, or ``no result``."""
    if lab is None:
        return "no result on file"
    unit = fields.LAB_VALUE_FIELDS[lab.test].unit
    text = f"{number_text(lab.value)}{' ' + unit if unit else ''} on {lab.taken_on.isoformat()}"
    if today is not None:
        days = (today - lab.taken_on).days
        text += " (today)" if days == 0 else f" ({days} d)"
    return text


class LabEntry(Vertical):
    """A new result for one test: value and date; the latest on file shown beside."""

    DEFAULT_CSS = """
    LabEntry { height: auto; }
    LabEntry > Horizontal { height: auto; }
    LabEntry Label.field-label { width: 24; padding: 0 1 0 0; text-align: right; }
    LabEntry Input.lab-value { width: 12; }
    LabEntry Input.lab-date { width: 14; }
    LabEntry .lab-latest { width: 1fr; padding: 0 0 0 1; color: $text-muted; }
    LabEntry .field-error { color: $text-error; height: auto; display: none; margin: 0 0 0 24; }
    LabEntry.-invalid .field-error { display: block; }
    LabEntry .field-note { color: $text-warning; height: auto; display: none; margin: 0 0 0 24; }
    LabEntry.-noted .field-note { display: block; }
    """

    def __init__(
        self,
        test: str,
        latest: predose.LabResult | None,
        *,
        today: _dt.date,
        rules: predose.Rules,
        required: bool = False,
    ) -> None:
        super().__init__(id=f"lab-{test}")
        self.test = test
        self.latest = latest
        self.today = today
        self.rules = rules
        self.required = required

    def compose(self) -> ComposeResult:
        spec = fields.LAB_VALUE_FIELDS[self.test]
        unit = f" ({spec.unit})" if spec.unit else ""
        with Horizontal():
            yield Label(f"{spec.label}{unit}", classes="field-label")
            yield BoundedInput(
                placeholder="new value",
                id=f"{self.test}-value",
                classes="lab-value",
                compact=True,
                max_length=20,
                what=spec.label,
            )
            yield BoundedInput(
                placeholder="YYYY-MM-DD",
                id=f"{self.test}-date",
                classes="lab-date",
                compact=True,
                max_length=10,
                what="The date",
            )
            yield Static(Text(lab_words(self.latest, self.today)), classes="lab-latest")
        yield Static("", classes="field-error", markup=False)
        yield Static("", classes="field-note", markup=False)

    @property
    def typed(self) -> tuple[str, str]:
        value = self.query_one(f"#{self.test}-value", Input).value
        when = self.query_one(f"#{self.test}-date", Input).value
        return value.strip(), when.strip()

    def parsed(self) -> tuple[predose.LabResult | None, str | None]:
        """The typed result (None when nothing typed) and the message refusing it."""
        value, when = self.typed
        if not value and not when:
            return None, None
        if not value:
            return None, f"{fields.LAB_VALUE_FIELDS[self.test].label}: a value is required"
        if not when:
            return None, "The date the sample was taken is required (YYYY-MM-DD)"
        try:
            code, number, unit, on = predose.parse_lab(
                self.test, value, when, today=self.today, rules=self.rules
            )
        except ValidationError as exc:
            return None, exc.message
        return predose.LabResult("new", code, number, unit, on, "bedside"), None

    def check(self) -> tuple[predose.LabResult | None, str | None]:
        result, message = self.parsed()
        self.show_error(message)
        return result, message

    def show_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(Text(message or ""))

    def show_note(self, message: str | None) -> None:
        self.set_class(bool(message), "-noted")
        self.query_one(".field-note", Static).update(Text(message or ""))

    def on_input_changed(self, event: Input.Changed) -> None:
        # A message only once both halves are typed (or the value alone is wrong):
        # typing the value first must not shout "date required" at every key.
        value, when = self.typed
        _, message = self.parsed()
        if message and not (value and when):
            half = self._value_problem(value)
            message = half
        self.show_error(message)

    def _value_problem(self, value: str) -> str | None:
        if not value:
            return None
        try:
            fields.LAB_VALUE_FIELDS[self.test].parse(value)
        except ValidationError as exc:
            return exc.message
        return None

    def on_bounded_input_refused(self, event: BoundedInput.Refused) -> None:
        event.stop()
        self.show_error(event.message)

    def clear(self) -> None:
        self.query_one(f"#{self.test}-value", Input).value = ""
        self.query_one(f"#{self.test}-date", Input).value = ""
        self.show_error(None)


def today_in(now: Any, tz: str) -> _dt.date:
    """The site's calendar date of ``now`` (a pendulum instant)."""
    return _dt.date.fromisoformat(now.in_timezone(tz).date().isoformat())
