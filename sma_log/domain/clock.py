"""Instants as data.

* One stored form: fixed-width UTC text, ``2026-03-27T09:00:00.000000Z``. It sorts as
  text and SQLite's ``datetime()`` / ``unixepoch()`` read it. Convert in one place
  (:func:`to_text` / :func:`from_text`), never anywhere else.
* "Now" always comes from :func:`now_utc`, which reads pendulum, so tests travel in
  time with ``pendulum.travel_to`` instead of sleeping.
* The live timer is derived from the stored start. While the machine has not
  rebooted it uses ``CLOCK_BOOTTIME`` differences (immune to NTP steps and manual
  clock changes); after a reboot, or on systems without it, wall time minus start.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pendulum

STORED_FORMAT_LEN = len("2026-03-27T09:00:00.000000Z")
#: ``YYYY-MM-DDTHH:MM:SS``, optionally ``.ffffff``, optionally ``Z``: the stored form is
#: the longest; the others are what analysis rows (``…SSZ``) and foreign files give.
_INSTANT_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{6}))?Z?"
)
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def now_utc() -> pendulum.DateTime:
    return pendulum.now("UTC")


def to_text(dt: datetime) -> str:
    """The one stored form: UTC, microseconds, trailing Z, always 27 characters
    (any aware datetime; pendulum's DateTime is one)."""
    utc = pendulum.instance(dt).in_timezone("UTC")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Fields = tuple[int, int, int, int, int, int, int]


def instant_fields(text: object) -> Fields:
    """Year, month, day, hour, minute, second, microsecond of a UTC instant written
    ``YYYY-MM-DDTHH:MM:SS`` with an optional ``.ffffff`` and an optional ``Z`` (19, 20,
    26 or 27 characters; a missing fraction reads as 0). ValueError for any other text;
    the date itself is checked by whoever builds a datetime from them."""
    m = _INSTANT_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an instant: {text!r}")
    year, month, day, hour, minute, second, micro = m.groups()
    return (
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int(micro) if micro is not None else 0,
    )


def stored_fields(text: object) -> Fields:
    """:func:`instant_fields` of a text in the one stored form only (27 characters:
    fraction and ``Z``); ValueError for any other."""
    if not isinstance(text, str) or len(text) != STORED_FORMAT_LEN:
        raise ValueError(f"not a stored instant: {text!r}")
    try:
        return instant_fields(text)
    except ValueError:
        raise ValueError(f"not a stored instant: {text!r}") from None


def from_text(text: str) -> pendulum.DateTime:
    parts = stored_fields(text)
    try:  # the class itself: the same value as pendulum.datetime(..., tz="UTC"), 10x faster
        return pendulum.DateTime(*parts, tzinfo=pendulum.UTC)
    except ValueError as exc:
        raise ValueError(f"not a stored instant: {text!r}") from exc


def now_text() -> str:
    return to_text(now_utc())


@dataclass(frozen=True)
class Anchor:
    """A monotonic reading taken when a procedure starts, with the boot it belongs to."""

    boot_id: str
    boottime: float


def _boot_id() -> str | None:
    try:
        return _BOOT_ID_PATH.read_text().strip()
    except OSError:
        return None


def _boottime() -> float | None:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is None:
        return None
    return time.clock_gettime(clock)


class Clock:
    """Where the app reads time.

    ``monotonic=True`` (the app's default) anchors timers to ``CLOCK_BOOTTIME``.
    ``monotonic=False`` derives every elapsed time from wall time alone, which is
    what tests want when they travel in time with pendulum.
    """

    def __init__(self, monotonic: bool = True) -> None:
        self.monotonic = monotonic and _boottime() is not None and _boot_id() is not None

    def now(self) -> pendulum.DateTime:
        return now_utc()

    def anchor(self) -> Anchor | None:
        if not self.monotonic:
            return None
        boot, reading = _boot_id(), _boottime()
        if boot is None or reading is None:
            return None
        return Anchor(boot, reading)

    def anchored(self, anchor: Anchor | None) -> bool:
        """Whether ``anchor`` can measure elapsed time now (same boot, monotonic on)."""
        return anchor is not None and self.monotonic and anchor.boot_id == _boot_id()

    def elapsed(self, start: pendulum.DateTime, anchor: Anchor | None = None) -> float:
        """Seconds since ``start``; never negative, whatever the wall clock did."""
        if anchor is not None and self.monotonic and anchor.boot_id == _boot_id():
            reading = _boottime()
            if reading is not None:
                return max(0.0, reading - anchor.boottime)
        return max(0.0, (self.now() - start).total_seconds())


def format_elapsed(seconds: float) -> str:
    """``mm:ss`` under an hour, ``h:mm:ss`` from an hour on."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"
