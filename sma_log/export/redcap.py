"""``sma-log export --format redcap``: a REDCap data dictionary and a matching import file.

The project is a classic REDCap project whose record is the patient:
``record_id`` = the study code. Instruments:

* ``patient`` (not repeating): SMA type, birth year, sex, motor status, and the
  identifiers (name, record number, birth date; flagged ``Identifier? = y``);
* ``procedure`` (repeating: one instance per procedure, numbered 1, 2, … by start);
* ``attempt`` (repeating: one instance per needle attempt; ``att_proc_instance`` names
  the procedure instance it belongs to; undone attempts are not exported);
* ``followup`` (repeating: the 5-minute score and the 72-hour call of each procedure;
  ``fu_proc_instance`` names the procedure instance);
* ``timeout`` (repeating: the pre-dose time-out of a procedure, numbered as its procedure
  instance, ``to_proc_instance``; with the value and date of each lab result it used);
* ``lab`` (repeating: the patient's lab results, numbered by date over all of them;
  voided ones keep their number and are not exported).

Instance numbers are fixed by the patient's whole history, whatever ``--from/--to``
selects: a procedure is instance 2 in a filtered export when it is instance 2 in the
full one, and its attempts and follow-ups keep their numbers too (attempts numbered over
all the patient's attempts by procedure and time, follow-ups over all the patient's
follow-ups by procedure and kind). A date-range import into an existing project
therefore updates exactly the instances it holds and never overwrites another one.

Each row carries its form's ``<form>_complete`` status (REDCap adds these fields to
every instrument itself, so they are in the import file, never in the dictionary):
2 (Complete) when sma-log will add nothing more to the record, else 0 (Incomplete);
1 (Unverified) is never written, verification is the site's own step. Complete means:

* ``patient``: SMA type, birth year, sex and motor status all recorded;
* ``procedure``: ended or cancelled (not in progress);
* ``attempt``: its procedure ended or was cancelled (an attempt of a procedure in
  progress may still be undone);
* ``followup``: closed: done, not reachable or declined (not open);
* ``timeout``: confirmed; ``lab``: always (a result is complete as entered).

Branching logic never hides data: a field that a de-identified import file keeps never
branches on one it leaves out (:func:`deidentified_branching` drops such a branching,
checked for every field when the module loads). Every date field, the birth date
included, is validated as ``date_ymd``; a birth date that is not a calendar date
(YYYY-MM-DD) is reported like a bad cell and written empty.

The dictionary always describes every field (so a site builds one project whatever
it exports); free text, identifiers and exact times are flagged ``Identifier? = y``
and a de-identified import file leaves exactly those columns out. Codes are the
stored codes with any character other than a letter, digit or underscore replaced by
an underscore (REDCap's rule), e.g. ``L3-L4`` → ``L3_L4``. Dates are the local date
in the site time zone (``date_ymd``); exact times (``datetime_seconds_ymd``, local)
only with ``--identifiers``. Every text cell is guarded against formula injection.

Bad cells (values sma-log would not store, written by another tool) are reported and
written empty: REDCap's import checks every value against its field. A bad study
code refuses the export with one line: it is the record id.

Load it in REDCap: Project Setup → Data Dictionary → upload
``redcap_data_dictionary.csv``; enable repeating instruments for procedure, attempt,
followup, timeout and lab; then Data Import Tool → ``redcap_import.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ..domain import fields, vocab
from ..domain.cells import formula_safe
from .common import (
    BadCell,
    ExportOptions,
    ExportRefused,
    LocalDates,
    Tally,
    deidentify_row,
    find_bad_cells,
    open_private,
    staged_folder,
)

DICTIONARY_FILE = "redcap_data_dictionary.csv"
IMPORT_FILE = "redcap_import.csv"
DICTIONARY_COLUMNS = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
IMPORT_FIXED = ("record_id", "redcap_repeat_instrument", "redcap_repeat_instance")
REPEATING = ("procedure", "attempt", "followup", "timeout", "lab")
FORMS = ("patient", *REPEATING)
#: REDCap's form status: the ``<form>_complete`` field of every instrument.
INCOMPLETE, UNVERIFIED, COMPLETE = 0, 1, 2
_CODE_RE = re.compile(r"[^A-Za-z0-9_]")
#: A field named in branching logic: ``[name]`` or ``[name(code)]`` (checkboxes).
BRANCH_REF_RE = re.compile(r"\[([A-Za-z0-9_]+)(?:\([^)\]]*\))?\]")
_YMD_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def redcap_code(code: Any) -> str:
    return _CODE_RE.sub("_", str(code))


@dataclass(frozen=True)
class Field:
    name: str
    form: str
    type: str
    label: str
    source: str  # column of the query row (or "" for record_id)
    choices: vocab.Choices = ()
    note: str = ""
    validation: str = ""
    vmin: str = ""
    vmax: str = ""
    identifier: bool = False
    branching: str = ""
    required: bool = False
    section: str = ""
    annotation: str = ""
    # how to format the value: text, int, float, bool, choice, date (a stored instant's
    # local date), ymd (a calendar date stored as text), datetime
    kind: str = "text"

    def dictionary_row(self) -> tuple[str, ...]:
        choices = " | ".join(f"{redcap_code(c)}, {t}" for c, t in self.choices)
        return (
            self.name,
            self.form,
            self.section,
            self.type,
            self.label,
            choices,
            self.note,
            self.validation,
            self.vmin,
            self.vmax,
            "y" if self.identifier else "",
            self.branching,
            "y" if self.required else "",
            "",
            "",
            "",
            "",
            self.annotation,
        )


def _from_spec(
    spec: fields.FieldSpec,
    form: str,
    prefix: str,
    *,
    identifier: bool = False,
    branching: str = "",
    section: str = "",
    name: str | None = None,
) -> Field:
    var = name or f"{prefix}{spec.name}"
    note = spec.unit
    common: dict[str, Any] = {
        "identifier": identifier or spec.identifying,
        "branching": branching,
        "section": section,
        "required": spec.required,
        "annotation": spec.description,
    }
    label = spec.label + (f" ({spec.unit})" if spec.unit else "")
    if spec.kind == "bool":
        return Field(var, form, "yesno", label, spec.name, kind="bool", **common)
    if spec.kind == "choice":
        kind = "radio" if len(spec.choices) <= 6 else "dropdown"
        return Field(var, form, kind, label, spec.name, spec.choices, kind="choice", **common)
    if spec.kind in ("int", "float"):
        return Field(
            var,
            form,
            "text",
            label,
            spec.name,
            note=note,
            validation="integer" if spec.kind == "int" else "number",
            vmin=fields._fmt(spec.minimum) if spec.minimum is not None else "",
            vmax=fields._fmt(spec.maximum) if spec.maximum is not None else "",
            kind=spec.kind,
            **common,
        )
    kind = "notes" if spec.max_length > 200 else "text"
    return Field(var, form, kind, label, spec.name, **common)


def _fields() -> list[Field]:
    f = fields
    out: list[Field] = [
        Field("record_id", "patient", "text", "Study code", "study_code", required=True),
    ]
    for name in ("sma_type", "birth_year", "sex", "motor_status"):
        spec = f.PATIENT_FIELDS[name]
        if name == "sma_type":
            out.append(
                Field("sma_type", "patient", "radio", spec.label, name, spec.choices, kind="choice")
            )
        else:
            out.append(_from_spec(spec, "patient", ""))
    for spec in f.IDENTIFIER_FIELDS.values():
        fld = _from_spec(
            spec, "patient", "", section="Identifiers" if not out[-1].identifier else ""
        )
        if spec.name == "birth_date":
            fld = dataclasses.replace(fld, validation="date_ymd", note="YYYY-MM-DD", kind="ymd")
        out.append(fld)
    # procedure
    out += [
        Field(
            "proc_date",
            "procedure",
            "text",
            "Procedure date",
            "started_at",
            validation="date_ymd",
            note="local date",
            kind="date",
            required=True,
        ),
        Field(
            "proc_start",
            "procedure",
            "text",
            "Procedure start (local time)",
            "started_at",
            validation="datetime_seconds_ymd",
            identifier=True,
            kind="datetime",
        ),
        Field(
            "proc_end",
            "procedure",
            "text",
            "Procedure end (local time)",
            "ended_at",
            validation="datetime_seconds_ymd",
            identifier=True,
            kind="datetime",
        ),
        Field(
            "proc_status",
            "procedure",
            "radio",
            "Status",
            "status",
            vocab.PROCEDURE_STATUS,
            kind="choice",
        ),
    ]
    for i, spec in enumerate(f.SETUP_FIELDS.values()):
        out.append(_from_spec(spec, "procedure", "proc_", section="Set-up" if i == 0 else ""))
    out.append(
        Field(
            "proc_dose_mg",
            "procedure",
            "text",
            "Dose (mg)",
            "dose_mg",
            note="mg",
            validation="number",
            kind="float",
        )
    )
    failed = "[proc_drug_delivered] = '0'"
    for i, spec in enumerate(f.OUTCOME_FIELDS.values()):
        branching = failed if spec.name in ("failure_reason", "fallback") else ""
        identifier = spec.name == "failure_reason"
        out.append(
            _from_spec(
                spec,
                "procedure",
                "proc_",
                identifier=identifier,
                branching=branching,
                section="Outcome" if i == 0 else "",
            )
        )
    out.append(
        Field(
            "proc_satisfaction_5min",
            "procedure",
            "radio",
            f.SCORE_FIELD.label,
            "satisfaction_5min",
            vocab.SATISFACTION,
            annotation=f.SCORE_FIELD.description,
            kind="choice",
        )
    )
    derived = (
        ("attempts_n", "Needle attempts", "integer", "int"),
        ("redirections_n", "Redirections", "integer", "int"),
        ("procedure_min", "Procedure time (min)", "number", "float"),
        ("puncture_min", "Puncture time (min)", "number", "float"),
    )
    for i, (col, label, validation, kind) in enumerate(derived):
        out.append(
            Field(
                f"proc_{col}",
                "procedure",
                "text",
                label,
                col,
                validation=validation,
                note="min" if kind == "float" else "",
                section="Derived from the bedside timeline" if i == 0 else "",
                kind=kind,
            )
        )
    out.append(
        Field(
            "proc_first_attempt_success",
            "procedure",
            "yesno",
            "First-attempt success",
            "first_attempt_success",
            kind="bool",
        )
    )
    # attempt
    out += [
        Field(
            "att_proc_instance",
            "attempt",
            "text",
            "Procedure instance",
            "proc_instance",
            validation="integer",
            note="the procedure instance this attempt belongs to",
            required=True,
            kind="int",
        ),
        Field(
            "att_number",
            "attempt",
            "text",
            "Attempt number",
            "number",
            validation="integer",
            kind="int",
        ),
        Field(
            "att_minutes",
            "attempt",
            "text",
            "Minutes from procedure start",
            "minutes_from_start",
            validation="number",
            note="min",
            kind="float",
        ),
        Field("att_level", "attempt", "radio", "Level", "level", vocab.LEVELS, kind="choice"),
        Field(
            "att_approach",
            "attempt",
            "radio",
            "Approach",
            "approach",
            vocab.APPROACH,
            kind="choice",
        ),
        Field(
            "att_redirections",
            "attempt",
            "text",
            "Redirections",
            "redirections",
            validation="integer",
            kind="int",
        ),
    ]
    for col, label in (
        ("bone_contact", "Bone contact"),
        ("paraesthesia", "Paraesthesia"),
        ("blood", "Blood in needle"),
        ("csf_obtained", "CSF obtained"),
    ):
        out.append(Field(f"att_{col}", "attempt", "yesno", label, col, kind="bool"))
    # followup
    out += [
        Field(
            "fu_proc_instance",
            "followup",
            "text",
            "Procedure instance",
            "proc_instance",
            validation="integer",
            note="the procedure instance this follow-up belongs to",
            required=True,
            kind="int",
        ),
        Field(
            "fu_kind",
            "followup",
            "radio",
            "Follow-up",
            "kind",
            vocab.FOLLOWUP_KINDS,
            kind="choice",
        ),
        Field(
            "fu_due_date",
            "followup",
            "text",
            "Due date",
            "due_at",
            validation="date_ymd",
            kind="date",
        ),
        Field(
            "fu_state",
            "followup",
            "radio",
            "State",
            "state",
            vocab.FOLLOWUP_STATE,
            kind="choice",
        ),
        Field(
            "fu_completed_date",
            "followup",
            "text",
            "Answered or closed on",
            "completed_at",
            validation="date_ymd",
            kind="date",
        ),
        Field("fu_late", "followup", "yesno", "Entered late", "late", kind="bool"),
        Field(
            "fu_early",
            "followup",
            "yesno",
            "Entered early (confirmed before the window opened)",
            "early",
            kind="bool",
        ),
        Field(
            "fu_offset_min",
            "followup",
            "text",
            "Minutes from the end of the procedure to the answers",
            "offset_min",
            validation="number",
            kind="float",
        ),
        Field(
            "fu_contact_attempts_n",
            "followup",
            "text",
            "Unanswered calls",
            "contact_attempts_n",
            validation="integer",
            kind="int",
        ),
        Field(
            "fu_closed_reason",
            "followup",
            "notes",
            "Reason closed",
            "closed_reason",
            identifier=True,
            branching="[fu_state] = 'unreachable' or [fu_state] = 'declined'",
        ),
    ]
    pdph = "[fu_pdph] = '1'"
    for spec in f.FOLLOWUP_FIELDS.values():
        branching = pdph if spec.name in f.PDPH_DETAILS else ""
        if spec.name in ("other_event", "other_event_serious"):
            branching = "[fu_other_event_any] = '1'"
        if spec.name == "satisfaction":
            out.append(
                Field(
                    "fu_satisfaction",
                    "followup",
                    "radio",
                    "Satisfaction",
                    "satisfaction",
                    vocab.SATISFACTION,
                    annotation="At 5 min (score_5min) or at 72 h (day3)",
                    kind="choice",
                )
            )
            continue
        out.append(_from_spec(spec, "followup", "fu_", branching=branching))
    return out + _predose_fields()


def _predose_fields() -> list[Field]:
    """Issue 14: the pre-dose time-out (one instance per procedure, numbered as its
    procedure) and the patient's lab results (numbered by date over all of them)."""
    f = fields
    out = [
        Field(
            "to_proc_instance",
            "timeout",
            "text",
            "Procedure instance",
            "proc_instance",
            validation="integer",
            note="the procedure instance this time-out belongs to",
            required=True,
            kind="int",
        )
    ]
    for spec in f.TIMEOUT_FIELDS.values():
        branching = "[to_antithrombotic] <> 'none'" if spec.name == "antithrombotic_agent" else ""
        out.append(_from_spec(spec, "timeout", "to_", branching=branching))
    out.append(
        Field(
            "to_antithromb_last_date",
            "timeout",
            "text",
            "Last anticoagulant / antiplatelet dose",
            "antithrombotic_last_at",
            validation="date_ymd",
            note="local date",
            kind="date",
        )
    )
    for test, label in vocab.LAB_TESTS:
        unit = predose_unit(test)
        out += [
            Field(
                f"to_{test}",
                "timeout",
                "text",
                f"{label} used ({unit})",
                f"{test}_value",
                note=unit,
                validation="number",
                kind="float",
                section="Lab results the time-out used" if test == "platelets" else "",
            ),
            Field(
                f"to_{test}_date",
                "timeout",
                "text",
                f"{label}: date taken",
                f"{test}_taken_on",
                validation="date_ymd",
                kind="ymd",
            ),
        ]
    out += [
        Field(
            "to_items_complete",
            "timeout",
            "yesno",
            "No required item missing",
            "complete",
            kind="bool",
            section="Judgement at confirmation",
        ),
        Field("to_required", "timeout", "text", "Required items", "required"),
        Field("to_missing", "timeout", "text", "Missing required items", "missing"),
        Field("to_flags", "timeout", "text", "Flagged items", "flags"),
        _from_spec(f.TIMEOUT_REASON_FIELD, "timeout", "to_"),
        Field(
            "to_confirmed_date",
            "timeout",
            "text",
            "Confirmed on",
            "confirmed_at",
            validation="date_ymd",
            note="local date",
            kind="date",
        ),
        Field("to_confirmed_by", "timeout", "text", "Confirmed by", "confirmed_by"),
        Field("lab_test", "lab", "radio", "Test", "test", vocab.LAB_TESTS, kind="choice"),
        Field(
            "lab_value",
            "lab",
            "text",
            "Result (platelets 10^9/L, PT and aPTT s, INR ratio, urine protein g/L)",
            "value",
            validation="number",
            kind="float",
        ),
        Field("lab_unit", "lab", "text", "Unit", "unit"),
        Field(
            "lab_date",
            "lab",
            "text",
            "Date taken",
            "taken_on",
            validation="date_ymd",
            kind="ymd",
        ),
        Field("lab_source", "lab", "radio", "Entered", "source", vocab.LAB_SOURCES, kind="choice"),
    ]
    return out


