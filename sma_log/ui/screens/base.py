"""What every screen shares: access to the store and safe calls into it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from textual.screen import Screen

from ...domain.fields import ValidationError
from ...domain.timeline import RuleError
from ...storage.errors import Conflict, NotFound, StorageError

if TYPE_CHECKING:
    from ...storage.store import Store
    from ..app import SmaLogApp

T = TypeVar("T")


def guarded(app: SmaLogApp, action: Callable[[], T]) -> T | None:
    """Run a store call; turn refusals into messages. Returns None when refused.

    A rule or validation refusal is a notification (expected feedback at the
    bedside); a storage failure (disk full, read-only, damaged file) must be
    acknowledged in a dialog, and nothing is shown as done.
    """
    try:
        return action()
    except (RuleError, ValidationError, Conflict, NotFound) as exc:
        app.notify(str(exc), title="Not recorded", severity="warning", markup=False)
    except StorageError as exc:
        from ..modals.message import MessageDialog

        app.push_screen(MessageDialog("Not saved", str(exc)))
    return None


class AppScreen(Screen[Any]):
    """A screen that redraws from the store and refreshes when the file changes."""

    @property
    def sma(self) -> SmaLogApp:
        return self.app  # type: ignore[return-value]

    @property
    def store(self) -> Store:
        return self.sma.store

    @property
    def tz(self) -> str:
        return self.sma.tz

    def guarded(self, action: Callable[[], T]) -> T | None:
        return guarded(self.sma, action)

    def refresh_from_store(self) -> None:
        """Redraw from the database (called on show and when another process writes)."""

    def on_screen_resume(self) -> None:
        self.refresh_from_store()
