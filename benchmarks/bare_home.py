"""sma-log's home screen built from Textual's bare widgets: no database, no sma-log
code, no pendulum; plain strings in the same widgets, rows and layout (at 100x30:
the header, the line of the procedure in progress, three tables of 2, 30 and 57 rows
as the 200-procedure demo file gives, a status line and the two-row key legend).

What Textual itself costs to start and draw a screen of this size: started by
``benchmarks/startup.py`` beside the one-Label app and sma-log.
"""

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static

CSS = """
.section { margin: 1 0 0 1; height: 1; }
#home { padding: 0 1; scrollbar-size-vertical: 1; }
DataTable { height: auto; max-height: 12; }
#open { margin: 1 0 0 0; scrollbar-size-horizontal: 0; text-style: bold; }
.status-line { height: auto; max-height: 3; background: $boost; padding: 0 1; }
#home-keys { height: auto; background: $panel; padding: 0 1; }
"""

KEYS = (
    "+ New procedure  l Live procedure  k 5-min score  f Follow-ups  t Report  o Settings\n"
    "^q Quit  F1/? Help"
)


class BareHome(App[None]):
    CSS = CSS
    TITLE = "sma-log"

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="home"):
            yield DataTable(id="open", cursor_type="row", show_header=False)
            yield Static("5-minute scores pending", classes="section")
            yield DataTable(id="scores", cursor_type="row", zebra_stripes=True)
            yield Static("Recent procedures", classes="section")
            yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
            yield Static("Patients", classes="section")
            yield DataTable(id="patients", cursor_type="row", zebra_stripes=True)
        yield Static("", classes="status-line")
        yield Static(KEYS, id="home-keys")

    def on_mount(self) -> None:
        self.sub_title = "/tmp/bench.db"
        table = self.query_one("#open", DataTable)
        table.add_column("Procedure in progress")
        table.add_row(
            " ▶ IN PROGRESS  DEMO-001 · 19:13 · 00:14:55 · 3 attempts · Enter or l resumes"
        )
        table.focus()
        table = self.query_one("#scores", DataTable)
        table.add_columns("Study code", "Ended", "Attempts", "Outcome", "Operator")
        for i in range(2):
            table.add_row(f"DEMO-{i:03d}", "2026-05-30 10:12", "2", "delivered", "Dr Demo")
        table = self.query_one("#recent", DataTable)
        table.add_columns(
            "Study code", "Started", "Status", "Attempts", "Time", "Score 5′", "Operator"
        )
        for i in range(30):
            table.add_row(
                f"DEMO-{i:03d}", "2026-05-30 10:12", "delivered", "2", "23.5 min", "4", "Dr Demo"
            )
        table = self.query_one("#patients", DataTable)
        table.add_columns("Study code", "SMA type", "Born", "Motor", "Procedures", "Last")
        for i in range(57):
            table.add_row(f"DEMO-{i:03d}", "2", "2015", "Sitter", "4", "2026-05-30 10:12")


if __name__ == "__main__":
    BareHome().run()