def predose_unit(test: str) -> str:
    from ..domain.predose import LAB_UNITS

    return LAB_UNITS[test]


def branch_refs(logic: str) -> set[str]:
    """The fields a branching logic names."""
    return set(BRANCH_REF_RE.findall(logic))


def deidentified_branching(fields: Iterable[Field]) -> list[Field]:
    """``fields`` with no kept field branching on a removed one.

    A de-identified import file leaves the identifier fields out; a field it keeps whose
    branching names one of them would be hidden on the form while it holds data. Such a
    branching is dropped (the field is always shown): one dictionary serves both modes.
    """
    fields = list(fields)
    removed = {f.name for f in fields if f.identifier}
    return [
        dataclasses.replace(f, branching="")
        if f.branching and not f.identifier and branch_refs(f.branching) & removed
        else f
        for f in fields
    ]


def _checked(fields: list[Field]) -> list[Field]:
    """Every branching names existing fields, and a kept field only kept ones."""
    names = {f.name for f in fields}
    kept = {f.name for f in fields if not f.identifier}
    for f in fields:
        refs = branch_refs(f.branching)
        assert refs <= names, (f.name, refs - names)
        assert f.identifier or refs <= kept, (f.name, refs - kept)
        assert f.kind not in ("date", "ymd") or f.validation == "date_ymd", f.name
    return fields


