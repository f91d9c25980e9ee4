"""Field specifications: one table that drives validation, forms and the data dictionary.

A form hands over what the user typed (text); :func:`parse` turns it into a typed
value or a message saying why not. Nothing invalid reaches storage: storage
validates again with the same specs before it writes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import vocab
from .cells import number_text

Kind = Literal["text", "int", "float", "choice", "bool"]

STUDY_CODE_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
MAX_TEXT = 2000


class ValidationError(ValueError):
    """A value the user gave was refused. ``field`` names it; ``str()`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: Kind
    description: str = ""
    choices: vocab.Choices = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    required: bool = False
    max_length: int = 200
    identifying: bool = False

    def parse(self, raw: Any) -> Any:
        """Typed value for ``raw`` (form text or a Python value); raises ValidationError."""
        return parse(self, raw)

    def expected(self) -> str:
        """What a valid value looks like, as the message a refused value gets."""
        if self.kind in ("int", "float"):
            what = "a whole number" if self.kind == "int" else "a number"
            return f"{self.label} must be {what} {_range_text(self)}"
        if self.kind == "bool":
            return f"{self.label}: answer yes or no"
        if self.kind == "choice":
            return f"{self.label}: choose one of {', '.join(vocab.codes(self.choices))}"
        return f"{self.label} is required"


def _clean_text(raw: str, multiline: bool) -> str:
    """Control characters never belong in a record; odd spaces become plain spaces.

    Newlines and tabs survive only in multi-line fields (notes); elsewhere they are
    spaces. Escape sequences lose their ESC and so cannot reach a terminal.
    """
    out = []
    for ch in raw:
        if ch in "\t\n\r":
            out.append(ch if multiline and ch != "\r" else " ")
        elif ch.isprintable():
            out.append(ch)
        elif ch.isspace():  # e.g. a non-breaking space
            out.append(" ")
    return "".join(out).strip()


def parse(spec: FieldSpec, raw: Any) -> Any:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if spec.required:
            raise ValidationError(spec.name, f"{spec.label} is required")
        return None
    if spec.kind == "text":
        text = _clean_text(str(raw), multiline=spec.max_length > 200)
        if spec.name == "study_code":
            if not STUDY_CODE_RE.match(text):
                raise ValidationError(
                    spec.name,
                    "Study code: letters, digits and hyphens only (1–32, no hyphen at either end)",
                )
            return text.upper()
        if len(text) > spec.max_length:
            raise ValidationError(
                spec.name, f"{spec.label} is too long ({len(text)} > {spec.max_length} characters)"
            )
        if spec.required and not text:
            raise ValidationError(spec.name, f"{spec.label} is required")
        return text or None
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        text = str(raw).strip().lower()
        if text in ("y", "yes", "true", "1"):
            return True
        if text in ("n", "no", "false", "0"):
            return False
        raise ValidationError(spec.name, spec.expected())
    if spec.kind == "choice":
        code = str(raw).strip()
        allowed = vocab.codes(spec.choices)
        if code not in allowed:
            raise ValidationError(
                spec.name, f"{spec.label}: choose one of {', '.join(allowed)} (got {code[:40]!r})"
            )
        return int(code) if spec.name == "sma_type" else code
    # numbers
    return _parse_number(spec, raw)


def _range_text(spec: FieldSpec) -> str:
    unit = f" {spec.unit}" if spec.unit and spec.unit not in ("°",) else spec.unit
    lo = _fmt(spec.minimum)
    hi = _fmt(spec.maximum)
    return f"from {lo} to {hi}{unit}"


def _fmt(v: float | None) -> str:
    return "?" if v is None else number_text(v)


def _parse_number(spec: FieldSpec, raw: Any) -> int | float:
    whole = spec.kind == "int"
    message = spec.expected()
    if isinstance(raw, bool):
        raise ValidationError(spec.name, message)
    if isinstance(raw, (int, float)):
        value: float = raw
    else:
        text = str(raw).strip().replace(",", ".")
        if len(text) > 20 or not text.isascii() or "_" in text:
            raise ValidationError(spec.name, message)
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise ValidationError(spec.name, message) from None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise ValidationError(spec.name, message)
    if whole and isinstance(value, float):
        if not value.is_integer():
            raise ValidationError(spec.name, message)
        value = int(value)
    if spec.minimum is not None and value < spec.minimum:
        raise ValidationError(spec.name, message)
    if spec.maximum is not None and value > spec.maximum:
        raise ValidationError(spec.name, message)
    return value


def validate(specs: Mapping[str, FieldSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Parse every known field of ``values``; raise the first ValidationError."""
    out: dict[str, Any] = {}
    for name, raw in values.items():
        spec = specs.get(name)
        if spec is None:
            raise ValidationError(name, f"Unknown field: {name}")
        out[name] = spec.parse(raw)
    return out


def errors(specs: Mapping[str, FieldSpec], values: Mapping[str, Any]) -> dict[str, str]:
    """Every field's message at once (for forms that show them all)."""
    found: dict[str, str] = {}
    for name, raw in values.items():
        spec = specs.get(name)
        if spec is None:
            found[name] = f"Unknown field: {name}"
            continue
        try:
            spec.parse(raw)
        except ValidationError as exc:
            found[name] = exc.message
    return found


def _specs(*items: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in items}


PATIENT_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec(
        "study_code",
        "Study code",
        "text",
        "Pseudonymous study code; matched without regard to case",
        required=True,
        max_length=32,
    ),
    FieldSpec("sma_type", "SMA type", "choice", "SMA type 1–4", vocab.SMA_TYPES),
    FieldSpec("birth_year", "Birth year", "int", "Year of birth", minimum=1900, maximum=2100),
    FieldSpec("sex", "Sex", "choice", "Sex", vocab.SEX),
    FieldSpec("motor_status", "Motor status", "choice", "Best motor status", vocab.MOTOR_STATUS),
)

IDENTIFIER_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec("full_name", "Full name", "text", "Patient name", identifying=True),
    FieldSpec("record_number", "Record number", "text", "Hospital record number", identifying=True),
    FieldSpec("birth_date", "Birth date", "text", "Date of birth", identifying=True),
)

# Set-up of a procedure, confirmed on the start screen; pre-filled from the
# patient's previous procedure.
SETUP_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec(
        "operator", "Operator", "text", "Anaesthetist performing the puncture", required=True
    ),
    FieldSpec("assistant", "Assistant", "text", "Assistant at the keyboard"),
    FieldSpec(
        "regimen",
        "Regimen / dose",
        "choice",
        "Dosing regimen and dose",
        vocab.REGIMENS,
        required=True,
    ),
    FieldSpec("guidance", "Guidance", "choice", "Imaging guidance", vocab.GUIDANCE, required=True),
    FieldSpec("approach", "Approach", "choice", "Planned approach", vocab.APPROACH, required=True),
    FieldSpec(
        "level_intended",
        "Intended level",
        "choice",
        "Planned interspace",
        vocab.LEVELS,
        required=True,
    ),
    FieldSpec("position", "Position", "choice", "Patient position", vocab.POSITION),
    FieldSpec("needle_tip", "Needle tip", "choice", "Spinal needle tip", vocab.NEEDLE_TIP),
    FieldSpec(
        "needle_gauge",
        "Needle gauge",
        "int",
        "Spinal needle gauge",
        minimum=18,
        maximum=27,
        unit="G",
    ),
    FieldSpec(
        "needle_length_mm",
        "Needle length",
        "int",
        "Spinal needle length",
        minimum=25,
        maximum=250,
        unit="mm",
    ),
    FieldSpec(
        "cobb_angle",
        "Cobb angle",
        "float",
        "Scoliosis Cobb angle at this procedure",
        minimum=0,
        maximum=150,
        unit="°",
    ),
    FieldSpec(
        "axial_rotation",
        "Axial rotation",
        "choice",
        "Vertebral axial rotation",
        vocab.AXIAL_ROTATION,
    ),
    FieldSpec(
        "hardware", "Surgery / hardware", "choice", "Spinal surgery or hardware", vocab.HARDWARE
    ),
    FieldSpec("bmi", "BMI", "float", "Body-mass index", minimum=10, maximum=70, unit="kg/m²"),
    FieldSpec("sedation", "Sedation", "choice", "Sedation at start", vocab.SEDATION, required=True),
    FieldSpec("sedation_agent", "Sedation agent", "text", "Agent for IV sedation"),
)

# Fields that carry over from a patient's previous procedure to the next one.
CARRY_OVER = (
    "operator",
    "guidance",
    "approach",
    "level_intended",
    "position",
    "needle_tip",
    "needle_gauge",
    "needle_length_mm",
    "cobb_angle",
    "axial_rotation",
    "hardware",
    "bmi",
    "sedation",
    "sedation_agent",
)

OUTCOME_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec(
        "drug_delivered",
        "Drug delivered",
        "bool",
        "Nusinersen injected intrathecally",
        required=True,
    ),
    FieldSpec(
        "level_final",
        "Final level",
        "choice",
        "Interspace of the successful puncture",
        vocab.LEVELS,
    ),
    FieldSpec(
        "csf_removed_ml",
        "CSF removed",
        "float",
        "CSF withdrawn before injection",
        minimum=0,
        maximum=20,
        unit="mL",
    ),
    FieldSpec(
        "csf_appearance", "CSF appearance", "choice", "Appearance of the CSF", vocab.CSF_APPEARANCE
    ),
    FieldSpec(
        "failure_reason",
        "Reason for failure",
        "text",
        "Why the drug was not delivered",
        max_length=500,
    ),
    FieldSpec("fallback", "Fallback", "choice", "What happens instead", vocab.FALLBACK),
    FieldSpec(
        "note",
        "Note",
        "text",
        "Free-text note (never exported by default)",
        max_length=MAX_TEXT,
        identifying=True,
    ),
)


def outcome_errors(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The end-of-procedure rule, on validated outcome values: say whether the drug was
    delivered; if it was not, say why and choose the fallback. Each broken part as
    (field, message), in the order a person answers them; none: ``[]``."""
    delivered = values.get("drug_delivered")
    if delivered is None:
        return [("drug_delivered", "Was the drug delivered? yes or no")]
    if delivered:
        return []
    needed = (
        ("failure_reason", "Say why the drug was not delivered"),
        ("fallback", "Choose the fallback"),
    )
    return [(name, message) for name, message in needed if not values.get(name)]


def check_outcome(values: Mapping[str, Any]) -> None:
    """:func:`outcome_errors`: the first broken part raised as :class:`ValidationError`."""
    broken = outcome_errors(values)
    if broken:
        raise ValidationError(*broken[0])


SCORE_FIELD = FieldSpec(
    "satisfaction_5min",
    "Satisfaction at 5 min",
    "int",
    "Patient satisfaction 5 minutes after the procedure (1 very dissatisfied … 5 very satisfied)",
    minimum=1,
    maximum=5,
)

NOTE_FIELD = FieldSpec(
    "note", "Note", "text", "Timeline note", max_length=MAX_TEXT, identifying=True
)

# The 72-hour follow-up (and what a nurse records at any follow-up contact).
FOLLOWUP_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec(
        "satisfaction",
        "Score",
        "int",
        "Satisfaction 72 h after the procedure (1 very dissatisfied … 5 very satisfied)",
        minimum=1,
        maximum=5,
    ),
    FieldSpec("pdph", "PDPH", "bool", "Post-dural puncture headache (ICHD-3 7.2.1)"),
    FieldSpec(
        "pdph_onset_hours",
        "Onset",
        "int",
        "Hours from the puncture to headache onset",
        minimum=0,
        maximum=120,
        unit="h",
    ),
    FieldSpec("pdph_orthostatic", "Orthostatic", "bool", "Headache worse upright"),
    FieldSpec(
        "pdph_severity",
        "Severity",
        "int",
        "Worst headache severity, NRS 0–10",
        minimum=0,
        maximum=10,
    ),
    FieldSpec(
        "pdph_treatment", "Treatment", "choice", "Treatment of the PDPH", vocab.PDPH_TREATMENT
    ),
    FieldSpec("pdph_resolved", "Resolved", "bool", "PDPH resolved at the contact"),
    FieldSpec(
        "back_pain_nrs",
        "Back pain",
        "int",
        "Back pain at the puncture site, NRS 0–10",
        minimum=0,
        maximum=10,
    ),
    FieldSpec("radicular_pain", "Radicular pain", "bool", "Radicular pain since the procedure"),
    FieldSpec("nausea_vomiting", "Nausea/vomiting", "bool", "Nausea or vomiting"),
    FieldSpec(
        "other_event_any",
        "Other event?",
        "bool",
        "Any other adverse event since the procedure (yes: describe it and say if serious)",
    ),
    FieldSpec(
        "other_event",
        "Other event",
        "text",
        "Other adverse event (free text)",
        max_length=500,
        identifying=True,
    ),
    FieldSpec("other_event_serious", "Serious", "bool", "The other event was serious"),
    FieldSpec(
        "contact_method", "Contact", "choice", "How the patient was assessed", vocab.CONTACT_METHOD
    ),
    FieldSpec("assessor", "Assessor", "text", "Who assessed the patient", max_length=100),
)

#: PDPH details: only meaningful when PDPH is yes.
PDPH_DETAILS = (
    "pdph_onset_hours",
    "pdph_orthostatic",
    "pdph_severity",
    "pdph_treatment",
    "pdph_resolved",
)

# ---------------------------------------------------------------- pre-dose time-out (issue 14)
#: The time-out's items, asked per procedure (NULL: not asked yet, unknown — never "no").
#: ``antithrombotic_last_at`` is an instant (given as a datetime, see
#: :func:`sma_log.domain.predose.parse_when`), so it has no spec of its own here.
TIMEOUT_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec("consent", "Consent", "bool", "Consent for this dose confirmed"),
    FieldSpec("skin", "Skin at the site", "choice", "Skin at the puncture site", vocab.SKIN_SITE),
    FieldSpec(
        "antithrombotic",
        "Anticoagulant / antiplatelet",
        "choice",
        "Anticoagulant or antiplatelet drug taken",
        vocab.ANTITHROMBOTIC,
    ),
    FieldSpec(
        "antithrombotic_agent",
        "Agent",
        "text",
        "Anticoagulant / antiplatelet agent (a drug name; kept in de-identified exports)",
        max_length=100,
    ),
    FieldSpec("vp_shunt", "VP shunt", "bool", "Ventriculo-peritoneal shunt"),
)

TIMEOUT_REASON_FIELD = FieldSpec(
    "reason",
    "Reason",
    "text",
    "Why the dose went ahead with a required item missing or a value flagged (free text)",
    max_length=500,
    identifying=True,
)

#: A laboratory result: plausibility ranges of the stored value in its canonical unit
#: (what a machine can report), never clinical thresholds (those are site settings).
LAB_VALUE_FIELDS: dict[str, FieldSpec] = _specs(
    FieldSpec(
        "platelets",
        "Platelet count",
        "float",
        "Platelet count",
        minimum=0,
        maximum=2000,
        unit="×10⁹/L",
    ),
    FieldSpec("pt", "PT", "float", "Prothrombin time", minimum=5, maximum=200, unit="s"),
    FieldSpec(
        "aptt",
        "aPTT",
        "float",
        "Activated partial thromboplastin time",
        minimum=10,
        maximum=300,
        unit="s",
    ),
    FieldSpec("inr", "INR", "float", "International normalised ratio", minimum=0.5, maximum=20),
    FieldSpec(
        "urine_protein",
        "Urine protein",
        "float",
        "Spot urine protein",
        minimum=0,
        maximum=50,
        unit="g/L",
    ),
)
