"""Shown instead of everything else when the database file is refused."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static


class RefusedScreen(Screen[None]):
    BINDINGS = [
        Binding("q", "leave", "Quit", id="refused.quit"),
        Binding("escape", "leave", "Quit", show=False, id="refused.escape"),
    ]

    def __init__(self, message: str, title: str = "This database cannot be opened") -> None:
        super().__init__()
        self.message = message
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="refused"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(Text(self.message), id="refused-message")
            yield Static(Text("The file was not changed. Press q to quit.", style="italic"))
        yield Footer()

    def action_leave(self) -> None:
        self.app.exit(return_code=2)
