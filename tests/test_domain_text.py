"""The one rule for showing text from a file: control characters are seen, never obeyed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sma_log.domain.text import has_control, visible


def test_escapes_are_shown_not_obeyed() -> None:
    assert visible("DEMO-001") == "DEMO-001"
    assert visible("A\x1b]0;pwned\x07B") == "A\\x1b]0;pwned\\x07B"
    assert visible("\x9b31m") == "\\x9b31m"  # C1 CSI
    assert visible("abc\u202edcba") == "abc\\u202edcba"  # right-to-left override
    assert visible("caf\u00e9 \u2603") == "caf\u00e9 \u2603"
    assert visible("a\nb") == "a\\nb"
    assert visible("a\nb\tc", multiline=True) == "a\nb\tc"
    assert visible(None) == "" and visible(42) == "42"
    assert has_control("x\x00") and not has_control("plain")


@given(st.text())
def test_nothing_unprintable_survives(text: str) -> None:
    shown = visible(text)
    assert all(ch.isprintable() for ch in shown)
    assert "\x1b" not in shown and "\u202e" not in shown
    assert visible(shown) == shown  # already visible text is left as it is


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S"], include_characters=" ")))
def test_ordinary_text_is_unchanged(text: str) -> None:
    if not any(ch in text for ch in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"):
        assert visible(text) == text
