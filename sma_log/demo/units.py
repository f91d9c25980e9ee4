"""Time in the generator: integer microseconds since the epoch, and the stored text form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain import timeline

EPOCH = datetime(1970, 1, 1)
SEC = 1_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR


def text(us: int) -> str:
    """Microseconds since the epoch → the stored form (same as ``clock.to_text``)."""
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def dt(us: int) -> datetime:
    """Microseconds since the epoch → a naive UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def us_of_dt(value: datetime) -> int:
    """A naive UTC datetime → microseconds since the epoch."""
    return (value - EPOCH) // timedelta(microseconds=1)


def us_of(stored: str) -> int:
    """The stored form → microseconds since the epoch."""
    return us_of_dt(datetime.fromisoformat(stored[:-1]))


def offset_min(end: int, at: int) -> float:
    """Minutes from the end to ``at`` (microseconds), as the Store stores them."""
    return timeline.whole_second_minutes((at - end) / SEC)


def to_us(now: Any) -> int:
    """``write_demo``'s ``now`` (None: the current second) → microseconds since the epoch."""
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    # A plain datetime (a pendulum DateTime's subtraction returns an Interval).
    now = datetime(now.year, now.month, now.day, now.hour, now.minute, now.second, now.microsecond)
    return us_of_dt(now)
