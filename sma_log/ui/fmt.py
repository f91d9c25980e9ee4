"""Showing stored values: instants in the site's time zone, text made visible.

Every text a screen shows that comes from the database or a file goes through
:func:`sma_log.domain.text.visible` (an ESC sequence in a study code would clear the
screen or retitle the terminal): :func:`shown` and :func:`cell` are its screen forms.
A value another tool wrote that cannot be read (a time with month 13, text in a number
column) is shown as stored, made visible, never a crash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
from rich.text import Text

from ..domain.clock import from_text, stored_fields
from ..domain.text import visible

#: What a screen shows for a missing value.
NONE = "—"


def shown(value: Any, *, multiline: bool = False, empty: str = NONE) -> str:
    """``value`` as a screen shows it: ``empty`` when missing, control characters
    made visible (:func:`~sma_log.domain.text.visible`) otherwise."""
    if value is None or value == "":
        return empty
    if isinstance(value, bytes):  # a BLOB another tool wrote: no value to show
        return f"x'{value[:16].hex()}'"
    if isinstance(value, str) and value.isprintable():
        # The common case, in C: every control, format and bidi character is
        # unprintable, so visible() would return the text as it is.
        return value
    return visible(value, multiline=multiline)


def cell(value: Any, style: str = "", *, empty: str = NONE) -> Text:
    """A table cell: :class:`~rich.text.Text` (never markup) of :func:`shown`."""
    return Text(shown(value, empty=empty), style=style)


def _dt(value: Any) -> pendulum.DateTime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return from_text(value)
    return pendulum.instance(value)


#: The patterns screens use, as strftime (month names in English, as pendulum's
#: default locale writes them): formatted with the standard library, ≈15x faster than
#: pendulum's ``format`` (a home screen at 100k procedures shows 500 dates).
_STRFTIME = {
    "HH:mm:ss": "%H:%M:%S",
    "HH:mm": "%H:%M",
    "YYYY-MM-DD HH:mm": "%Y-%m-%d %H:%M",
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD MMM HH:mm": "%d {MMM} %H:%M",
    "DD MMM YY": "%d {MMM} %y",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _fast(value: Any, tz: str, pattern: str) -> str | None:
    """``value`` in ``tz`` by the standard library; None where it cannot say (the
    caller then asks pendulum, which gives the same text)."""
    if isinstance(value, str):
        utc = datetime(*stored_fields(value), tzinfo=UTC)  # ValueError: not stored form
    elif isinstance(value, datetime) and value.tzinfo is not None:
        utc = value
    else:
        return None
    try:
        zone = ZoneInfo(tz)  # cached by zoneinfo
    except (ValueError, KeyError, OSError):  # not an IANA key pendulum may still read
        return None
    local = utc.astimezone(zone)
    return local.strftime(pattern).replace("{MMM}", _MONTHS[local.month - 1])


def local_time(value: Any, tz: str, fmt: str = "HH:mm:ss") -> str:
    try:
        pattern = _STRFTIME.get(fmt)
        if pattern is not None and value is not None and value != "":
            text = _fast(value, tz, pattern)
            if text is not None:
                return text
        dt = _dt(value)
        return dt.in_timezone(tz).format(fmt) if dt else NONE
    except (ValueError, TypeError, OverflowError):  # not a stored instant: as it is
        return shown(value)


def local_datetime(value: Any, tz: str) -> str:
    return local_time(value, tz, "YYYY-MM-DD HH:mm")


def minutes(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return shown(value)
    return f"{float(value):.1f} min"


def short_datetime(value: Any, tz: str) -> str:
    return local_time(value, tz, "DD MMM HH:mm")
