"""The baseline: a one-Label Textual app (what any Textual app costs to start)."""

from textual.app import App, ComposeResult
from textual.widgets import Label


class OneLabel(App[None]):
    def compose(self) -> ComposeResult:
        yield Label("No procedure in progress")


if __name__ == "__main__":
    OneLabel().run()
