"""A message that must be acknowledged (storage failures, refused files)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Button, Static

from ...domain.text import visible
from .base import Dialog


class MessageDialog(Dialog[bool]):
    """Important clinical messages need acknowledgement, not a toast."""

    BINDINGS = [Binding("enter", "ok", "Acknowledge", id="message.ok")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # The message may quote the file (a path, a value): shown visible.
            yield Static(Text(visible(self.title_text), style="bold"), classes="dialog-title")
            yield Static(Text(visible(self.message, multiline=True)), id="message-text")
            yield Button("OK (enter)", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def action_ok(self) -> None:
        self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(True)
