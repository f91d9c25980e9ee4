"""How a value becomes a spreadsheet cell: the rules every writer of CSV applies.

Pure functions of one value (no Textual, no SQLite): the formula guard, the record-id
mask and the text of a number. Every export format and every command that writes a
CSV file calls these, never a copy of them.
"""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")

#: A text cell that begins with one of these is a formula to a spreadsheet (OWASP
#: "CSV injection"): ``=``, ``+``, ``-``, ``@``, a tab, a carriage return.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

#: A record id is a ULID of this length; its first :data:`ID_TIME_CHARS` characters
#: encode its creation time to the millisecond.
ULID_LENGTH = 26
ID_TIME_CHARS = 10


def formula_safe(value: _T) -> _T | str:
    """``value`` as a cell a spreadsheet will not run as a formula: text that begins
    with a :data:`FORMULA_PREFIXES` character gets a leading single quote. Anything
    that is not text (a number, even a negative one) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def mask_id(value: _T) -> _T | str:
    """A ULID without its time: its first :data:`ID_TIME_CHARS` characters become
    zeros, so ids still join (and stay the same from one export to the next) but carry
    no time. Anything that is not a 26-character text is returned unchanged."""
    if isinstance(value, str) and len(value) == ULID_LENGTH:
        return "0" * ID_TIME_CHARS + value[ID_TIME_CHARS:]
    return value


def number_text(value: float) -> str:
    """A number as a person reads it: a whole number without ``.0`` (``12``), any
    other as Python's shortest round-trip form (``12.5``, ``0.1``)."""
    return str(int(value)) if float(value).is_integer() else repr(value)
