"""Form fields that validate as you type, built from the domain's field specs.

Nothing typed is lost in silence: a key or a paste that would take a text field past
its maximum length is refused with a message beside the field (the field keeps what
it had, so a long note is never cut at an arbitrary character), and a pasted text of
several lines keeps every line (joined by spaces: the field is one line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select, Static

from ...domain.cells import number_text
from ...domain.fields import FieldSpec, ValidationError
from ...domain.text import visible

Check = Callable[[Any], str | None]


class SpecValidator(Validator):
    """Wraps a domain :class:`FieldSpec`: the form and the store refuse the same values."""

    def __init__(self, spec: FieldSpec, extra: Check | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.extra = extra

    def validate(self, value: str) -> ValidationResult:
        try:
            parsed = self.spec.parse(value)
        except ValidationError as exc:
            return self.failure(exc.message)
        if self.extra is not None and parsed is not None:
            message = self.extra(parsed)
            if message:
                return self.failure(message)
        return self.success()


class BoundedInput(Input):
    """An Input that says why, when a key or a paste would pass its maximum length.

    Textual's Input rings the bell and drops the whole paste; this one posts
    :class:`BoundedInput.Refused` (its :class:`FormField` shows the message) and
    keeps the field as it was.
    """

    class Refused(Message):
        """A key or a paste was not taken; ``message`` says why."""

        def __init__(self, input: BoundedInput, message: str) -> None:
            super().__init__()
            self.input = input
            self.message = message

    def __init__(self, *args: Any, what: str = "This field", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.what = what

    def restricted(self) -> None:
        """A typed key that would pass the maximum length (the only restriction here)."""
        super().restricted()
        self.post_message(
            self.Refused(
                self,
                f"{self.what} holds at most {self.max_length:,} characters: that key was not added",
            )
        )

    def _on_paste(self, event: events.Paste) -> None:
        event.prevent_default()  # not Input's own handler: it keeps the first line only
        event.stop()
        if not event.text:
            return
        text = " ".join(line.strip() for line in event.text.splitlines() if line.strip())
        start, end = sorted(self.selection)
        total = len(self.value) - (end - start) + len(text)
        if self.max_length and total > self.max_length:
            self.app.bell()
            self.post_message(
                self.Refused(
                    self,
                    f"Not pasted: {self.what} holds at most {self.max_length:,} characters "
                    f"and with the paste it would hold {total:,}. The field is unchanged: "
                    "shorten the text and paste it again.",
                )
            )
            return
        if start == end:
            self.insert_text_at_cursor(text)
        else:
            self.replace(text, start, end)


class FormField(Horizontal):
    """A label, a control (Input or Select) and the reason its value is refused."""

    DEFAULT_CSS = """
    FormField { height: auto; margin: 0 0 0 0; }
    FormField > Label.field-label { width: 24; padding: 0 1 0 0; text-align: right; }
    FormField > Vertical { height: auto; width: 1fr; }
    FormField .field-error { color: $text-error; height: auto; display: none; }
    FormField.-invalid .field-error { display: block; }
    FormField .field-note { color: $text-warning; height: auto; display: none; }
    FormField.-noted .field-note { display: block; }
    """

    def __init__(
        self,
        spec: FieldSpec,
        value: Any = None,
        *,
        suggester: Suggester | None = None,
        placeholder: str = "",
        id: str | None = None,
        extra: Check | None = None,
        select_on_focus: bool = True,
        blank: str = "—",
        required: bool | None = None,
    ) -> None:
        """``blank`` is what an unanswered choice shows ("not asked" in a follow-up);
        ``required`` marks the label with * (default: the spec's own ``required``)."""
        super().__init__(id=id or f"field-{spec.name}")
        self._select_on_focus = select_on_focus
        self._blank = blank
        self._required = spec.required if required is None else required
        self.spec = spec
        self.extra = extra
        self._initial = value
        self._suggester = suggester
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        spec = self.spec
        mark = " *" if self._required else ""
        unit = f" ({spec.unit})" if spec.unit else ""
        yield Label(f"{spec.label}{unit}{mark}", classes="field-label")
        with Vertical():
            if spec.kind == "choice" or spec.kind == "bool":
                options = (
                    [(label, code) for code, label in spec.choices]
                    if spec.kind == "choice"
                    else [("Yes", "yes"), ("No", "no")]
                )
                initial = self._initial
                if spec.kind == "bool" and isinstance(initial, bool):
                    initial = "yes" if initial else "no"
                if initial is not None:
                    initial = str(initial)
                codes = [code for _, code in options]
                yield Select(
                    options,
                    value=initial if initial in codes else Select.NULL,
                    allow_blank=not spec.required or initial not in codes,
                    prompt=self._blank,
                    id=f"{spec.name}",
                    compact=True,
                )
            else:
                hint = self._placeholder or _hint(spec)
                if self._blank != "—":
                    hint = f"{self._blank} ({hint})" if hint else self._blank
                yield BoundedInput(
                    value="" if self._initial is None else _fmt(self._initial, spec),
                    placeholder=hint,
                    validators=[SpecValidator(spec, self.extra)],
                    validate_on=["changed", "blur", "submitted"],
                    suggester=self._suggester,
                    # The first field of a form (the study code) may get keys before
                    # its focus arrives: selecting all on focus would let the next key
                    # replace what was already typed.
                    select_on_focus=self._select_on_focus,
                    id=f"{spec.name}",
                    compact=True,
                    max_length=max(spec.max_length, 40),
                    what=spec.label,
                )
            yield Static("", classes="field-error", markup=False)
            yield Static("", classes="field-note", markup=False)

    def show_note(self, message: str | None) -> None:
        """A note beside the field that is not a refusal (a required answer missing, a
        value that raises a clinical flag): the value is kept, the form may save."""
        self.set_class(bool(message), "-noted")
        self.query_one(".field-note", Static).update(Text(message or ""))

    @property
    def control(self) -> Input | Select[Any]:
        control = self.query_one(f"#{self.spec.name}")
        if not isinstance(control, Input | Select):
            raise TypeError(f"#{self.spec.name} is not an input")  # compose() makes one
        return control

    @property
    def raw(self) -> Any:
        control = self.control
        if isinstance(control, Select):
            return None if control.value is Select.NULL else control.value
        return control.value

    def set_value(self, value: Any) -> None:
        control = self.control
        if isinstance(control, Select):
            if value is None:
                if control._allow_blank:
                    control.clear()
                return
            code = str(value) if not isinstance(value, bool) else ("yes" if value else "no")
            if code in [c for _, c in control._options if c is not Select.NULL]:
                control.value = code
            elif control._allow_blank:  # a code the vocabulary does not know: unanswered
                control.clear()
        else:
            control.value = "" if value is None else _fmt(value, self.spec)

    def check(self) -> tuple[Any, str | None]:
        """The parsed value and no message, or None and the message (also shown)."""
        try:
            value = self.spec.parse(self.raw)
        except ValidationError as exc:
            self.show_error(exc.message)
            return None, exc.message
        message = self.extra(value) if self.extra is not None and value is not None else None
        self.show_error(message)
        return (None, message) if message else (value, None)

    def show_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(Text(message or ""))

    def on_input_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        if result is None or result.is_valid:
            self.show_error(None)
        else:
            self.show_error(result.failure_descriptions[0])

    def on_select_changed(self, event: Select.Changed) -> None:
        self.check()

    def on_bounded_input_refused(self, event: BoundedInput.Refused) -> None:
        """Beside the field until its value next changes."""
        event.stop()
        self.show_error(event.message)


def _fmt(value: Any, spec: FieldSpec | None = None) -> str:
    """A stored value as the field's text. Text from the database or a file shows its
    control characters made visible (:func:`~sma_log.domain.text.visible`; a note's
    lines and tabs are kept): what the field shows is what saving it keeps."""
    if isinstance(value, float):  # what visible(value) gives, but 12.0 as 12
        return number_text(value)
    multiline = spec is not None and spec.max_length > 200
    return visible(value, multiline=multiline)


def _hint(spec: FieldSpec) -> str:
    if spec.kind in ("int", "float") and spec.minimum is not None:
        unit = f" {spec.unit}" if spec.unit else ""
        return f"{_fmt(spec.minimum)}–{_fmt(spec.maximum)}{unit}"
    return ""


def collect(fields: list[FormField]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check every field; return (values, errors by field name)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        value, message = f.check()
        if message:
            errors[f.spec.name] = message
        else:
            values[f.spec.name] = value
    return values, errors