FIELDS: list[Field] = _checked(deidentified_branching(_fields()))


def import_fields(opts: ExportOptions) -> list[Field]:
    return [f for f in FIELDS if f.name != "record_id" and (opts.identifiers or not f.identifier)]


def dictionary_fields(opts: ExportOptions) -> list[Field]:
    """The dictionary's fields: the record id and every field the import file holds (a
    de-identified dictionary does not define the identifier fields it leaves empty)."""
    kept = set(f.name for f in import_fields(opts))
    return [f for f in FIELDS if f.name == "record_id" or f.name in kept]


def complete_field(form: str) -> str:
    """REDCap's form-status field of ``form``."""
    return f"{form}_complete"


def import_header(opts: ExportOptions) -> list[str]:
    """The import file's columns: the fixed ones, then each form's fields followed by
    its ``<form>_complete``."""
    columns = import_fields(opts)
    out = list(IMPORT_FIXED)
    for form in FORMS:
        out += [f.name for f in columns if f.form == form]
        out.append(complete_field(form))
    return out


_CLOSED_PROCEDURE = ("ended", "cancelled")
_CLOSED_FOLLOWUP = ("done", "unreachable", "declined")
_PATIENT_COMPLETE = ("sma_type", "birth_year", "sex", "motor_status")


def form_status(form: str, row: dict[str, Any], written: dict[str, Any]) -> int:
    """``<form>_complete`` of one row: see the module's docstring. ``row`` is the
    query's row, ``written`` the values written for the form's fields (by name)."""
    if form == "patient":
        done = all(written.get(name) not in (None, "") for name in _PATIENT_COMPLETE)
    elif form == "procedure":
        done = row.get("status") in _CLOSED_PROCEDURE
    elif form == "attempt":
        done = row.get("proc_status") in _CLOSED_PROCEDURE
    elif form == "timeout":
        done = row.get("confirmed_at") is not None
    elif form == "lab":
        done = True
    else:
        done = row.get("state") in _CLOSED_FOLLOWUP
    return COMPLETE if done else INCOMPLETE


