"""The pre-dose time-out (issue 14): the bedside answers, the labs, the drug's times.

Opened by ``m`` on the live screen at any time while the procedure is open, and by the
first attempt key ``a`` when the time-out is not confirmed and cannot be confirmed as
it stands (a required answer missing, a value flagged). Every field validates as you
type (its message beside it); what is missing or flagged is said beside its field as
a note, never a refusal: the label's checks never block an emergency. Going ahead
with something missing or flagged asks for a reason, which is stored and audited.

ctrl+s saves (each part in its own committed, audited transaction: the answers, each
new lab result, each drug time, the confirmation) and closes; a refusal keeps the
dialog open with everything typed, its message beside the field. Escape closes
without saving anything.

Result: ``"attempt"`` (opened by the first attempt: the time-out confirmed and the
attempt recorded, in one transaction), a message for the status line (opened by ``m``:
saved, confirmed or not), or None (Escape).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, cast

import pendulum
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from ...domain import fields, predose, timeline
from ...domain.clock import to_text
from ...domain.fields import FieldSpec, ValidationError
from ...domain.timeline import RuleError
from ...storage import predose as predose_store
from ...storage.errors import Conflict, NotFound, StorageError
from ..fmt import local_time, shown
from ..widgets.form import FormField, collect
from ..widgets.labs import LabEntry, today_in
from .base import Dialog

#: Typed local times (HH:MM, or YYYY-MM-DD HH:MM): parsed by the domain's parse_when.
LAST_DOSE = FieldSpec(
    "antithrombotic_last_at",
    "Last dose at",
    "text",
    "The last dose of the anticoagulant / antiplatelet (local time)",
    max_length=20,
)
DRUG_TIME_SPECS = {
    "vial_out": FieldSpec("vial_out", "Vial out of fridge at", "text", max_length=20),
    "drawn_up": FieldSpec("drawn_up", "Drawn up at", "text", max_length=20),
}
#: Shown only when the anticoagulant / antiplatelet answer is one.
AGENT_FIELDS = ("antithrombotic_agent", "antithrombotic_last_at")
#: The field that answers each time-out item (labs: the row of the test).
ITEM_FIELD = {
    "consent": "field-consent",
    "skin": "field-skin",
    "antithrombotic": "field-antithrombotic",
    "vp_shunt": "field-vp_shunt",
    "platelets": "lab-platelets",
    "coagulation": "lab-pt",
    "urine_protein": "lab-urine_protein",
}
FLAG_FIELD = {**ITEM_FIELD, "pt": "lab-pt", "aptt": "lab-aptt", "inr": "lab-inr"}


class TimeoutDialog(Dialog[str | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", tooltip="Saves; confirms when it can", id="timeout.save"),
        Binding(
            "ctrl+r",
            "reason",
            "Reason",
            tooltip="To the reason field (going ahead with something missing or flagged)",
            id="timeout.reason",
        ),
    ]
    HELP_TITLE = "Pre-dose time-out"

    def __init__(self, procedure_id: str, rules: predose.Rules, *, for_attempt: bool) -> None:
        super().__init__()
        self.procedure_id = procedure_id
        self.rules = rules
        self.for_attempt = for_attempt

    # ------------------------------------------------------------- reading
    def procedure_now(self) -> Any:
        """The procedure as committed now (another key or terminal may have added to it)."""
        with contextlib.suppress(NotFound, StorageError):  # the save then says why
            self.procedure = self._app.store.load_procedure(self.procedure_id)
        return self.procedure

    @property
    def _app(self) -> Any:
        return cast(Any, self.app)

    @property
    def tz(self) -> str:
        return str(self._app.tz)

    def _read(self) -> bool:
        store = self._app.store
        try:
            self.tview = predose_store.timeout_view(store, self.procedure_id, self.rules, self.tz)
            self.procedure = store.load_procedure(self.procedure_id)
        except (RuleError, NotFound, StorageError, ValueError, TypeError) as exc:
            self.failed = str(exc)  # a value another tool wrote: said, never a traceback
            return False
        self.today = today_in(store.now(), self.tz)
        return True

    def compose(self) -> ComposeResult:
        self.failed = ""
        ok = self._read()
        with VerticalScroll(classes="dialog", id="timeout-dialog"):
            title = "Pre-dose time-out"
            if ok:
                title += f" — {shown(self.procedure.patient['study_code'])}"
            yield Static(Text(title, style="bold"), classes="dialog-title")
            if not ok:
                yield Static(Text(f"Cannot be read: {shown(self.failed)}"), id="timeout-failed")
                return
            how = (
                "ctrl+s saves and records the attempt · ctrl+r: reason · Esc: nothing recorded"
                if self.for_attempt
                else "ctrl+s saves · ctrl+r: reason · Esc: nothing saved"
            )
            yield Static(
                Text(
                    f"{how}. * = required by the site. Something missing or flagged does "
                    "not block: give a reason.",
                    style="italic",
                ),
                id="timeout-help",
            )
            # What is missing or flagged, the reason and why nothing was saved come first:
            # in view without scrolling, whatever the terminal's height.
            yield Static("", id="timeout-check")
            yield FormField(fields.TIMEOUT_REASON_FIELD, self.tview.reason)
            yield Static("", id="timeout-message")
            items = self.tview.items
            req = set(self.tview.check.required)
            for name, spec in fields.TIMEOUT_FIELDS.items():
                yield FormField(spec, items.get(name), required=name in req)
                if name == "antithrombotic_agent":
                    last = items.get("antithrombotic_last_at")
                    yield FormField(
                        LAST_DOSE,
                        local_time(last, self.tz, "YYYY-MM-DD HH:mm") if last else None,
                        placeholder="HH:MM or YYYY-MM-DD HH:MM",
                        extra=self._when_problem,
                    )
            yield Static(
                Text("Latest results (a new one: value and date)", style="bold"),
                classes="section",
            )
            for test in predose.LAB_UNITS:
                item = "coagulation" if test in ("pt", "aptt", "inr") else test
                yield LabEntry(
                    test,
                    self.tview.labs.get(test),
                    today=self.today,
                    rules=self.rules,
                    required=item in req,
                )
            yield Static(
                Text("Drug times (keys v and w record now)", style="bold"), classes="section"
            )
            times = self.procedure.state.drug_times
            for kind, spec in DRUG_TIME_SPECS.items():
                at = times.get(kind)
                yield FormField(
                    spec,
                    local_time(at, self.tz, "HH:mm") if at else None,
                    placeholder="HH:MM (today) or YYYY-MM-DD HH:MM",
                    extra=self._when_problem,
                )
            with Horizontal(classes="buttons"):
                label = "Save, record attempt (ctrl+s)" if self.for_attempt else "Save (ctrl+s)"
                yield Button(label, id="timeout-save", variant="success")
                yield Button("Back (Escape)", id="timeout-back")

    def on_mount(self) -> None:
        if self.failed:
            return
        self._toggle_agent()
        check = self._judge()
        target = "#field-consent"
        if self.for_attempt:  # the first thing to answer: a missing item, else the reason
            target = f"#{ITEM_FIELD[check.missing[0]]}" if check.missing else "#field-reason"
        widget = self.query_one(target)
        if isinstance(widget, FormField):
            widget.control.focus()
        elif isinstance(widget, LabEntry):
            widget.query(Input).first().focus()
        else:
            widget.focus()

    def action_reason(self) -> None:
        reason = self.query_one("#field-reason", FormField)
        reason.display = True
        reason.control.focus()
        self.query_one("#timeout-dialog", VerticalScroll).scroll_home(animate=False)

    # ------------------------------------------------------------- judging as you type
    def _when_problem(self, value: Any) -> str | None:
        try:
            predose.parse_when(str(value), self.tz, self._app.store.now())
        except ValidationError as exc:
            return exc.message
        return None

    def _typed_items(self) -> dict[str, Any]:
        """The answers as typed, unreadable ones as unknown (for the live judgement)."""
        out: dict[str, Any] = {}
        for name, spec in fields.TIMEOUT_FIELDS.items():
            try:
                out[name] = spec.parse(self.query_one(f"#field-{name}", FormField).raw)
            except ValidationError:
                out[name] = None
        raw = self.query_one("#field-antithrombotic_last_at", FormField).raw
        out["antithrombotic_last_at"] = raw if raw and not self._when_problem(raw) else None
        return out

    def _typed_labs(self) -> dict[str, predose.LabResult]:
        labs = dict(self.tview.labs)
        for entry in self.query(LabEntry):
            result, _ = entry.parsed()
            if result is not None:
                labs[entry.test] = result
        return labs

    def _judge(self) -> predose.Check:
        """Judge what is typed now; say what is missing or flagged beside its field."""
        check = predose.evaluate(self._typed_items(), self._typed_labs(), self.rules)
        notes: dict[str, list[str]] = {}
        for item in check.missing:
            notes.setdefault(ITEM_FIELD[item], []).append("required, not answered")
        for code, text in zip(check.flags, check.flag_texts, strict=False):
            notes.setdefault(FLAG_FIELD.get(code, "field-reason"), []).append(f"! {text}")
        for widget in [*self.query(FormField), *self.query(LabEntry)]:
            if widget.id in ITEM_FIELD.values() or widget.id in FLAG_FIELD.values():
                widget.show_note("; ".join(notes.get(widget.id or "", [])) or None)
        summary = Text()
        if check.needs_reason:
            summary.append(" REASON NEEDED ", style="bold reverse")
            parts = []
            if check.missing:
                parts.append("missing " + ", ".join(predose.ITEM_LABELS[i] for i in check.missing))
            parts.extend(check.flag_texts)
            summary.append(" " + "; ".join(parts))
        else:
            summary.append("✓ Nothing required is missing, nothing flagged.", style="bold")
        for notice in check.notices:
            summary.append(f"\n• {notice}")
        self.query_one("#timeout-check", Static).update(summary)
        reason = self.query_one("#field-reason", FormField)
        reason.display = check.needs_reason or bool(reason.raw)
        return check

    def _toggle_agent(self) -> None:
        value = self.query_one("#antithrombotic", Select).value
        shown_ = value not in (Select.NULL, "none")
        for name in AGENT_FIELDS:
            self.query_one(f"#field-{name}").display = shown_

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "antithrombotic":
            self._toggle_agent()
        self._judge()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._judge()

    # ------------------------------------------------------------- saving
    def _say(self, message: str) -> None:
        text = Text()
        text.append(" NOT SAVED ", style="bold reverse")
        text.append(f" {message}")
        line = self.query_one("#timeout-message", Static)
        line.update(text)
        line.display = True
        self.notify(f"Not saved: {message}", severity="warning", markup=False)

    def _field_error(self, name: str, message: str) -> None:
        target = {
            "when": "field-antithrombotic_last_at",
            "antithrombotic_last_at": "field-antithrombotic_last_at",
        }.get(name, f"field-{name}")
        for box in self.query(f"#{target}").results(FormField):
            box.show_error(message)  # (a field this dialog has not: the line says it)
        self._say(message)

    def action_save(self) -> None:
        if self.failed:
            return
        visible = [f for f in self.query(FormField) if f.display]
        values, errors = collect(visible)
        labs: list[predose.LabResult] = []
        for entry in self.query(LabEntry):
            result, message = entry.check()
            if message:
                errors[entry.test] = message
            elif result is not None:
                labs.append(result)
        store = self._app.store
        now = store.now()
        drug: dict[str, pendulum.DateTime] = {}
        # The order rules the Store applies (timeline.check_drug_time), judged here on
        # the procedure as it is now, so a refused time is said beside its field and
        # nothing else of the form is saved before it.
        state = copy.copy(self.procedure_now().state)
        state.drug_times = dict(state.drug_times)
        for kind in DRUG_TIME_SPECS:
            typed = values.pop(kind, None)
            times = self.procedure.state.drug_times
            before = local_time(times[kind], self.tz, "HH:mm") if kind in times else None
            if typed and typed != before:
                try:
                    when = predose.parse_when(typed, self.tz, now)
                    timeline.check_drug_time(state, kind, to_text(when), now)
                except ValidationError as exc:
                    errors[kind] = exc.message
                except RuleError as exc:
                    errors[kind] = exc.in_zone(self.tz)
                else:
                    drug[kind] = when
                    state.drug_times[kind] = when
                if kind in errors:
                    self.query_one(f"#field-{kind}", FormField).show_error(errors[kind])
        check = self._judge()
        reason = values.pop("reason", None)
        if self.for_attempt and check.needs_reason and not reason:
            message = "a reason is needed to go ahead (or give the missing answers)"
            self.query_one("#field-reason", FormField).show_error(message)
            errors["reason"] = message
        if errors:
            self._say(f"{len(errors)} field(s) to fix — {next(iter(errors.values()))}")
            return
        items = {k: v for k, v in values.items() if k in fields.TIMEOUT_FIELDS}
        if (
            not self.for_attempt
            and self.tview.row is None
            and not any(v is not None for v in values.values())
            and not labs
            and not drug
            and not reason
        ):
            self.dismiss("Nothing entered in the time-out: nothing saved")
            return
        last = values.get("antithrombotic_last_at")
        if items.get("antithrombotic") in (None, "none"):
            items["antithrombotic_agent"] = None
            last = None
        items["antithrombotic_last_at"] = (
            to_text(predose.parse_when(last, self.tz, now)) if last else None
        )
        self._commit(items, labs, drug, reason, check)

    def _commit(
        self,
        items: dict[str, Any],
        labs: list[predose.LabResult],
        drug: dict[str, pendulum.DateTime],
        reason: str | None,
        check: predose.Check,
    ) -> None:
        store = self._app.store
        pid = self.procedure.row["patient_id"]
        try:
            view = predose_store.save_timeout(store, self.procedure_id, items, self.rules, self.tz)
            for lab in labs:
                predose_store.add_lab(
                    store,
                    pid,
                    lab.test,
                    lab.value,
                    lab.taken_on,
                    source="bedside",
                    rules=self.rules,
                    tz=self.tz,
                )
            for kind in ("vial_out", "drawn_up"):
                if kind in drug:
                    predose_store.record_drug_time(store, self.procedure_id, kind, drug[kind])
            for entry in self.query(LabEntry):
                entry.clear()  # saved: a second ctrl+s must not add them again
            if self.for_attempt:
                # The time-out confirmed and the attempt appended in one transaction.
                predose_store.record_first_attempt(
                    store, self.procedure_id, self.rules, reason=reason, tz=self.tz
                )
                self.dismiss("attempt")
                return
            view = predose_store.timeout_view(store, self.procedure_id, self.rules, self.tz)
            if not view.confirmed and (reason or not view.check.needs_reason):
                view = predose_store.confirm_timeout(
                    store, self.procedure_id, self.rules, reason=reason, tz=self.tz
                )
        except predose.ReasonNeeded as exc:
            self.query_one("#field-reason", FormField).show_error(str(exc))
            self._say(str(exc))
            return
        except ValidationError as exc:
            self._field_error(exc.field, exc.message)
            return
        except RuleError as exc:
            self._say(exc.in_zone(self.tz))
            return
        except (Conflict, NotFound) as exc:
            self._say(str(exc))
            return
        except StorageError as exc:
            from .message import MessageDialog

            self._say(str(exc))
            self.app.push_screen(MessageDialog("Not saved", str(exc)))
            return
        except (ValueError, TypeError) as exc:  # a stored value another tool wrote
            self._say(f"a value in the file cannot be read ({exc})")
            return
        if view.confirmed:
            self.dismiss(self._confirmed_words(view))
            return
        left = view.check
        missing = ", ".join(predose.ITEM_LABELS[i] for i in left.missing)
        said = [f"{len(left.flags)} flagged"] if left.flags else []
        said += [f"missing {missing}"] if missing else []
        self.dismiss("Time-out saved, not confirmed: " + "; ".join(said) + " — a asks for a reason")

    def _confirmed_words(self, view: predose_store.TimeoutView) -> str:
        at = local_time(view.confirmed_at, self.tz, "HH:mm:ss")
        if view.reason:
            return f"Time-out confirmed at {at} with a reason (audited)"
        return f"Time-out confirmed at {at}: complete"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "timeout-save":
            self.action_save()
        else:
            self.dismiss(None)
