"""The key-latency baseline: a minimal Textual app whose key ``a`` increments a Label."""

from textual.app import App, ComposeResult
from textual.widgets import Label


class Counter(App[None]):
    BINDINGS = [("a", "inc", "Inc")]
    n = 0

    def compose(self) -> ComposeResult:
        yield Label("count: 0", id="c")

    def action_inc(self) -> None:
        self.n += 1
        self.query_one("#c", Label).update(f"count: {self.n}")


if __name__ == "__main__":
    Counter().run()
