"""Entering (or correcting) a follow-up; closing one as unreachable or declined."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from ...domain import fields, schedule, vocab
from ..widgets.form import FormField, collect
from .base import Dialog

PDPH_ONLY = fields.PDPH_DETAILS
NO_EVENTS = {"pdph": False, "radicular_pain": False, "nausea_vomiting": False}


class FollowupDialog(Dialog[dict[str, Any] | None]):
    """Returns the answers for :meth:`Store.complete_followup`, or None."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="followup.save"),
        Binding("ctrl+n", "no_events", "No adverse events", id="followup.none"),
    ]

    def __init__(self, heading: str, row: dict[str, Any], assessor: str) -> None:
        super().__init__()
        self.heading = heading
        self.row = row
        self.assessor = assessor

    def compose(self) -> ComposeResult:
        specs = fields.FOLLOWUP_FIELDS
        row = self.row
        with VerticalScroll(classes="dialog", id="followup-dialog"):
            yield Static(Text(self.heading, style="bold"), classes="dialog-title")
            yield Static(
                Text(
                    "Type the score 1–5; ctrl+n = no adverse events; ctrl+s saves; Escape cancels.",
                    style="italic",
                )
            )
            for name, spec in specs.items():
                value = row.get(name)
                if name == "assessor":
                    value = value or self.assessor
                elif name == "contact_method":
                    value = value or "phone"
                elif spec.kind == "bool" and value is not None:
                    value = bool(value)
                yield FormField(spec, value)
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="success")
                yield Button("Cancel (Escape)", id="cancel")

    def on_mount(self) -> None:
        self._toggle_pdph()
        self.query_one("#satisfaction", Input).focus()

    def _toggle_pdph(self) -> None:
        pdph = self.query_one("#pdph", Select).value
        for name in PDPH_ONLY:
            self.query_one(f"#field-{name}").display = pdph == "yes"

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "pdph":
            self._toggle_pdph()

    def action_no_events(self) -> None:
        for name, value in NO_EVENTS.items():
            self.query_one(f"#field-{name}", FormField).set_value(value)
        self._toggle_pdph()

    def action_save(self) -> None:
        visible = [f for f in self.query(FormField) if f.display]
        values, errors = collect(visible)
        if not values.get("assessor") and "assessor" not in errors:
            errors["assessor"] = "Assessor is required to complete the follow-up"
            self.query_one("#field-assessor", FormField).show_error(errors["assessor"])
        if errors:
            self.notify(
                "Not saved: " + "; ".join(errors.values()), severity="warning", markup=False
            )
            return
        self.dismiss(values)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


CLOSE_STATE = fields.FieldSpec(
    "state",
    "Close as",
    "choice",
    choices=(("unreachable", "Not reachable"), ("declined", "Declined")),
    required=True,
)
REASON = fields.FieldSpec("reason", "Reason", "text", required=True, max_length=500)


class CloseDialog(Dialog[tuple[str, str] | None]):
    """Close a follow-up without answers: not reachable or declined, with a reason."""

    BINDINGS = [Binding("ctrl+s", "save", "Close follow-up", id="close.save")]

    def __init__(self, heading: str) -> None:
        super().__init__()
        self.heading = heading

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.heading, style="bold"), classes="dialog-title")
            yield FormField(CLOSE_STATE, "unreachable")
            yield FormField(REASON)
            yield Static(Text("ctrl+s closes it, Escape cancels", style="italic"))

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def action_save(self) -> None:
        values, errors = collect(list(self.query(FormField)))
        if not errors:
            self.dismiss((values["state"], values["reason"]))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()


def state_words(state: str, late: Any = 0) -> str:
    """The status in words; overdue in capitals so it stands out without colour."""
    words = schedule.STATUS_WORDS.get(state, state)
    if state == "overdue":
        words = words.upper()
    return f"{words} (late)" if late and state == "done" else words


def kind_words(kind: str) -> str:
    return schedule.KIND_WORDS.get(kind, vocab.label(vocab.FOLLOWUP_KINDS, kind))
