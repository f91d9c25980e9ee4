"""The live procedure's widgets: big timer, big counters, milestones, attempts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Label, Static

from ...domain import predose, timeline, vocab
from ...domain.clock import Anchor, Clock, format_elapsed
from ..fmt import local_time, shown
from .bigtext import BigText


def update_text(widget: Static, text: Text, old_length: int) -> None:
    """Update a one-line-unless-it-wraps Static; a layout pass only when its height can
    change (the old or the new text longer than its width). The live screen's key and
    its 4-per-second timer then repaint what changed without laying out the screen."""
    width = widget.content_size.width
    wraps = width <= 0 or max(old_length, len(text)) > width or "\n" in text.plain
    widget.update(text, layout=wraps)


class BigNumber(Vertical):
    """A titled box with a large number, as large as the terminal allows."""

    def __init__(self, title: str, value: str = "0", *, id: str | None = None) -> None:
        super().__init__(id=id, classes="big-number")
        self.border_title = title
        self._value = value
        self._caption = ""

    def compose(self) -> ComposeResult:
        yield BigText(self._value)
        yield Label("", classes="big-caption")

    @property
    def value(self) -> str:
        return self.query_one(BigText).value

    def update(self, value: str, caption: str = "") -> None:
        big = self.query_one(BigText)
        if big.value != value:
            big.update(value)  # a repaint only: the box does not change size
        if caption != self._caption:  # the timer's 4 ticks a second keep the caption
            label = self.query_one(".big-caption", Label)
            update_text(label, Text(caption), len(self._caption))
            self._caption = caption


class ElapsedTimer(BigNumber):
    """Elapsed time since the stored start, recomputed from the clock on every tick.

    Nothing is counted in memory: a missed tick, a restart or a wall-clock jump
    cannot make it drift (see :meth:`Clock.elapsed`).
    """

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__("Elapsed", "00:00", id=id)
        self.clock = clock
        self.start: Any = None
        self.clock_anchor: Anchor | None = None
        self.stopped_at: Any = None
        self.caption = "since start"

    def on_mount(self) -> None:
        self.set_interval(0.25, self.tick)

    def set_start(
        self, start: Any, anchor: Anchor | None, stopped_at: Any = None, caption: str = ""
    ) -> None:
        self.start, self.clock_anchor, self.stopped_at = start, anchor, stopped_at
        self.caption = caption or "since start"
        self.tick()

    def tick(self) -> None:
        if self.start is None:
            return
        if self.stopped_at is not None:
            seconds = (self.stopped_at - self.start).total_seconds()
        else:
            seconds = self.clock.elapsed(self.start, self.clock_anchor)
        self.update(format_elapsed(seconds), self.caption)


class Milestones(Static):
    """The milestones, ticked with their local clock times (text marks, not colour)."""

    def show(self, state: timeline.State, tz: str) -> None:
        text = Text()
        for key, label in timeline.MILESTONES:
            at = state.milestones.get(key)
            mark = "✓" if at else "·"
            style = "bold" if at else "dim"
            text.append(f" {mark} ", style=style)
            text.append(f"{label:<20}", style=style)
            text.append(local_time(at, tz) if at else "—", style=style)
            start = state.milestones.get("injection_start")
            if key == "injection_end" and at and start:
                # The bolus's length beside its end; outside the label's 1-3 min: marked.
                seconds = (at - start).total_seconds()
                flagged = predose.injection_flag(seconds) is not None
                length = f"{round(seconds) // 60}:{round(seconds) % 60:02d}"
                text.append(
                    f" {length}{' !' if flagged else ''}", style="bold reverse" if flagged else ""
                )
            text.append("\n")
        sed = shown(vocab.label(vocab.SEDATION, state.sedation))
        if state.sedation_agent:
            sed += f" ({shown(state.sedation_agent)})"
        text.append(" Sedation: ", style="bold")
        text.append(sed)
        if len(state.sedation_changes) > 1:
            at, _, _ = state.sedation_changes[-1]
            text.append(f" since {local_time(at, tz)}")
        if text != getattr(self, "_shown", None):  # the attempt key rarely moves a milestone
            self._shown = text
            self.update(text, layout=False)  # as high as its box (bedside.tcss)


class AttemptList(Static):
    """One line per attempt: number, time, level, redirections and flags in words."""

    def show(self, state: timeline.State, tz: str) -> None:
        text = Text()
        if not state.attempts:
            text.append("No skin puncture yet: press a for the first attempt.", style="dim")
        for att in state.attempts:
            current = att is state.current
            text.append("▶ " if current else "  ", style="bold")
            text.append(f"#{att.number} ", style="bold")
            text.append(f"{local_time(att.at, tz)} {shown(att.level)} ")
            text.append(f"{att.redirections} redir")
            flags = [label for key, label in timeline.FLAGS if getattr(att, key)]
            if att.csf_obtained:
                flags.append("CSF")
            if flags:
                text.append(" · " + ", ".join(flags))
            text.append("\n")
        if state.notes:
            text.append("\nNotes\n", style="bold")
            for at, note in state.notes[-3:]:
                text.append(f"  {local_time(at, tz)} ")
                text.append(shown(note.replace("\n", " ")[:200]))
                text.append("\n")
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text, layout=False)  # as high as its box (bedside.tcss)


class KeyLegend(Widget):
    """Every key of a screen, flowed over as many rows as the width needs.

    The live screen shows this instead of Textual's footer, which cuts its keys at
    80 columns. Items are (key, what) pairs, generated from the screen's bindings by
    the screen (see :func:`sma_log.ui.screens.help.keys_of`), so they cannot drift.
    """

    DEFAULT_CSS = """
    KeyLegend { height: auto; width: 100%; padding: 0 1; }
    """
    GAP = 2

    def __init__(self, items: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items = list(items)

    def _lines(self, width: int) -> list[Text]:
        lines: list[Text] = []
        line = Text()
        used = 0
        for key, what in self.items:
            size = len(key) + 1 + len(what)
            if used and used + self.GAP + size > width:
                lines.append(line)
                line, used = Text(), 0
            if used:
                line.append(" " * self.GAP)
                used += self.GAP
            line.append(key, style="bold reverse")
            line.append(f" {what}")
            used += size
        if used:
            lines.append(line)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(self._lines(max(1, width))))

    def render(self) -> RenderableType:
        return Text("\n").join(self._lines(max(1, self.content_size.width)))
