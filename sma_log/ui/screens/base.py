"""What every screen shares: access to the store, safe calls into it, a status line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rich.text import Text
from textual.app import App
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from ...domain.fields import ValidationError
from ...domain.text import visible
from ...domain.timeline import RuleError
from ...storage.errors import Conflict, NotFound, StorageError

if TYPE_CHECKING:
    from ...storage.store import Store
    from ..appview import SmaApp

T = TypeVar("T")


#: The id of every screen's status line (a one-row Static): the last action's result,
#: or why it was refused, kept until the next action replaces it.
STATUS_LINE = "status-line"


class StatusLine(Static):
    """One row at the bottom of a screen that says what the last action did.

    A refusal stays here (marked "Not recorded:") until the next action, so a person
    who looked away while a toast faded still reads why nothing happened.
    """

    def __init__(self, message: str = "", *, id: str = STATUS_LINE) -> None:
        super().__init__(Text(message), id=id, classes="status-line")
        self.message = message
        self._length = len(message)
        self.refused = False

    def say(self, message: str, *, refused: bool = False) -> None:
        message = visible(message)  # a Store message may quote a value from the file
        self.message = message
        self.refused = refused
        text = Text()
        if refused:
            text.append(" NOT RECORDED ", style="bold reverse")
            text.append(" ")
        text.append(message)
        old_length, self._length = self._length, len(text)
        # A layout pass only when the line may wrap (a long refusal takes up to 3 rows):
        # the live screen's keys say one short line each.
        width = self.content_size.width
        wraps = width <= 0 or max(old_length, len(text)) > width
        self.update(text, layout=wraps)


def status_screen(app: App[Any]) -> AppScreen | None:
    """The top-most :class:`AppScreen` (under any dialog): where messages are shown."""
    for screen in reversed(app.screen_stack):
        if isinstance(screen, AppScreen):
            return screen
    return None


def guarded(app: App[Any], action: Callable[[], T]) -> T | None:
    """Run a store call; turn refusals into messages. Returns None when refused.

    A rule or validation refusal is a notification (expected feedback at the
    bedside) and stays on the screen's status line until the next action; a storage
    failure (disk full, read-only, damaged file) must be acknowledged in a dialog,
    and nothing is shown as done.
    """
    try:
        return action()
    except RuleError as exc:
        refuse(app, exc.in_zone(getattr(app, "tz", "UTC")))  # times as the screen says them
    except (ValidationError, Conflict, NotFound) as exc:
        refuse(app, str(exc))
    except StorageError as exc:
        from ..modals.message import MessageDialog

        screen = status_screen(app)
        if screen is not None:
            screen.say(f"Not saved: {exc}", refused=True)
        app.push_screen(MessageDialog("Not saved", str(exc)))
    return None


def unreadable_as_refusal(action: Callable[[], T]) -> T:
    """Run a store call that reads values another tool may have written (a lab date
    that is no date): such a value refuses the action with one sentence (a
    :class:`RuleError`, shown by :func:`guarded`), never a traceback."""
    try:
        return action()
    except (RuleError, ValidationError):
        raise
    except (ValueError, TypeError) as exc:
        raise RuleError(f"A value in the file cannot be read ({exc}); nothing recorded") from exc


def refuse(app: App[Any], message: str) -> None:
    """Say why nothing was recorded: a toast, and the status line until the next action."""
    app.notify(visible(message), title="Not recorded", severity="warning", markup=False)
    screen = status_screen(app)
    if screen is not None:
        screen.say(message, refused=True)


class AppScreen(Screen[Any]):
    """A screen that redraws from the store and refreshes when the file changes."""

    @property
    def sma(self) -> SmaApp:
        return cast("SmaApp", self.app)

    @property
    def store(self) -> Store:
        return self.sma.store

    @property
    def tz(self) -> str:
        return self.sma.tz

    def guarded(self, action: Callable[[], T]) -> T | None:
        return guarded(self.app, action)

    def succeeded(self, action: Callable[[], None]) -> bool:
        """Run a store call that returns nothing, as :meth:`guarded`: False when refused."""

        def done() -> bool:
            action()
            return True

        return self.guarded(done) is not None

    def say(self, message: str, *, refused: bool = False) -> None:
        """Show ``message`` on this screen's status line (if it has one)."""
        try:
            line = self.query_one(f"#{STATUS_LINE}", StatusLine)
        except NoMatches:
            return
        line.say(message, refused=refused)

    def refuse(self, message: str) -> None:
        """A refusal the screen itself decided (no store call): toast + status line."""
        refuse(self.app, message)

    def refresh_from_store(self) -> None:
        """Redraw from the database (called on show and when another process writes)."""

    def drawn_on_show(self, first: bool) -> None:
        """After the redraw of a show (``first``: the screen's first show): focus,
        a first message. A subclass puts here what it would put in
        ``on_screen_resume``, which runs before this class's handler."""

    def draw_on_mount(self) -> None:
        """Draw from the database now, in ``on_mount``: before the first layout, so the
        first frame has the data and its sizes (a DataTable filled later drew its row
        0 high); the first show then does not draw again."""
        self.refresh_from_store()
        self._drawn_on_mount = True

    #: Whether the screen has been shown (see :meth:`on_screen_resume`).
    _was_shown = False
    #: Whether on_mount drew (:meth:`draw_on_mount`).
    _drawn_on_mount = False

    def on_screen_resume(self) -> None:
        """Every show draws from the database once, the first show included (unless
        ``on_mount`` just drew, :meth:`draw_on_mount`).

        Textual calls the ``on_screen_resume`` of every class in the MRO (a subclass's
        first, then this one), so a subclass must not define one that draws too (that
        drew home three times on open): it overrides :meth:`drawn_on_show` instead.
        """
        first = not self._was_shown
        self._was_shown = True
        if not (first and self._drawn_on_mount):
            self.refresh_from_store()
        self.drawn_on_show(first)
