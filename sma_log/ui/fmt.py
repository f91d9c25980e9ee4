"""Showing stored instants in the site's time zone."""

from __future__ import annotations

from typing import Any

import pendulum

from ..domain.clock import from_text


def _dt(value: Any) -> pendulum.DateTime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return from_text(value)
    return pendulum.instance(value)


def local_time(value: Any, tz: str, fmt: str = "HH:mm:ss") -> str:
    dt = _dt(value)
    return dt.in_timezone(tz).format(fmt) if dt else "—"


def local_datetime(value: Any, tz: str) -> str:
    return local_time(value, tz, "YYYY-MM-DD HH:mm")


def minutes(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} min"


def short_datetime(value: Any, tz: str) -> str:
    return local_time(value, tz, "DD MMM HH:mm")
