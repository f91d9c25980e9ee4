"""The form widget: nothing typed or pasted is lost in silence (issue 9).

A paste that would take a field past its maximum length is refused with a message
beside the field and the field keeps what it had (a clinical note is never cut at an
arbitrary character); a key typed at the limit says so too; a pasted text of several
lines keeps every line. The widget runs in a small host app (Pilot); the queue's
close dialog shows the same through the real app (tests/test_ui_followups.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input

from sma_log.domain.fields import MAX_TEXT, NOTE_FIELD, FieldSpec
from sma_log.ui.widgets.form import FormField

SHORT = FieldSpec("code", "Code", "text", max_length=60)


class Host(App[None]):
    def __init__(self, spec: FieldSpec = NOTE_FIELD, value: Any = None) -> None:
        super().__init__()
        self.spec = spec
        self.value = value

    def compose(self) -> ComposeResult:
        yield FormField(self.spec, self.value)

    def on_mount(self) -> None:
        self.query_one(Input).focus()


def run(app: Host, script: Any) -> None:
    async def main() -> None:
        async with app.run_test(size=(100, 12)) as pilot:
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


def error_text(app: Host) -> str:
    field = app.query_one(FormField)
    return str(field.query_one(".field-error").render()) if field.has_class("-invalid") else ""


async def paste(pilot: Any, text: str) -> None:
    pilot.app.query_one(Input).post_message(events.Paste(text))
    await pilot.pause()


def test_a_2001_character_paste_into_the_note_is_refused_with_a_message() -> None:
    assert MAX_TEXT == 2000
    app = Host()

    async def script(pilot: Any) -> None:
        note = app.query_one(Input)
        await paste(pilot, "a" * 2001)
        assert note.value == ""  # nothing half-pasted
        message = error_text(app)
        assert "Not pasted" in message
        assert "at most 2,000 characters" in message and "2,001" in message
        assert app.query_one(FormField).has_class("-invalid")
        # A paste that fits goes in, and the message goes with the change.
        await paste(pilot, "a" * 2000)
        assert note.value == "a" * 2000
        assert error_text(app) == ""

    run(app, script)


def test_a_paste_counts_what_the_field_already_holds_and_what_it_replaces() -> None:
    app = Host(SHORT, "x" * 50)

    async def script(pilot: Any) -> None:
        code = app.query_one(Input)
        code.cursor_position = 50
        await paste(pilot, "y" * 11)  # 61 > 60
        assert code.value == "x" * 50
        assert "with the paste it would hold 61" in error_text(app)
        code.selection = (0, 50)  # replacing all 50 leaves room for 11
        await paste(pilot, "y" * 11)
        assert code.value == "y" * 11
        assert error_text(app) == ""

    run(app, script)


def test_a_key_typed_at_the_limit_says_so_and_the_text_stays() -> None:
    app = Host(SHORT, "z" * 60)

    async def script(pilot: Any) -> None:
        code = app.query_one(Input)
        code.cursor_position = 60
        await pilot.press("q")
        await pilot.pause()
        assert code.value == "z" * 60
        assert "Code holds at most 60 characters: that key was not added" in error_text(app)
        await pilot.press("backspace")
        await pilot.pause()
        assert code.value == "z" * 59 and error_text(app) == ""

    run(app, script)


def test_a_paste_of_several_lines_keeps_every_line() -> None:
    app = Host()

    async def script(pilot: Any) -> None:
        await paste(pilot, "first line\nsecond line\r\n\nthird\n")
        assert app.query_one(Input).value == "first line second line third"
        assert error_text(app) == ""

    run(app, script)
