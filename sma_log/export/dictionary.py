"""The data dictionary: every exported variable with its type, unit, codes and meaning.

The single source is the domain: field specs (:mod:`sma_log.domain.fields`) for what
a user enters, the vocabularies (:mod:`sma_log.domain.vocab`) for codes and labels,
and :data:`SYSTEM` below for the columns the app fills in itself. The dictionary of
an export is built from the same column plan as its files, so it lists exactly the
columns they hold, and it says how this export treated dates and free text.
"""

from __future__ import annotations

from typing import Any

from ..domain import fields, timeline, vocab
from .common import (
    DEIDENTIFIED_TEXT,
    FORMULA_TEXT,
    IDENTIFIED_TEXT,
    ExportOptions,
    is_id_column,
    is_instant_column,
)

CSV_HEADER = ("variable", "table", "type", "unit", "allowed_values", "description")

BOOL = "boolean"
_STATUS: vocab.Choices = vocab.PROCEDURE_STATUS
_OUTCOME: vocab.Choices = (("no_answer", "No answer"),)

#: (table, column) → (kind, unit, description, choices) for columns no field spec covers.
SYSTEM: dict[tuple[str, str], tuple[str, str, str, vocab.Choices]] = {
    ("*", "id"): ("id", "", "Record id (ULID), unique across files and laptops", ()),
    ("*", "patient_id"): ("id", "", "The patient (patients.id)", ()),
    ("*", "procedure_id"): ("id", "", "The procedure (procedures.id)", ()),
    ("*", "attempt_id"): ("id", "", "The needle attempt the event belongs to (attempts.id)", ()),
    ("*", "followup_id"): ("id", "", "The follow-up (followups.id)", ()),
    ("*", "created_at"): ("instant", "", "When the record was created", ()),
    ("*", "updated_at"): ("instant", "", "When the record was last changed", ()),
    ("*", "study_code"): ("text", "", "Pseudonymous study code of the patient", ()),
    ("*", "minutes_from_start"): (
        "float",
        "min",
        "Minutes from the start of the procedure to this row's instant",
        (),
    ),
    ("procedures", "status"): ("choice", "", "Procedure status", _STATUS),
    ("procedures", "dose_mg"): ("float", "mg", "Nusinersen dose (follows from the regimen)", ()),
    ("procedures", "started_at"): (
        "instant",
        "",
        "Start of the procedure (start of scanning/preparation)",
        (),
    ),
    ("procedures", "ended_at"): ("instant", "", "End of the procedure (needle out)", ()),
    ("procedures", "anchor_boot_id"): ("text", "", "Boot id of the machine (live timer)", ()),
    ("procedures", "anchor_boottime"): ("float", "s", "Boot clock at start (live timer)", ()),
    ("procedures", "attempts_n"): (
        "int",
        "",
        "Needle attempts: skin punctures; complete withdrawal and reinsertion is a new "
        "attempt (NCT04674618). Undone attempts not counted",
        (),
    ),
    ("procedures", "redirections_n"): (
        "int",
        "",
        "Redirections (passes) of the needle without leaving the skin, all attempts",
        (),
    ),
    ("procedures", "first_attempt_success"): (
        "bool",
        "",
        "Drug delivered through the first attempt (empty while undecided)",
        (),
    ),
    ("procedures", "first_puncture_at"): ("instant", "", "First skin puncture", ()),
    ("procedures", "csf_at"): ("instant", "", "CSF obtained", ()),
    ("procedures", "injection_start_at"): ("instant", "", "Injection start", ()),
    ("procedures", "injection_end_at"): ("instant", "", "Injection end", ()),
    ("procedures", "procedure_min"): (
        "float",
        "min",
        "Procedure time: start of the procedure to its end",
        (),
    ),
    ("procedures", "puncture_min"): (
        "float",
        "min",
        "Puncture time: first skin puncture to end of injection",
        (),
    ),
    # issue 14: drug timing (derived from the vial_out / drawn_up events)
    ("procedures", "vial_out_at"): ("instant", "", "When the vial left the fridge", ()),
    ("procedures", "drawn_up_at"): (
        "instant",
        "",
        "When the drug was drawn into the syringe (label limit: US 4 h, EU 6 h from it)",
        (),
    ),
    ("procedures", "injection_sec"): (
        "float",
        "s",
        "Injection start to end, whole seconds (label: 1–3 min)",
        (),
    ),
    ("procedures", "drawn_to_injection_min"): (
        "float",
        "min",
        "Drug drawn up to injection start (label limit: US 240, EU 360 min)",
        (),
    ),
    # issue 14: lab results (patient level) and the pre-dose time-out (per procedure)
    ("labs", "test"): ("choice", "", "Laboratory test", vocab.LAB_TESTS),
    ("labs", "value"): (
        "float",
        "",
        "Result in the unit of the row (platelets 10^9/L, PT and aPTT s, INR ratio, "
        "urine protein g/L)",
        (),
    ),
    ("labs", "unit"): ("text", "", "Unit of the value (the canonical unit of its test)", ()),
    ("labs", "taken_on"): ("date", "", "Date the sample was taken (YYYY-MM-DD)", ()),
    ("labs", "source"): ("choice", "", "How the result was entered", vocab.LAB_SOURCES),
    ("labs", "voided_at"): ("instant", "", "When the result was voided (empty: it counts)", ()),
    ("timeouts", "antithrombotic_last_at"): (
        "instant",
        "",
        "Last dose of the anticoagulant / antiplatelet",
        (),
    ),
    **{
        ("timeouts", f"{t}_lab_id"): (
            "id",
            "",
            f"The {label} result the time-out used (labs.id; empty: none)",
            (),
        )
        for t, label in vocab.LAB_TESTS
    },
    ("timeouts", "required"): (
        "text",
        "",
        "Items the site required when the time-out was confirmed (comma-separated: consent, "
        "skin, antithrombotic, vp_shunt, platelets, coagulation, urine_protein)",
        (),
    ),
    ("timeouts", "missing"): ("text", "", "Required items missing at confirmation", ()),
    ("timeouts", "flags"): (
        "text",
        "",
        "Flagged at confirmation: consent (not given), skin (infected/inflamed), "
        "urine_protein (> 0.2 g/L, label), platelets/pt/aptt/inr (site limits)",
        (),
    ),
    ("timeouts", "complete"): ("bool", "", "No required item missing at confirmation", ()),
    ("timeouts", "confirmed_at"): ("instant", "", "When the time-out was confirmed", ()),
    ("timeouts", "confirmed_by"): ("text", "", "Who confirmed the time-out", ()),
    ("attempts", "number"): ("int", "", "Attempt number within the procedure (1, 2, …)", ()),
    ("attempts", "at"): ("instant", "", "Skin puncture of this attempt", ()),
    ("attempts", "level"): ("choice", "", "Interspace of this attempt", vocab.LEVELS),
    ("attempts", "approach"): ("choice", "", "Approach of this attempt", vocab.APPROACH),
    ("attempts", "redirections"): ("int", "", "Redirections within this attempt", ()),
    ("attempts", "bone_contact"): ("bool", "", "Bone contact during this attempt", ()),
    ("attempts", "paraesthesia"): ("bool", "", "Paraesthesia during this attempt", ()),
    ("attempts", "blood"): ("bool", "", "Blood in the needle during this attempt", ()),
    ("attempts", "csf_obtained"): ("bool", "", "CSF obtained through this attempt", ()),
    ("attempts", "voided"): ("bool", "", "Attempt undone at the bedside (not counted)", ()),
    ("events", "seq"): ("int", "", "Order of the event within its procedure", ()),
    ("events", "kind"): (
        "choice",
        "",
        "Bedside action",
        tuple(timeline.EVENT_LABELS.items()),
    ),
    ("events", "at"): ("instant", "", "When the action was recorded", ()),
    ("events", "value"): (
        "text",
        "",
        "Value of the action: flag code, 'sedation code|agent', level|approach, note text",
        (),
    ),
    ("events", "voided_at"): ("instant", "", "When the event was undone (empty: it counts)", ()),
    ("events", "recorded_by"): ("text", "", "Who recorded it (login or operator name)", ()),
    ("followups", "kind"): ("choice", "", "Which follow-up", vocab.FOLLOWUP_KINDS),
    ("followups", "due_at"): (
        "instant",
        "",
        "Due time (end + 5 min, or end + 72 real hours)",
        (),
    ),
    ("followups", "state"): ("choice", "", "Follow-up state", vocab.FOLLOWUP_STATE),
    ("followups", "closed_reason"): (
        "text",
        "",
        "Why it was closed as not reachable or declined (free text)",
        (),
    ),
    ("followups", "completed_at"): ("instant", "", "When answered or closed", ()),
    ("followups", "late"): ("bool", "", "Answers entered after the follow-up window", ()),
    ("followups", "early"): (
        "bool",
        "",
        "Answers entered (and confirmed) before the follow-up window opened",
        (),
    ),
    ("followups", "offset_min"): (
        "float",
        "min",
        "Minutes from the end of the procedure to when the answers were taken",
        (),
    ),
    ("procedures", "cancelled_at"): (
        "instant",
        "",
        "When a start was cancelled before the first skin puncture (status cancelled)",
        (),
    ),
    ("procedures", "cancel_reason"): ("text", "", "Why the start was cancelled (free text)", ()),
    ("contact_attempts", "voided_at"): (
        "instant",
        "",
        "When the call was undone (empty: it counts)",
        (),
    ),
    ("followups", "contact_attempts_n"): ("int", "", "Unanswered contact attempts", ()),
    ("followups", "last_contact_at"): ("instant", "", "Last unanswered contact attempt", ()),
    ("contact_attempts", "at"): ("instant", "", "When the contact was tried", ()),
    ("contact_attempts", "outcome"): ("choice", "", "Outcome of the contact attempt", _OUTCOME),
    ("contact_attempts", "by_user"): ("text", "", "Who tried", ()),
    ("contact_attempts", "note"): ("text", "", "Note on the contact attempt (free text)", ()),
}

