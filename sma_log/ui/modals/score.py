"""The 5-minute satisfaction score: one key, 1 to 5, taken when it is due.

The flow around it (open the dialog, save through the Store, say what happened,
naming the patient) is :func:`sma_log.ui.screens.scoring.ask_score`, which every
screen that asks for a 5-minute score calls.

The dialog shows the time since the end of the procedure and counts down to 5:00,
both recomputed on every tick from the stored end and the app's clock (never
counted). A key pressed before the score opens (the Store refuses it with
:class:`~sma_log.domain.schedule.TooEarly`) asks one explicit confirmation and then
saves it flagged *early*. 0 and 6–9 say "Score is 1 to 5" in the dialog and save
nothing; l or Escape leaves the score pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ...domain import vocab
from ...domain.clock import format_elapsed
from ...domain.fields import ValidationError
from ...domain.schedule import TooEarly
from ...domain.timeline import RuleError
from ...storage.errors import Conflict, NotFound, StorageError
from ..fmt import _dt, local_time, shown
from .base import Dialog
from .confirm import ConfirmDialog

if TYPE_CHECKING:
    from ..appview import SmaApp

FIVE_MINUTES = 300.0


def clock_text(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on) of a non-negative number of seconds."""
    text = format_elapsed(max(0.0, seconds))
    return text[1:] if text.startswith("0") and len(text) == 5 else text


class ScoreDialog(Dialog[int | None]):
    """Asks and saves the score; returns it once the Store has saved it, or None
    ("later": the score stays pending, on home and in the follow-up queue)."""

    BINDINGS = [
        *(
            Binding(str(n), f"score({n})", label, show=False, id=f"score.{n}")
            for n, (_, label) in enumerate(vocab.SATISFACTION, start=1)
        ),
        *(
            Binding(str(n), "out_of_range", "Not a score", show=False, id=f"score.bad{n}")
            for n in (0, 6, 7, 8, 9)
        ),
        Binding("l", "cancel", "Later", id="score.later"),
    ]
    HELP_TITLE = "5-minute score"

    def __init__(self, proc_id: str, due: Any) -> None:
        super().__init__()
        self.proc_id = proc_id
        self.due = due
        self.study_code: str = shown(due.study_code)  # a file may hold any text
        self.early = False  # the saved score was confirmed before its window opened

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="score-dialog"):
            yield Static(
                Text(f"Satisfaction at 5 minutes — {self.study_code}", style="bold"),
                classes="dialog-title",
            )
            yield Static("", id="score-clock")
            lines = Text()
            for code, label in vocab.SATISFACTION:
                lines.append(f"  {code}", style="bold")
                lines.append(f"  {label}\n")
            lines.rstrip()
            yield Static(lines, id="score-choices")
            yield Static("", id="score-message")
            yield Static(
                Text("Press 1–5, or l (or Escape) to ask later.", style="italic"),
                id="score-keys",
            )

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(0.5, self.tick)

    @property
    def sma(self) -> SmaApp:
        return cast("SmaApp", self.app)

    # ------------------------------------------------------------------ the clock
    def since_end(self) -> float:
        """Seconds since the stored end, from the app's clock (never counted)."""
        ended = _dt(self.due.ended_at)
        return self.sma.clock.elapsed(ended) if ended is not None else 0.0

    def clock_text(self) -> Text:
        tz = self.sma.tz
        since = self.since_end()
        text = Text()
        text.append(f"Ended {local_time(self.due.ended_at, tz)} · ")
        text.append(f"{clock_text(since)} since the end", style="bold")
        left = FIVE_MINUTES - since
        if left > 0:
            text.append(" · 5:00 in ")
            text.append(clock_text(left), style="bold")
        else:
            text.append(f" · 5:00 passed {clock_text(-left)} ago")
        opens = _dt(self.due.opens_at)
        ended = _dt(self.due.ended_at)
        if opens is not None and ended is not None:
            opens_after = (opens - ended).total_seconds()
            if since < opens_after:
                text.append(
                    f"\nOpens at {local_time(opens, tz)} ({clock_text(opens_after)} after the "
                    "end): a score before then asks to confirm and is flagged early.",
                    style="italic",
                )
        if self.due.score is not None:
            text.append(f"\nAlready scored {self.due.score}: a key replaces it.", style="italic")
        return text

    def tick(self) -> None:
        self.query_one("#score-clock", Static).update(self.clock_text())

    # ------------------------------------------------------------------ keys
    def say(self, message: str, *, refused: bool = True) -> None:
        """A message in the dialog itself, kept until the next key."""
        text = Text()
        if refused:
            text.append(" NOT SAVED ", style="bold reverse")
            text.append(" ")
        text.append(message)
        self.query_one("#score-message", Static).update(text)

    def action_out_of_range(self) -> None:
        self.say("Score is 1 to 5 (l or Escape: later).")

    def on_key(self, event: events.Key) -> None:
        """Any other printable key: say which keys work, record nothing."""
        if event.is_printable and event.key not in self.active_bindings:
            event.stop()
            self.say("Score is 1 to 5 (l or Escape: later).")

    def action_score(self, n: int) -> None:
        self._save(n, early_ok=False)

    def _save(self, n: int, *, early_ok: bool) -> None:
        store = self.sma.store
        try:
            saved = store.set_score(self.proc_id, n, early_ok=early_ok)
        except TooEarly as exc:
            self._confirm_early(n, exc)
            return
        except (RuleError, ValidationError, Conflict, NotFound) as exc:
            self.say(str(exc))
            return
        except StorageError as exc:
            from .message import MessageDialog

            self.say(f"Not saved: {exc}")
            self.app.push_screen(MessageDialog("Not saved", str(exc)))
            return
        self.early = early_ok
        self.dismiss(saved)

    def _confirm_early(self, n: int, exc: TooEarly) -> None:
        tz = self.sma.tz
        opens = local_time(exc.opens_at, tz)
        since = clock_text(self.since_end())

        def answered(yes: bool | None) -> None:
            if yes:
                self._save(n, early_ok=True)
            else:
                self.say(f"The score opens at {opens}; nothing was saved.")

        self.app.push_screen(
            ConfirmDialog(
                f"Record {n} as an EARLY 5-minute score for {self.study_code}?",
                f"Only {since} since the end; the score opens at {opens}. An early score "
                "is flagged and left out of the in-window figures.",
                yes_label="Record early",
                no_label="Wait",
            ),
            answered,
        )
