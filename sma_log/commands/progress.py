"""Progress of long headless work: a bar on a terminal, nothing at all in a pipe.

One helper for every command (``demo``, ``import``, ``export``, ``info --check``)::

    with progress_bar("Writing demo", total=30_000, unit="procedures") as bar:
        write_demo(..., progress=bar.update_to)   # absolute: done so far
        # or bar.advance(n) / for row in bar.wrap(rows): ...

On a terminal (stderr is a TTY) it is click's progress bar on stderr: the bar, the
count ``done/total``, the percentage, an estimate of the time left and, if given,
what is being done now (``bar.update_to(done, item="procedures")``). When stderr is
not a terminal (a pipe, a file, cron, CliRunner) it writes nothing whatsoever, so the
output of a script is the same with and without this helper.

The bar starts at the first update, not on entry: a command refused before any work
shows its one line only. Redraws are throttled (``min_interval``) so a per-row
update costs almost nothing; the last count is always drawn before the bar closes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO


def stderr_is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: the current stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, or not a real stream
        return False


class Progress:
    """Counts of one piece of work; shown by click on a terminal, else dropped."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "",
        enabled: bool,
        stream: TextIO | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.done = 0
        self.item: str | None = None
        self._stream = stream
        self._min_interval = min_interval
        self._bar: Any = None
        self._drawn = 0  # the count the bar shows
        self._last = 0.0

    # ------------------------------------------------------------ what callers use
    def update_to(self, done: int, total: int | None = None, *, item: str | None = None) -> None:
        """``done`` items so far (absolute); optionally a new total, what is done now.

        So ``bar.update_to`` is both a ``progress(done)`` and a ``progress(done, total)``
        callback (the export writers call the latter)."""
        if total is not None:
            self.total = total
        if item is not None:
            self.item = item
        self.done = max(self.done, int(done))
        if self.enabled:
            self._draw(force=False)

    def advance(self, n: int = 1, item: str | None = None) -> None:
        """``n`` more items done."""
        self.update_to(self.done + n, item=item)

    def stage(self, item: str) -> None:
        """What is being done now (shown beside the bar), the count unchanged."""
        self.update_to(self.done, item=item)

    def wrap(self, rows: Iterable[Any]) -> Iterator[Any]:
        """``rows`` unchanged, each one counted as it is handed on."""
        for row in rows:
            yield row
            self.advance()

    __call__ = update_to  # so a Progress is itself a ``progress(done[, total])`` callback

    # ------------------------------------------------------------ drawing
    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and self._bar is not None and now - self._last < self._min_interval:
            return
        if self._bar is None:
            self._start()
        bar = self._bar
        if self.total and self.total != bar.length:
            bar.length = self.total
        step = self.done - self._drawn
        self._drawn = self.done
        if step > 0:
            bar.update(step, self.item)
        else:
            bar.current_item = self.item
            bar.render_progress()
        self._last = now

    def _start(self) -> None:
        import click

        unit = self.unit

        def show(item: str | None) -> str | None:
            return f"{item}" if item else (unit or None)

        self._bar = click.progressbar(
            length=max(self.total or 0, 1),
            label=self.label,
            file=self._stream if self._stream is not None else sys.stderr,
            show_eta=True,
            show_pos=True,
            show_percent=True,
            item_show_func=show,
        )
        self._bar.__enter__()

    def close(self) -> None:
        """Draw the last count and end the bar's line (nothing if nothing was shown)."""
        if self._bar is None:
            return
        if self._drawn != self.done:
            self._draw(force=True)
        self._bar.__exit__(None, None, None)
        self._bar = None


@contextlib.contextmanager
def progress_bar(
    label: str,
    total: int | None = None,
    *,
    unit: str = "",
    enabled: bool | None = None,
    stream: TextIO | None = None,
) -> Iterator[Progress]:
    """A :class:`Progress` for the block; on a terminal only (see the module docstring).

    ``enabled`` defaults to "stderr is a terminal"; ``stream`` to stderr.
    """
    if enabled is None:
        enabled = stderr_is_terminal(stream)
    bar = Progress(label, total, unit=unit, enabled=enabled, stream=stream)
    try:
        yield bar
    finally:
        bar.close()


ProgressCallback = Callable[[int], Any]