#: Field specs per table (the user-entered columns).
SPECS: dict[str, dict[str, fields.FieldSpec]] = {
    "patients": fields.PATIENT_FIELDS,
    "identifiers": fields.IDENTIFIER_FIELDS,
    "procedures": {
        **fields.SETUP_FIELDS,
        **fields.OUTCOME_FIELDS,
        fields.SCORE_FIELD.name: fields.SCORE_FIELD,
    },
    "followups": {
        **fields.FOLLOWUP_FIELDS,
        "satisfaction": fields.FieldSpec(
            "satisfaction",
            "Score",
            "int",
            "Satisfaction score of the follow-up (1 very dissatisfied … 5 very satisfied): "
            "at 5 min for kind score_5min, at 72 h for kind day3",
            minimum=1,
            maximum=5,
        ),
    },
    "timeouts": {**fields.TIMEOUT_FIELDS, "reason": fields.TIMEOUT_REASON_FIELD},
}


def choices_text(choices: vocab.Choices) -> str:
    return "; ".join(f"{code} = {text}" for code, text in choices)


def lookup(table: str, column: str) -> tuple[str, str, str, vocab.Choices, str]:
    """(kind, unit, description, choices, range text) of one stored column."""
    spec = SPECS.get(table, {}).get(column)
    if spec is not None:
        rng = ""
        if spec.kind in ("int", "float") and (spec.minimum is not None or spec.maximum is not None):
            rng = f"{fields._fmt(spec.minimum)} to {fields._fmt(spec.maximum)}"
        desc = spec.description or spec.label
        if spec.name == "sma_type":
            return "int", "", desc, spec.choices, rng
        return spec.kind, spec.unit, desc, spec.choices, rng
    for key in ((table, column), ("*", column)):
        if key in SYSTEM:
            kind, unit, desc, choices = SYSTEM[key]
            return kind, unit, desc, choices, ""
    return "text", "", "", (), ""


