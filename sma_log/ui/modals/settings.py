"""Settings: operator, site time zone, locale, dosing label, follow-up windows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...config import Settings
from ...domain import fields, learning, schedule
from ..widgets.form import FormField, collect
from .base import Dialog

SPECS = {
    "operator": fields.FieldSpec(
        "operator", "Operator", "text", "Name for the audit log", max_length=100
    ),
    "timezone": fields.FieldSpec(
        "timezone", "Time zone", "text", "IANA name, e.g. Europe/Rome", max_length=64
    ),
    "locale": fields.FieldSpec("locale", "Locale", "text", "e.g. en, it, de", max_length=10),
    "label": fields.FieldSpec(
        "label",
        "Dosing label",
        "choice",
        choices=(("eu", "EU SmPC (days 0, 14, 28, 63)"), ("us", "US label (days 0, 14, 28, 58)")),
        required=True,
    ),
    "window_before_hours": fields.FieldSpec(
        "window_before_hours",
        "Call window opens",
        "float",
        minimum=0,
        maximum=72,
        unit="h before due",
    ),
    "window_after_hours": fields.FieldSpec(
        "window_after_hours",
        "Call window closes",
        "float",
        minimum=0,
        maximum=168,
        unit="h after due",
    ),
    "score_earliest_min": fields.FieldSpec(
        "score_earliest_min",
        "5-min score from",
        "float",
        "Earlier scores need a confirmation and are flagged early",
        minimum=0,
        maximum=5,
        unit="min after the end",
    ),
    "missed_after_days": fields.FieldSpec(
        "missed_after_days",
        "Missed leave the queue",
        "float",
        "Then listed with m in the queue and sma-log followups --status missed",
        minimum=0,
        maximum=365,
        unit="days after the window",
    ),
    # -- learning curves (issue 14): checked by the domain rule (domain/learning.py)
    "learning_failure": fields.FieldSpec(
        "learning_failure",
        "Learning: failure",
        "choice",
        choices=learning.FAILURE_DEFINITIONS,
        required=True,
    ),
    "learning_p0": fields.FieldSpec(
        "learning_p0",
        "Learning: p0",
        "float",
        "Acceptable failure rate; between 0 and 1 (the ends excluded: the domain's check)",
        minimum=0,
        maximum=1,
    ),
    "learning_p1": fields.FieldSpec(
        "learning_p1",
        "Learning: p1",
        "float",
        "Unacceptable failure rate; between 0 and 1 (the ends excluded: the domain's check)",
        minimum=0,
        maximum=1,
    ),
    "learning_alpha": fields.FieldSpec(
        "learning_alpha",
        "Learning: α",
        "float",
        "CUSUM type I error; between 0 and 1 (the ends excluded: the domain's check)",
        minimum=0,
        maximum=1,
    ),
    "learning_beta": fields.FieldSpec(
        "learning_beta",
        "Learning: β",
        "float",
        "CUSUM type II error; between 0 and 1 (the ends excluded: the domain's check)",
        minimum=0,
        maximum=1,
    ),
}
#: The learning-curve rate fields and the domain's name of each.
LEARNING_RATES = {
    "learning_p0": "p0",
    "learning_p1": "p1",
    "learning_alpha": "alpha",
    "learning_beta": "beta",
}


# ---- pre-dose time-out and drug timing (issue 14): a block of its own -----------------
PREDOSE_SPECS = {
    "timeout_required": fields.FieldSpec(
        "timeout_required",
        "Time-out requires",
        "text",
        "label (the dosing label's preset), us, eu, none, or a comma list of items",
        max_length=200,
    ),
    "platelets_min": fields.FieldSpec(
        "platelets_min", "Flag platelets below", "float", minimum=0, maximum=1000, unit="×10⁹/L"
    ),
    "pt_max_s": fields.FieldSpec(
        "pt_max_s", "Flag PT above", "float", minimum=5, maximum=200, unit="s"
    ),
    "aptt_max_s": fields.FieldSpec(
        "aptt_max_s", "Flag aPTT above", "float", minimum=10, maximum=300, unit="s"
    ),
    "inr_max": fields.FieldSpec("inr_max", "Flag INR above", "float", minimum=0.5, maximum=20),
    "lab_max_age_days": fields.FieldSpec(
        "lab_max_age_days", "Lab results usable for", "float", minimum=0, maximum=3650, unit="days"
    ),
    "drug_warn_min": fields.FieldSpec(
        "drug_warn_min",
        "Warn before drug limit",
        "float",
        minimum=0,
        maximum=360,
        unit="min",
    ),
}
#: Empty means "no limit" (the app never invents a clinical threshold): kept as None.
PREDOSE_OPTIONAL = ("platelets_min", "pt_max_s", "aptt_max_s", "inr_max", "lab_max_age_days")


def _check_required(value: object) -> str | None:
    from ...domain import predose

    try:
        predose.required_items(str(value), "eu")
    except ValueError as exc:
        return str(exc)
    return None


def _predose_values(values: dict[str, Any]) -> dict[str, Any]:
    """The block's values for :class:`Settings`: empty limits stay empty (None)."""
    out: dict[str, Any] = {}
    for key in PREDOSE_SPECS:
        value = values.pop(key, None)
        if value is None and key not in PREDOSE_OPTIONAL:
            value = getattr(Settings(), key)
        out[key] = value
    return out


