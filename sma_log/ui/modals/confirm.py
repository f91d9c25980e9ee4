"""A small yes/no question: one explicit confirmation before an action that matters.

Usage::

    def done(yes: bool | None) -> None:
        if yes:
            ...

    app.push_screen(ConfirmDialog("Cancel this procedure?", "Nothing was punctured."), done)

Only y answers yes; n or Escape answers no. Enter answers nothing (it says so): a
person who pressed Escape on a changed form and then Enter out of habit must not
discard what they typed, nor cancel a procedure. The buttons are for the mouse and
never take focus, so no key typed ahead lands elsewhere.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from ...domain.text import visible
from .base import Dialog


class ConfirmDialog(Dialog[bool]):
    """Asks ``title`` (with ``body`` below it); dismisses with True (yes) or False (no)."""

    BINDINGS = [
        Binding("y", "yes", "Yes", id="confirm.yes"),
        Binding("enter", "explain", "Yes is y", show=False, id="confirm.enter"),
        Binding("n", "no", "No", id="confirm.no"),
        Binding("escape", "no", "No", show=False, id="confirm.escape"),
    ]

    def __init__(self, title: str, body: str, yes_label: str = "Yes", no_label: str = "No") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes_label = yes_label
        self.no_label = no_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm-dialog"):
            # The question may name a record (a study code from the file): shown visible.
            yield Static(Text(visible(self.title_text), style="bold"), classes="dialog-title")
            if self.body:
                yield Static(Text(visible(self.body, multiline=True)), id="confirm-body")
            with Horizontal(classes="buttons"):
                yes = Button(f"{self.yes_label} (y)", id="confirm-yes", variant="warning")
                no = Button(f"{self.no_label} (n / Escape)", id="confirm-no")
                yes.can_focus = False
                no.can_focus = False
                yield yes
                yield no

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_explain(self) -> None:
        self.notify(
            f"Press y for {self.yes_label.lower()!r}, n or Escape for {self.no_label.lower()!r}",
            severity="warning",
            markup=False,
        )

    def action_no(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")