def type_text(kind: str, column: str, opts: ExportOptions) -> str:
    if kind == "instant" or is_instant_column(column):
        if opts.identifiers:
            return "instant (UTC, ISO 8601: YYYY-MM-DDTHH:MM:SS.ffffffZ)"
        return f"date (YYYY-MM-DD, local date in {opts.tz})"
    if kind == "id" or is_id_column(column):
        return "id (text)" if opts.identifiers else "id (text; time part zeroed)"
    return {
        "int": "integer",
        "float": "number",
        "bool": "boolean (1 = yes, 0 = no)",
        "choice": "code (text)",
        "text": "text",
        "date": "date (YYYY-MM-DD)",
    }.get(kind, kind)


def _allowed(kind: str, choices: vocab.Choices, rng: str) -> str:
    if choices:
        return choices_text(choices)
    if kind == "bool":
        return "1 = yes; 0 = no"
    return rng


def csv_dictionary(
    plans: dict[str, list[Any]],
    analysis_columns: list[Any] | None,
    opts: ExportOptions,
    manifest: dict[str, Any] | None = None,
) -> list[tuple[str, ...]]:
    """The data dictionary's rows; ``manifest``
    (:func:`~sma_log.export.common.deidentification_manifest`) adds one ``(export)``
    row per kind of change the de-identification made (what was removed or masked)."""
    rows: list[tuple[str, ...]] = []
    for table, plan in plans.items():
        for col in plan:
            kind, unit, desc, choices, rng = lookup(table, col.name)
            if col.name == "value" and table == "events" and not opts.identifiers:
                desc += " (empty for notes in a de-identified export)"
            rows.append(
                (
                    col.name,
                    table,
                    type_text(kind, col.name, opts),
                    unit,
                    _allowed(kind, choices, rng),
                    desc,
                )
            )
    if analysis_columns is not None:
        rows.extend(analysis_rows(analysis_columns, opts))
    rows.extend(export_rows(opts))
    if manifest is not None:
        from .common import manifest_lines

        rows.extend(
            (key, "(export)", "deidentification", "", "", text)
            for key, text in manifest_lines(manifest)
        )
    return rows


