"""End the procedure: confirm, and record the outcome (a failure asks why)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from ...domain import fields, predose, timeline
from ..widgets.form import FormField, collect
from .base import Dialog

FAILURE_ONLY = ("failure_reason", "fallback")


class EndDialog(Dialog[dict[str, Any] | None]):
    """Returns the outcome values for :meth:`Store.end_procedure`, or None."""

    BINDINGS = [Binding("ctrl+s", "save", "End procedure", id="end.save")]

    def __init__(
        self, state: timeline.State, csf_removed_ml: Any = 5, regimen: str | None = None
    ) -> None:
        super().__init__()
        self.state = state
        self.csf_removed_ml = csf_removed_ml
        self.regimen = regimen

    def compose(self) -> ComposeResult:
        st = self.state
        delivered = "injection_end" in st.milestones
        specs = fields.OUTCOME_FIELDS
        with VerticalScroll(classes="dialog", id="end-dialog"):
            yield Static(
                Text("End the procedure? (ctrl+s ends it, Escape goes back)", style="bold"),
                classes="dialog-title",
            )
            summary = f"{st.attempt_count} attempt(s), {st.redirection_count} redirection(s); " + (
                "injection complete." if delivered else "no complete injection recorded."
            )
            yield Static(Text(summary))
            yield FormField(specs["drug_delivered"], delivered)
            yield FormField(specs["level_final"], st.current.level if st.current else None)
            yield FormField(
                specs["csf_removed_ml"], self.csf_removed_ml if "csf" in st.milestones else 0
            )
            yield Static("", id="csf-vs-dose")
            yield FormField(specs["csf_appearance"], "clear" if "csf" in st.milestones else None)
            yield FormField(specs["failure_reason"])
            yield FormField(specs["fallback"])
            yield FormField(specs["note"])
            yield Static("", id="end-message")
            with Horizontal(classes="buttons"):
                yield Button("End procedure (ctrl+s)", id="end", variant="warning")
                yield Button("Back (Escape)", id="back")

    def on_mount(self) -> None:
        self._toggle_failure()
        self._csf_vs_dose()
        self.query_one("#drug_delivered").focus()

    def _delivered(self) -> bool | None:
        value = self.query_one("#drug_delivered", Select).value
        return None if value is Select.NULL else value == "yes"

    def _toggle_failure(self) -> None:
        failed = self._delivered() is False
        for name in FAILURE_ONLY:
            self.query_one(f"#field-{name}").display = failed

    def _csf_vs_dose(self) -> None:
        """The CSF removed (as typed) against the dose's volume (issue 14)."""
        try:
            csf = fields.OUTCOME_FIELDS["csf_removed_ml"].parse(
                self.query_one("#csf_removed_ml", Input).value
            )
        except fields.ValidationError:
            csf = None
        text = Text(f"{'':24}{predose.csf_vs_dose_text(csf, self.regimen)}", style="italic")
        self.query_one("#csf-vs-dose", Static).update(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "csf_removed_ml":
            self._csf_vs_dose()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "drug_delivered":
            self._toggle_failure()

    def action_save(self) -> None:
        visible = [f for f in self.query(FormField) if f.display]
        values, errors = collect(visible)
        if values.get("drug_delivered") is not None:  # a blank answer is its field's error
            # The rule the store applies, checked here so that nothing typed is lost.
            for name, message in fields.outcome_errors(values):
                errors[name] = message
                self.query_one(f"#field-{name}", FormField).show_error(message)
        if not errors and values.get("drug_delivered") is not None:
            try:  # the same rule the store applies, checked here so nothing typed is lost
                timeline.check_end(self.state, bool(values["drug_delivered"]))
            except timeline.RuleError as exc:
                errors["drug_delivered"] = str(exc)
                self.query_one("#field-drug_delivered", FormField).show_error(str(exc))
        if errors:
            message = "; ".join(errors.values())
            self.notify("Not ended: " + message, severity="warning", markup=False)
            # Kept in the dialog until the next try: a toast fades, this does not.
            shown = Text()
            shown.append(" NOT ENDED ", style="bold reverse")
            shown.append(f" {message}")
            line = self.query_one("#end-message", Static)
            line.update(shown)
            line.display = True
            return
        self.dismiss(values)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "end":
            self.action_save()
        else:
            self.dismiss(None)