def _ymd(v: Any) -> str | None:
    """A calendar date as REDCap's ``date_ymd`` reads it, or None."""
    if not isinstance(v, str) or not _YMD_RE.fullmatch(v.strip()):
        return None
    try:
        return date.fromisoformat(v.strip()).isoformat()
    except ValueError:
        return None


def _formatter(field: Field, dates: LocalDates, identifiers: bool) -> Callable[[Any], Any]:
    """REDCap's text for a field's value; de-identified, the value has been through
    :func:`~sma_log.export.common.deidentify_row` already (an instant is its date)."""
    if field.kind == "bool":
        return lambda v: None if v is None else int(bool(v))
    if field.kind == "choice":
        return lambda v: None if v is None else redcap_code(v)
    if field.kind == "date":
        return dates.date if identifiers else (lambda v: v)
    if field.kind == "ymd":
        return _ymd
    if field.kind == "datetime":
        return dates.datetime_text
    if field.kind in ("int", "float"):
        return lambda v: v
    return formula_safe


def _deidentifier(
    form: str, have: dict[str, set[str]], opts: ExportOptions, dates: LocalDates
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A form's query row as the one de-identification rule leaves it
    (:func:`~sma_log.export.common.deidentify_row`, applied to the columns of each
    source table; a removed table's columns are dropped, computed columns such as the
    instance number are kept). With ``--identifiers``, the row itself."""
    if opts.identifiers:
        return lambda row: row
    tables = [(t, have.get(t, set())) for t, _ in _SOURCES[form]]

    def apply(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for table, columns in tables:
            own = {c: row[c] for c in columns if c in row}
            for c in own:
                del out[c]
            kept = deidentify_row(table, own, opts, dates)
            if kept:
                out.update(kept)
        return out

    return apply


def _rows(conn: Any, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
    cur = conn.execute(sql, params)
    cols = [c[0] for c in cur.description]
    while batch := cur.fetchmany(2000):
        for r in batch:
            yield dict(zip(cols, r, strict=True))


#: Where each form's values come from: (table, its alias in the form's query).
_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "patient": (("patients", "pt"), ("identifiers", "i")),
    "procedure": (("procedures", "pr"),),
    "attempt": (("attempts", "a"),),
    "followup": (("followups", "f"),),
    "timeout": (("timeouts", "to"),),
    "lab": (("labs", "l"),),
}


def _queries(opts: ExportOptions) -> dict[str, tuple[str, list[Any]]]:
    """Each form's rows; ``_rowid_<alias>`` names the rowid of each source row."""
    cond, params = opts.start_filter("p.started_at")
    # Instances are numbered over the patient's whole history, then filtered: a
    # procedure (and its attempts and follow-ups) keeps its number whatever the range.
    numbered = """SELECT p.*, p.rowid AS _rowid_pr, row_number() OVER (PARTITION BY p.patient_id
                ORDER BY p.started_at, p.id) AS proc_instance
            FROM procedures p"""
    procs = f"SELECT * FROM ({numbered}) p WHERE {cond}"
    where_patient = (
        f"EXISTS (SELECT 1 FROM procedures p WHERE p.patient_id = pt.id AND {cond})"
        if params
        else "1"
    )
    return {
        "patient": (
            f"""SELECT pt.*, i.full_name, i.record_number, i.birth_date,
                pt.rowid AS _rowid_pt, i.rowid AS _rowid_i, i.id AS _id_i
            FROM patients pt LEFT JOIN identifiers i ON i.patient_id = pt.id
            WHERE {where_patient} ORDER BY pt.study_code""",
            list(params),
        ),
        "procedure": (
            f"""WITH pr AS ({procs}) SELECT pt.study_code, pr.proc_instance AS instance, pr.*
            FROM pr JOIN patients pt ON pt.id = pr.patient_id
            ORDER BY pt.study_code, pr.proc_instance""",
            list(params),
        ),
        "attempt": (
            f"""WITH allpr AS ({numbered}), pr AS ({procs}),
            att AS (SELECT a.*, a.rowid AS _rowid_a, row_number() OVER (
                    PARTITION BY allpr.patient_id
                    ORDER BY allpr.proc_instance, a.at, a.id) AS instance
                FROM attempts a JOIN allpr ON allpr.id = a.procedure_id WHERE a.voided = 0)
            SELECT pt.study_code, pr.proc_instance, pr.status AS proc_status, a.*,
                round((julianday(a.at) - julianday(pr.started_at)) * 1440, 3)
                    AS minutes_from_start
            FROM att a JOIN pr ON pr.id = a.procedure_id
            JOIN patients pt ON pt.id = pr.patient_id
            ORDER BY pt.study_code, a.instance""",
            list(params),
        ),
        "followup": (
            f"""WITH allpr AS ({numbered}), pr AS ({procs}),
            fu AS (SELECT f.*, f.rowid AS _rowid_f, row_number() OVER (
                    PARTITION BY allpr.patient_id
                    ORDER BY allpr.proc_instance, f.kind DESC, f.id) AS instance
                FROM followups f JOIN allpr ON allpr.id = f.procedure_id)
            SELECT pt.study_code, pr.proc_instance, f.*
            FROM fu f JOIN pr ON pr.id = f.procedure_id
            JOIN patients pt ON pt.id = pr.patient_id ORDER BY pt.study_code, f.instance""",
            list(params),
        ),
        # one time-out per procedure: its instance is its procedure's
        "timeout": (
            f"""WITH pr AS ({procs})
            SELECT pt.study_code, pr.proc_instance AS instance, pr.proc_instance, t.*,
                t.rowid AS _rowid_to, {_used_labs_sql()}
            FROM timeouts t JOIN pr ON pr.id = t.procedure_id
            JOIN patients pt ON pt.id = pr.patient_id {_used_labs_joins()}
            ORDER BY pt.study_code, pr.proc_instance""",
            list(params),
        ),
        # lab results: numbered by date over all of the patient's results (voided ones
        # keep their number and are not exported)
        "lab": (
            f"""WITH lb AS (SELECT l.*, l.rowid AS _rowid_l, row_number() OVER (
                    PARTITION BY l.patient_id ORDER BY l.taken_on, l.id) AS instance
                FROM labs l)
            SELECT pt.study_code, lb.* FROM lb JOIN patients pt ON pt.id = lb.patient_id
            WHERE lb.voided_at IS NULL AND {where_patient}
            ORDER BY pt.study_code, lb.instance""",
            list(params),
        ),
    }


def _used_labs_sql() -> str:
    """The value and date of each result a time-out used (computed columns)."""
    return ", ".join(
        f"u_{t}.value AS {t}_value, u_{t}.taken_on AS {t}_taken_on"
        for t in vocab.codes(vocab.LAB_TESTS)
    )


def _used_labs_joins() -> str:
    return " ".join(
        f"LEFT JOIN labs u_{t} ON u_{t}.id = t.{t}_lab_id" for t in vocab.codes(vocab.LAB_TESTS)
    )


def _bad_cells(
    conn: Any, opts: ExportOptions, columns: list[Field], have: dict[str, set[str]]
) -> dict[tuple[str, int], set[str]]:
    """The bad cells of the import file's values, reported to ``opts.bad``: (table,
    rowid) → columns. A bad study code refuses the export (it is REDCap's record id)."""
    cond, params = opts.start_filter("p.started_at")
    in_range = f"EXISTS (SELECT 1 FROM procedures p WHERE {{key}} AND {cond})" if params else "1"
    sources = {
        "patients": ("patients t", in_range.format(key="p.patient_id = t.id")),
        "identifiers": ("identifiers t", in_range.format(key="p.patient_id = t.patient_id")),
        "procedures": ("procedures t", cond.replace("p.", "t.")),
        "attempts": (
            "attempts t JOIN procedures p ON p.id = t.procedure_id",
            f"t.voided = 0 AND {cond}",
        ),
        "followups": ("followups t JOIN procedures p ON p.id = t.procedure_id", cond),
        "timeouts": ("timeouts t JOIN procedures p ON p.id = t.procedure_id", cond),
        "labs": ("labs t", in_range.format(key="p.patient_id = t.patient_id")),
    }
    wanted: dict[str, list[str]] = {"patients": ["study_code"]}
    for f in columns:
        table, _ = _source(have, f)
        if table and f.source not in wanted.setdefault(table, []):
            wanted[table].append(f.source)
    found: list[BadCell] = []
    for table, names in wanted.items():
        source, where = sources[table]
        found += find_bad_cells(conn, table, names, source, where, params)
    refused = [c for c in found if c.table == "patients" and c.column == "study_code"]
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise ExportRefused(
            "--format redcap: REDCap's record id is the study code, and "
            f"{refused[0].line()}{more}: REDCap cannot carry it; fix it in the file, "
            "or export csv, json or sqlite (sma-log info --check lists every bad cell)"
        )
    out: dict[tuple[str, int], set[str]] = {}
    for cell in found:
        out.setdefault((cell.table, cell.rowid), set()).add(cell.column)
        opts.bad.add(cell, "written empty")
    return out


def _table_columns(conn: Any) -> dict[str, set[str]]:
    """The columns of each table the import file reads."""
    tables = {t for sources in _SOURCES.values() for t, _ in sources}
    return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}


