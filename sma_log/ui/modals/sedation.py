"""Change the sedation during the procedure (its time is recorded)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ...domain import fields, vocab
from ..widgets.form import FormField, collect
from .base import Dialog

SEDATION = fields.FieldSpec("sedation", "Sedation", "choice", choices=vocab.SEDATION, required=True)
AGENT = fields.SETUP_FIELDS["sedation_agent"]


class SedationDialog(Dialog[str | None]):
    """Returns ``"code|agent"`` for the timeline event."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", id="sedation.save")]

    def __init__(self, current: str | None, agent: str | None) -> None:
        super().__init__()
        self.current = current
        self.agent = agent

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                Text("Change sedation (ctrl+s saves, Escape cancels)", style="bold"),
                classes="dialog-title",
            )
            yield FormField(SEDATION, self.current)
            yield FormField(AGENT, self.agent)

    def on_mount(self) -> None:
        self.query_one("#sedation").focus()

    def action_save(self) -> None:
        values, errors = collect(list(self.query(FormField)))
        if not errors:
            self.dismiss(f"{values['sedation']}|{values.get('sedation_agent') or ''}")

    def on_input_submitted(self) -> None:
        self.action_save()