def _check_timezone(value: object) -> str | None:
    return schedule.validate_timezone(str(value)) if value else None


def _rate_check(name: str) -> Any:
    """The domain's check of one learning-curve rate (a message beside the field)."""
    return lambda value: learning.parameter_problem(name, value)


class SettingsDialog(Dialog[Settings | None]):
    BINDINGS = [Binding("ctrl+s", "save", "Save", id="settings.save")]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        with VerticalScroll(classes="dialog"):
            yield Static(
                Text("Settings (ctrl+s saves, Escape cancels)", style="bold"),
                classes="dialog-title",
            )
            for name, spec in SPECS.items():
                extra = _check_timezone if name == "timezone" else None
                if name in LEARNING_RATES:
                    extra = _rate_check(LEARNING_RATES[name])
                yield FormField(spec, getattr(s, name), extra=extra)
            yield Static(
                Text(
                    "Empty time zone = the system's. Times are stored in UTC; "
                    "changing the zone changes only how they are shown.",
                    style="italic",
                )
            )
            yield Static(
                Text(
                    "Pre-dose time-out and drug timing: empty limits raise no flag "
                    "(the app never invents a clinical threshold)",
                    style="bold",
                ),
                classes="section",
            )
            for name, spec in PREDOSE_SPECS.items():
                extra = _check_required if name == "timeout_required" else None
                yield FormField(spec, getattr(s, name), extra=extra)

    def on_mount(self) -> None:
        self.query_one("#operator").focus()

    def action_save(self) -> None:
        values, errors = collect(list(self.query(FormField)))
        if errors:
            return
        predose_values = _predose_values(values)  # issue 14's block: None kept
        clean: dict[str, Any] = {
            k: ("" if v is None and k in ("operator", "timezone") else v) for k, v in values.items()
        }
        clean["locale"] = schedule.resolve_locale(clean.get("locale") or "en")
        for key in (
            "window_before_hours",
            "window_after_hours",
            "score_earliest_min",
            "missed_after_days",
        ):
            if clean.get(key) is None:
                clean[key] = getattr(Settings(), key)
        kept = {k: v for k, v in clean.items() if v is not None}
        new = replace(self.settings, **kept, **predose_values)
        problem = new.learning_problem()  # the four together: p0 below p1, α + β below 1
        if problem:
            field = "learning_p1" if "p0 (" in problem else "learning_alpha"
            self.query_one(f"#field-{field}", FormField).show_error(problem)
            return
        self.dismiss(new)
