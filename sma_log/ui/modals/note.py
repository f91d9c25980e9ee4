"""A free-text note on the timeline."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from ...domain.fields import NOTE_FIELD
from ..widgets.form import FormField
from .base import Dialog


class NoteDialog(Dialog[str | None]):
    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                Text("Add a note (enter saves, Escape cancels)", style="bold"),
                classes="dialog-title",
            )
            yield FormField(NOTE_FIELD)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        field = self.query_one(FormField)
        value, message = field.check()
        if message is None and value:
            self.dismiss(value)
        elif message is None:
            field.show_error("A note needs some text")
