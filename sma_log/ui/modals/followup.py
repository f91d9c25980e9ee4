"""Entering (or correcting) a follow-up; closing one as unreachable or declined.

Unknown is not no: an adverse-event question left unanswered shows "not asked" and
is saved as unknown; ctrl+n answers every one that is still unanswered with "no
adverse events" (answers already given are kept, and said so). Escape on a form that
was changed asks before discarding what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from ...domain import fields, schedule, vocab
from ...domain.text import visible
from ..widgets.form import FormField, collect
from .base import Dialog
from .confirm import ConfirmDialog

PDPH_ONLY = fields.PDPH_DETAILS
OTHER_EVENT_ONLY = ("other_event", "other_event_serious")
#: The adverse-event questions and the answers that mean "none" (the domain's).
NO_EVENTS: dict[str, Any] = dict(schedule.NO_ADVERSE_EVENTS)
NOT_ASKED = "not asked"
#: Questions whose blank answer is unknown ("not asked"), never "no".
UNKNOWN_WHEN_BLANK = frozenset([*NO_EVENTS, *PDPH_ONLY, *OTHER_EVENT_ONLY])


def _words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return visible(value)


if TYPE_CHECKING:
    # What the mixin uses of the dialog it is mixed into (at run time a plain object).
    _GuardBase = Dialog[Any]
else:
    _GuardBase = object


class ChangeGuard(_GuardBase):
    """Escape (or Cancel) on a changed form asks before discarding what was typed."""

    _start: dict[str, Any]

    def remember(self) -> None:
        self._start = self.form_values()

    def form_values(self) -> dict[str, Any]:
        return {f.spec.name: f.raw for f in self.query(FormField)}

    def changed(self) -> list[str]:
        """Labels of the fields whose value differs from when the form opened."""
        now = self.form_values()
        return [
            f.spec.label
            for f in self.query(FormField)
            if (now.get(f.spec.name) or None) != (self._start.get(f.spec.name) or None)
        ]

    def action_cancel(self) -> None:
        changed = self.changed()
        if not changed:
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmDialog(
                "Discard what was typed?",
                f"Changed: {', '.join(changed)}. Nothing of it is saved if you discard it.",
                yes_label="Discard",
                no_label="Keep editing",
            ),
            answered,
        )


class FollowupDialog(ChangeGuard, Dialog[dict[str, Any] | None]):
    """The answers of one follow-up.

    With ``save`` (the screen's store call; True when saved) the dialog stays open,
    answers kept, when the Store refuses them, and closes with the answers once saved.
    Without it, it returns the answers for :meth:`Store.complete_followup`.
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="followup.save"),
        Binding("ctrl+n", "no_events", "No adverse events", id="followup.none"),
    ]

    def __init__(
        self,
        heading: str,
        row: dict[str, Any],
        assessor: str,
        save: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        super().__init__()
        self.heading = heading
        self.row = row
        self.assessor = assessor
        self.save = save
        kind = str(row.get("kind") or "day3")
        self.required = set(schedule.REQUIRED_BY_KIND.get(kind, ())) | set(
            schedule.REQUIRED_ON_COMPLETE
        )

    def compose(self) -> ComposeResult:
        specs = fields.FOLLOWUP_FIELDS
        row = self.row
        with VerticalScroll(classes="dialog", id="followup-dialog"):
            yield Static(Text(visible(self.heading), style="bold"), classes="dialog-title")
            yield Static(
                Text(
                    "Type the score 1–5; ctrl+n = no adverse events (answers the questions "
                    "still unanswered); ctrl+s saves; Escape cancels. * = needed to complete; "
                    "an unanswered question is saved as not asked.",
                    style="italic",
                )
            )
            for name, spec in specs.items():
                value = row.get(name)
                if name == "assessor":
                    value = value or self.assessor
                elif name == "contact_method":
                    value = value or "phone"
                elif spec.kind == "bool" and value is not None:
                    value = bool(value)
                yield FormField(
                    spec,
                    value,
                    blank=NOT_ASKED if name in UNKNOWN_WHEN_BLANK else "—",
                    required=name in self.required,
                )
            yield Static("", id="followup-message")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="success")
                yield Button("Cancel (Escape)", id="cancel")

    def on_mount(self) -> None:
        self._toggle_details()
        self.remember()
        self.query_one("#satisfaction", Input).focus()

    def _toggle_details(self) -> None:
        """PDPH details only when PDPH is yes; the other event's only when there was one."""
        for switch, names in (("pdph", PDPH_ONLY), ("other_event_any", OTHER_EVENT_ONLY)):
            toggle = self._field(switch)
            shown = toggle is None or toggle.raw == "yes"
            for name in names:
                field = self._field(name)
                if field is not None:
                    field.display = shown

    def _field(self, name: str) -> FormField | None:
        found = self.query(f"#field-{name}")
        return found.first(FormField) if found else None

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id in ("pdph", "other_event_any"):
            self._toggle_details()

    def action_no_events(self) -> None:
        """Answer "no" (back pain 0) to every adverse-event question still unanswered."""
        answered: list[str] = []
        kept: list[str] = []
        for name, value in NO_EVENTS.items():
            field = self._field(name)
            if field is None:
                continue
            spec = field.spec
            current, message = field.check()
            if message is None and current is None:
                field.set_value(value)
                answered.append(spec.label)
            elif message is not None or current != value:
                shown = _words(current) if message is None else visible(field.raw)
                kept.append(f"{spec.label} {shown}")
        self._toggle_details()
        text = Text()
        if answered:
            text.append(f"No adverse events: {', '.join(answered)} answered. ")
        if kept:
            text.append(
                f"Kept as typed: {'; '.join(kept)} (change them in their fields).",
                style="bold",
            )
        if not answered and not kept:
            text.append("Every adverse-event question is answered already.")
        self._message(text)

    def _message(self, text: Text | str) -> None:
        self.query_one("#followup-message", Static).update(text)

    def show_message(self, message: str) -> None:
        """Why the answers were not saved (the form stays open with them)."""
        self._message(Text(message, style="bold"))

    def action_save(self) -> None:
        visible = [f for f in self.query(FormField) if f.display]
        values, errors = collect(visible)
        if not errors:
            # The domain's own check (what the Store will apply), shown beside each
            # field while the form is still open.
            _, errors = schedule.clean_followup(
                values, completing=True, kind=str(self.row.get("kind") or "day3")
            )
            for name, message in errors.items():
                field = self._field(name)
                if field is not None:
                    field.show_error(message)
        if errors:
            message = "Not saved: " + "; ".join(errors.values())
            self._message(Text(message, style="bold"))
            self.notify(message, severity="warning", markup=False)
            return
        if self.save is not None and not self.save(values):
            return  # refused (the message is on screen); the answers stay in the form
        self.dismiss(values)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()


