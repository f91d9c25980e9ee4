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
from ...domain import fields, schedule
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
}


def _check_timezone(value: object) -> str | None:
    return schedule.validate_timezone(str(value)) if value else None


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
                yield FormField(spec, getattr(s, name), extra=extra)
            yield Static(
                Text(
                    "Empty time zone = the system's. Times are stored in UTC; "
                    "changing the zone changes only how they are shown.",
                    style="italic",
                )
            )

    def on_mount(self) -> None:
        self.query_one("#operator").focus()

    def action_save(self) -> None:
        values, errors = collect(list(self.query(FormField)))
        if errors:
            return
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
        self.dismiss(replace(self.settings, **{k: v for k, v in clean.items() if v is not None}))
