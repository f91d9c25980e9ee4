"""Set the level and approach of the current attempt."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ...domain import fields, vocab
from ..widgets.form import FormField, collect
from .base import Dialog

LEVEL = fields.FieldSpec("level", "Level", "choice", choices=vocab.LEVELS, required=True)
APPROACH = fields.FieldSpec("approach", "Approach", "choice", choices=vocab.APPROACH, required=True)


class AttemptDialog(Dialog[str | None]):
    """Returns ``"level|approach"`` for the timeline event."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", id="attempt.save")]

    def __init__(self, number: int, level: str | None, approach: str | None) -> None:
        super().__init__()
        self.number, self.level, self.approach = number, level, approach

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                Text(f"Attempt {self.number}: level and approach (ctrl+s saves)", style="bold"),
                classes="dialog-title",
            )
            yield FormField(LEVEL, self.level)
            yield FormField(APPROACH, self.approach)

    def on_mount(self) -> None:
        self.query_one("#level").focus()

    def action_save(self) -> None:
        values, errors = collect(list(self.query(FormField)))
        if not errors:
            self.dismiss(f"{values['level']}|{values['approach']}")
