"""What screens and dialogs use of the running app, named apart from the app itself.

:class:`sma_log.ui.app.SmaLogApp` imports every screen; a screen or dialog that
imported it back would make a cycle, so they see the app through :class:`SmaApp`
(a ``typing.Protocol``: checked by the type checker, nothing at run time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Settings
    from ..domain.clock import Clock
    from ..storage.store import Store


class SmaApp(Protocol):
    """What a screen or dialog uses of :class:`sma_log.ui.app.SmaLogApp`."""

    db_path: Path
    settings: Settings
    clock: Clock
    demo: bool

    @property
    def store(self) -> Store: ...  # pragma: no cover

    @property
    def tz(self) -> str: ...  # pragma: no cover

    def open_procedure(self, proc_id: str) -> None: ...  # pragma: no cover

    def go_home(self, message: str | None = None) -> None: ...  # pragma: no cover
