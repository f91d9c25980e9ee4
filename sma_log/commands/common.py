"""What the headless commands share: options, refusals, reading the database, private files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.store import Store

EXIT_REFUSED = 2
#: An export written, but with bad cells (each reported on one line of stderr).
EXIT_BAD_CELLS = 3


def format_option(help: str, choices: tuple[str, ...] = ("text", "json")) -> Any:
    """The ``--format`` option of a command that prints (``fmt``; the first choice is
    the default): one definition for every command."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help,
    )


class CommandRefused(Exception):
    """A refusal of a headless command: one line, exit code 2, nothing changed."""


class Options:
    def __init__(self, db: Path | None, user: str | None, demo: bool) -> None:
        self.db_option = db
        self.user_option = user
        self.demo = demo
        self.demo_path: Path | None = None
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ..config import Settings

            self._settings = Settings.load()
        return self._settings

    @property
    def db_path(self) -> Path:
        if self.demo_path is not None:
            return self.demo_path
        if self.db_option is not None:
            try:
                return self.db_option.expanduser()
            except RuntimeError:  # "~name" of no known user, or no home folder
                raise CommandRefused(
                    f"{self.db_option}: cannot expand '~' (no such user or no home folder)"
                ) from None
        from ..config import default_db_path

        return default_db_path()  # SMA_LOG_DB, else the user data folder

    @property
    def user(self) -> str:
        if self.user_option:
            return self.user_option
        if self.settings.operator:
            return str(self.settings.operator)
        from ..storage.store import default_user

        return default_user()


def open_for_reading(path: Path, user: str) -> Store:
    """:meth:`sma_log.storage.store.Store.open_for_reading` (read-only if possible)."""
    from ..storage.store import Store

    return Store.open_for_reading(path, user)


def site_timezone(settings: Settings) -> str:
    from ..domain import schedule

    name = settings.tz_name()
    problem = schedule.validate_timezone(name)
    if problem:
        raise CommandRefused(f"settings: {problem}; fix it with: sma-log settings --timezone NAME")
    return str(name)


def utc_text(value: Any) -> str | None:
    """The stored UTC form as ISO 8601 with a Z (seconds, no microseconds)."""
    if value is None:
        return None
    from ..domain.clock import from_text

    dt = from_text(value) if isinstance(value, str) else value
    return str(dt.in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def local_iso(value: Any, tz: str) -> str | None:
    if value is None:
        return None
    from ..domain.clock import from_text

    dt = from_text(value) if isinstance(value, str) else value
    return str(dt.in_timezone(tz).isoformat(timespec="seconds"))


def write_private(path: Path, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` as a new 0600 file, complete or not at all.

    Written beside ``path`` and moved into place; without ``force`` an existing
    ``path`` is never replaced (even one that appeared meanwhile).
    """
    import contextlib

    path = path.expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CommandRefused(
                    f"{path}: already exists; choose another path or use --force"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def unreadable_text_refused() -> Iterator[None]:
    """A text cell that is not UTF-8 (written by another tool) as one refusal line.

    Python's sqlite3 cannot read such a cell at all, so no format can carry it: the
    command stops with exit code 2 instead of a traceback.
    """
    import sqlite3

    try:
        yield
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc) or "UTF-8" not in str(exc):
            raise
        from ..domain.text import visible

        raise CommandRefused(
            f"a text cell of the file is not UTF-8 ({visible(str(exc))[:160]}); "
            "no format can carry it: fix it in the file with sqlite3"
        ) from None
