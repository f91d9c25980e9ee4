"""Text from a file or the database, made safe to show: the one rule for every screen,
CLI line, conflict list and calendar file.

The Store cleans what people type (:func:`sma_log.domain.fields._clean_text`), but a
file written by another tool can hold anything: an ESC sequence in a study code would
clear the screen or retitle the terminal, a bidirectional override would reorder what
a reader sees. :func:`visible` shows every such character as an escape (``\\x1b``,
``\\u202e``), so it is seen, never obeyed.
"""

from __future__ import annotations

#: Characters that change how the text around them is drawn (bidirectional controls).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _shown(ch: str, multiline: bool) -> bool:
    if multiline and ch in "\n\t":
        return True
    if ch in _BIDI:
        return False
    return ch.isprintable() or (ch == " ")


def visible(value: object, *, multiline: bool = False) -> str:
    """``value`` as text with control, format and bidi characters escaped.

    ``multiline`` keeps newlines and tabs (a note shown in full); elsewhere they are
    escaped too, so one record stays on one line. ``None`` is the empty string.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if all(_shown(ch, multiline) for ch in text):  # the common case: nothing to do
        return text
    return "".join(ch if _shown(ch, multiline) else _escape(ch) for ch in text)


def has_control(value: object) -> bool:
    """Whether :func:`visible` would change ``value`` (single-line rules)."""
    return isinstance(value, str) and visible(value) != value