def write_redcap(store: Any, out: Path, opts: ExportOptions, force: bool) -> dict[str, int]:
    """Write PATH/redcap_data_dictionary.csv and PATH/redcap_import.csv.

    Bad cells are reported to ``opts.bad`` and written empty: REDCap's import checks
    every value against its field (type, choices, dates) and would refuse the file. A
    bad study code refuses the export (one line, exit code 2): it is the record id.
    """
    conn = store.conn
    dates = LocalDates(opts.tz)
    columns = import_fields(opts)
    header = import_header(opts)
    index = {name: i for i, name in enumerate(header)}
    width = len(header)
    counts: dict[str, int] = {}
    progress = Tally(opts.progress)
    if opts.progress is not None:
        cond, params = opts.start_filter("started_at")
        total = conn.execute(f"SELECT count(*) FROM procedures WHERE {cond}", params).fetchone()[0]
        progress.total = int(total)
    conn.execute("BEGIN")  # one read snapshot for both files
    try:
        have = _table_columns(conn)
        bad = _bad_cells(conn, opts, columns, have)
        with staged_folder(out, force, (DICTIONARY_FILE, IMPORT_FILE)) as folder:
            with open_private(folder / DICTIONARY_FILE) as fh:
                writer = csv.writer(fh)
                writer.writerow(DICTIONARY_COLUMNS)
                listed = dictionary_fields(opts)
                writer.writerows([formula_safe(v) for v in f.dictionary_row()] for f in listed)
            counts[DICTIONARY_FILE] = len(listed)
            with open_private(folder / IMPORT_FILE) as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                for form, (sql, params) in _queries(opts).items():
                    status = index[complete_field(form)]
                    mine = [
                        (index[f.name], f, _formatter(f, dates, opts.identifiers), _source(have, f))
                        for f in columns
                        if f.form == form
                    ]
                    rule = _deidentifier(form, have, opts, dates)
                    n = 0
                    rows = _rows(conn, sql, params)
                    if form == "procedure":
                        rows = progress.wrap(rows)
                    for row in rows:
                        line: list[Any] = [None] * width
                        line[0] = formula_safe(row["study_code"])
                        if form in REPEATING:
                            line[1] = form
                            line[2] = row["instance"]
                        written: dict[str, Any] = {}
                        values = rule(row)
                        for i, f, fmt, (table, alias) in mine:
                            v = values.get(f.source)
                            rowid = row.get(alias)
                            if v is None or (
                                rowid is not None and f.source in bad.get((table, rowid), ())
                            ):
                                continue
                            value = fmt(v)
                            if value is None and f.kind == "ymd":
                                opts.bad.add(_not_ymd(table, row, alias, f, v), "written empty")
                            line[i] = written[f.name] = value
                        line[status] = form_status(form, row, written)
                        writer.writerow(line)
                        n += 1
                    counts[f"{form} rows"] = n
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    return counts


def _not_ymd(table: str, row: dict[str, Any], alias: str, field: Field, value: Any) -> BadCell:
    """A date REDCap's ``date_ymd`` would refuse (e.g. a birth date typed as free text)."""
    row_id = row.get("_id_i") if table == "identifiers" else row.get("id")
    problem = "not a date REDCap reads (YYYY-MM-DD)"
    return BadCell(table, row.get(alias) or 0, row_id, field.source, problem, value)


def _source(have: dict[str, set[str]], field: Field) -> tuple[str, str]:
    """The table a field's value comes from, and the row key naming its rowid."""
    for table, alias in _SOURCES[field.form]:
        if field.source in have.get(table, ()):
            return table, f"_rowid_{alias}"
    return "", ""
