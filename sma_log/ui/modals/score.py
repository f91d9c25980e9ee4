"""The 5-minute satisfaction score: one key, 1 to 5, or later."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ...domain import vocab
from .base import Dialog


class ScoreDialog(Dialog[int | None]):
    """Returns the score, or None for "later" (the score stays pending)."""

    BINDINGS = [
        *(Binding(str(n), f"score({n})", str(n), show=False, id=f"score.{n}") for n in range(1, 6)),
        Binding("l", "cancel", "Later", id="score.later"),
    ]

    def __init__(self, study_code: str) -> None:
        super().__init__()
        self.study_code = study_code

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="score-dialog"):
            yield Static(
                Text(f"Satisfaction at 5 minutes — {self.study_code}", style="bold"),
                classes="dialog-title",
            )
            lines = Text()
            for code, label in vocab.SATISFACTION:
                lines.append(f"  {code}", style="bold")
                lines.append(f"  {label}\n")
            lines.append("\n  Press 1–5, or l (or Escape) to ask later.", style="italic")
            yield Static(lines)

    def action_score(self, n: int) -> None:
        self.dismiss(n)