def analysis_rows(columns: list[Any], opts: ExportOptions) -> list[tuple[str, ...]]:
    """Rows for procedures_analysis.csv, from ANALYSIS_COLUMNS and its choices."""
    from ..storage import analysis

    kinds = {"integer": "int", "real": "float", "boolean": "bool", "datetime": "instant"}
    out: list[tuple[str, ...]] = []
    for col in columns:
        choices = analysis.COLUMN_CHOICES.get(col.name, ())
        kind = kinds.get(col.type, col.type)
        if choices and kind == "text":
            kind = "choice"
        unit = "" if col.type == "datetime" else col.unit
        desc = col.description
        if col.type == "datetime" and not opts.identifiers:
            desc = f"{desc} (local date)"
        out.append(
            (
                col.name,
                "procedures_analysis",
                type_text(kind, col.name, opts),
                unit,
                _allowed(kind, choices, ""),
                desc,
            )
        )
    return out


def export_rows(opts: ExportOptions) -> list[tuple[str, ...]]:
    """Rules of this export, as rows of the dictionary itself (table "(export)")."""
    dates = (
        "Instants are UTC, ISO 8601 with microseconds and a Z."
        if opts.identifiers
        else (
            f"Dates: every instant is exported as its calendar date in the site time zone "
            f"({opts.tz}); the time of day is left out. Elapsed times are exported as "
            "minutes (procedures.procedure_min, procedures.puncture_min, "
            "attempts/events.minutes_from_start)."
        )
    )
    return [
        ("formula_injection", "(export)", "rule", "", "", FORMULA_TEXT),
        (
            "deidentification",
            "(export)",
            "rule",
            "",
            "",
            IDENTIFIED_TEXT if opts.identifiers else DEIDENTIFIED_TEXT,
        ),
        ("dates", "(export)", "rule", "", "", dates),
        ("date_range", "(export)", "rule", "", "", f"Rows of {opts.range_text()}."),
        (
            "missing_values",
            "(export)",
            "rule",
            "",
            "",
            "An empty cell is a missing value (never recorded, or not applicable).",
        ),
    ]