CLOSE_STATE = fields.FieldSpec(
    "state",
    "Close as",
    "choice",
    choices=(("unreachable", "Not reachable"), ("declined", "Declined")),
    required=True,
)
REASON = fields.FieldSpec("reason", "Reason", "text", required=True, max_length=500)


class CloseDialog(ChangeGuard, Dialog[tuple[str, str] | None]):
    """Close a follow-up without answers: not reachable or declined, with a reason."""

    BINDINGS = [Binding("ctrl+s", "save", "Close follow-up", id="close.save")]

    def __init__(self, heading: str) -> None:
        super().__init__()
        self.heading = heading

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(visible(self.heading), style="bold"), classes="dialog-title")
            yield FormField(CLOSE_STATE, "unreachable")
            yield FormField(REASON)
            yield Static(Text("ctrl+s closes it, Escape cancels", style="italic"))

    def on_mount(self) -> None:
        self.remember()
        self.query_one("#reason", Input).focus()

    def action_save(self) -> None:
        values, errors = collect(list(self.query(FormField)))
        if not errors:
            self.dismiss((values["state"], values["reason"]))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()


def state_words(state: str, late: Any = 0, early: Any = 0) -> str:
    """The status in words; overdue in capitals so it stands out without colour; a
    done follow-up taken outside its window says so: "done (early)" / "done (late)"."""
    words = schedule.STATUS_WORDS.get(state, state)
    if state == "overdue":
        words = words.upper()
    if state == "done" and early:
        return f"{words} (early)"
    return f"{words} (late)" if late and state == "done" else words


def kind_words(kind: str) -> str:
    return schedule.KIND_WORDS.get(kind, vocab.label(vocab.FOLLOWUP_KINDS, kind))
