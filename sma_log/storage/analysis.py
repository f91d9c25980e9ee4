"""Analysis rows: one flat, analysis-ready row per ended procedure, streamed.

Read by the report (:mod:`sma_log.domain.stats`) and by the export's
``procedures_analysis.csv`` (with :data:`ANALYSIS_COLUMNS` as its data dictionary).

Every value is computed in SQL from the maintained columns of ``procedures`` (derived
attempt counts and minutes), the patient row and the 72-hour follow-up row, so a row
never needs the events or attempts tables. Rows come from one cursor: constant memory.
Only the joins the requested ``columns`` need are made.

Dates are ISO 8601 UTC with seconds (``2026-03-27T09:00:00Z``). Free-text columns can
identify a patient: they are listed in :data:`IDENTIFYING_COLUMNS` so an export can
drop them (de-identified by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..domain import stats, vocab

if TYPE_CHECKING:
    import sqlite3


class Connected(Protocol):
    """What the reading here needs of a :class:`~sma_log.storage.store.Store` (named
    so, because the Store imports this module through the report cache)."""

    @property
    def conn(self) -> sqlite3.Connection: ...  # pragma: no cover


class AnalysisColumn(NamedTuple):
    name: str
    type: str  # text | integer | real | boolean (0/1) | datetime (ISO 8601 UTC)
    unit: str
    description: str


def _iso(col: str) -> str:
    return f"CASE WHEN {col} IS NULL THEN NULL ELSE substr({col}, 1, 19) || 'Z' END"


_F = "f"  # the 72-hour follow-up (LEFT JOIN followups f ... kind = 'day3')
_F5 = "f5"  # the 5-minute score follow-up (LEFT JOIN followups f5 ... kind = 'score_5min')


def _timing(alias: str) -> str:
    """When a completed follow-up was taken against its window (schedule.timing); NULL
    (not known) when its offset from the end is not known."""
    return (
        f"CASE WHEN {alias}.state = 'done' AND {alias}.offset_min IS NOT NULL THEN "
        f"CASE WHEN {alias}.early THEN 'early' WHEN {alias}.late THEN 'late' "
        "ELSE 'on_time' END END"
    )


_PT = "pt"  # the patient
_NO = ""

# name, type, unit, description, SQL expression, join needed
_SPECS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("procedure_id", "text", "", "Procedure record ID (ULID)", "p.id", _NO),
    ("patient_id", "text", "", "Patient record ID (ULID)", "p.patient_id", _NO),
    ("study_code", "text", "", "Pseudonymous study code of the patient", "pt.study_code", _PT),
    ("started_at", "datetime", "UTC", "Procedure start", _iso("p.started_at"), _NO),
    ("ended_at", "datetime", "UTC", "Procedure end", _iso("p.ended_at"), _NO),
    (
        "year",
        "integer",
        "",
        "Calendar year of the start (UTC)",
        "CAST(substr(p.started_at, 1, 4) AS INTEGER)",
        _NO,
    ),
    ("sma_type", "integer", "", "SMA type 1–4", "pt.sma_type", _PT),
    ("sex", "text", "", "Sex", "pt.sex", _PT),
    ("motor_status", "text", "", "Best motor status", "pt.motor_status", _PT),
    ("birth_year", "integer", "", "Year of birth", "pt.birth_year", _PT),
    (
        "age_years",
        "integer",
        "years",
        "Age at the procedure in whole years: start year − birth year (the birth date is "
        "not used, so it may be one year more than the exact age)",
        "CAST(substr(p.started_at, 1, 4) AS INTEGER) - pt.birth_year",
        _PT,
    ),
    ("operator", "text", "", "Anaesthetist performing the puncture", "p.operator", _NO),
    ("regimen", "text", "", "Dosing regimen and dose", "p.regimen", _NO),
    ("dose_mg", "real", "mg", "Nusinersen dose", "p.dose_mg", _NO),
    ("guidance", "text", "", "Imaging guidance", "p.guidance", _NO),
    ("approach", "text", "", "Planned approach", "p.approach", _NO),
    ("level_intended", "text", "", "Planned interspace", "p.level_intended", _NO),
    ("level_final", "text", "", "Interspace of the successful puncture", "p.level_final", _NO),
    (
        "level",
        "text",
        "",
        "Interspace for reporting: the final level, else the intended one",
        "coalesce(p.level_final, p.level_intended)",
        _NO,
    ),
    ("position", "text", "", "Patient position", "p.position", _NO),
    ("needle_tip", "text", "", "Spinal needle tip", "p.needle_tip", _NO),
    ("needle_gauge", "integer", "G", "Spinal needle gauge", "p.needle_gauge", _NO),
    ("needle_length_mm", "integer", "mm", "Spinal needle length", "p.needle_length_mm", _NO),
    ("cobb_angle", "real", "°", "Scoliosis Cobb angle at this procedure", "p.cobb_angle", _NO),
    (
        "scoliosis",
        "text",
        "",
        "Scoliosis severity from the Cobb angle: none < 10°, mild 10–25°, moderate > 25–50°, "
        "severe > 50° (a boundary value goes to the milder class); unknown without an angle",
        stats.scoliosis_sql("p.cobb_angle"),
        _NO,
    ),
    ("axial_rotation", "text", "", "Vertebral axial rotation", "p.axial_rotation", _NO),
    ("hardware", "text", "", "Spinal surgery or hardware", "p.hardware", _NO),
    ("bmi", "real", "kg/m²", "Body-mass index", "p.bmi", _NO),
    ("sedation", "text", "", "Deepest sedation used during the procedure", "p.sedation", _NO),
    ("sedation_agent", "text", "", "Sedation agent last recorded", "p.sedation_agent", _NO),
    (
        "attempts_n",
        "integer",
        "",
        "Needle attempts (skin insertions), voided ones excluded",
        "p.attempts_n",
        _NO,
    ),
    (
        "redirections_n",
        "integer",
        "",
        "Redirections (passes) without leaving the skin",
        "p.redirections_n",
        _NO,
    ),
    (
        "first_attempt_success",
        "boolean",
        "",
        "CSF obtained on the first attempt (1), not (0); empty if unknown",
        "p.first_attempt_success",
        _NO,
    ),
    ("procedure_min", "real", "min", "Procedure time: start to end", "p.procedure_min", _NO),
    (
        "puncture_min",
        "real",
        "min",
        "Puncture time: first skin puncture to end of injection",
        "p.puncture_min",
        _NO,
    ),
    ("drug_delivered", "boolean", "", "Nusinersen injected intrathecally", "p.drug_delivered", _NO),
    ("csf_removed_ml", "real", "mL", "CSF withdrawn before injection", "p.csf_removed_ml", _NO),
    ("csf_appearance", "text", "", "Appearance of the CSF", "p.csf_appearance", _NO),
    (
        "failure_reason",
        "text",
        "",
        "Why the drug was not delivered (free text)",
        "p.failure_reason",
        _NO,
    ),
    ("fallback", "text", "", "What happened instead of the injection", "p.fallback", _NO),
    (
        "satisfaction_5min",
        "integer",
        "1–5",
        "Satisfaction 5 minutes after the procedure (1 very dissatisfied … 5 very satisfied)",
        "p.satisfaction_5min",
        _NO,
    ),
    (
        "satisfaction_5min_timing",
        "text",
        "",
        "When the 5-minute score was taken: on_time (from 4 min after the end, a setting), "
        "early (confirmed before that) or late (after its window); empty when not known",
        f"CASE WHEN p.satisfaction_5min IS NOT NULL THEN {_timing('f5')} END",
        _F5,
    ),
    (
        "satisfaction_5min_offset_min",
        "real",
        "min",
        "Minutes from the end of the procedure to when the 5-minute score was taken",
        "CASE WHEN p.satisfaction_5min IS NOT NULL AND f5.state = 'done' THEN f5.offset_min END",
        _F5,
    ),
    (
        "fu72_state",
        "text",
        "",
        "72-hour follow-up: open, done, unreachable or declined",
        "f.state",
        _F,
    ),
    (
        "fu72_due_at",
        "datetime",
        "UTC",
        "72-hour follow-up due (72 h after the end)",
        _iso("f.due_at"),
        _F,
    ),
    (
        "fu72_completed_at",
        "datetime",
        "UTC",
        "72-hour follow-up completed or closed",
        _iso("f.completed_at"),
        _F,
    ),
    ("fu72_late", "boolean", "", "72-hour follow-up entered after its window", "f.late", _F),
    (
        "fu72_early",
        "boolean",
        "",
        "72-hour follow-up entered (and confirmed) before its window opened",
        "f.early",
        _F,
    ),
    (
        "fu72_timing",
        "text",
        "",
        "When the 72-hour follow-up was done: on_time, early or late; empty when not done",
        _timing("f"),
        _F,
    ),
    (
        "fu72_offset_min",
        "real",
        "min",
        "Minutes from the end of the procedure to when the 72-hour follow-up was done",
        "CASE WHEN f.state = 'done' THEN f.offset_min END",
        _F,
    ),
    (
        "satisfaction_72h",
        "integer",
        "1–5",
        "Satisfaction 72 h after the procedure (1 very dissatisfied … 5 very satisfied)",
        "f.satisfaction",
        _F,
    ),
    ("pdph", "boolean", "", "Post-dural puncture headache (ICHD-3 7.2.1)", "f.pdph", _F),
    (
        "pdph_onset_hours",
        "integer",
        "h",
        "Hours from the puncture to headache onset",
        "f.pdph_onset_hours",
        _F,
    ),
    ("pdph_orthostatic", "boolean", "", "Headache worse upright", "f.pdph_orthostatic", _F),
    ("pdph_severity", "integer", "NRS 0–10", "Worst headache severity", "f.pdph_severity", _F),
    ("pdph_treatment", "text", "", "Treatment of the PDPH", "f.pdph_treatment", _F),
    ("pdph_resolved", "boolean", "", "PDPH resolved at the contact", "f.pdph_resolved", _F),
    (
        "back_pain_nrs",
        "integer",
        "NRS 0–10",
        "Back pain at the puncture site",
        "f.back_pain_nrs",
        _F,
    ),
    ("radicular_pain", "boolean", "", "Radicular pain since the procedure", "f.radicular_pain", _F),
    ("nausea_vomiting", "boolean", "", "Nausea or vomiting", "f.nausea_vomiting", _F),
    (
        "other_event_any",
        "boolean",
        "",
        "Another adverse event was reported (1), none (0); empty when not asked or "
        "without a completed 72-h follow-up",
        "CASE WHEN f.state = 'done' THEN f.other_event_any END",
        _F,
    ),
    ("other_event", "text", "", "Other adverse event (free text)", "f.other_event", _F),
    (
        "other_event_serious",
        "boolean",
        "",
        "The other event was serious",
        "f.other_event_serious",
        _F,
    ),
)

#: (name, type, unit, description) of every analysis column, in row order.
ANALYSIS_COLUMNS: tuple[AnalysisColumn, ...] = tuple(AnalysisColumn(*s[:4]) for s in _SPECS)
_SQL = {s[0]: (s[4], s[5]) for s in _SPECS}

#: Free text that may identify a patient: dropped by a de-identified export.
IDENTIFYING_COLUMNS: frozenset[str] = frozenset({"failure_reason", "other_event"})
#: Columns holding instants (an export may coarsen them).
DATETIME_COLUMNS: frozenset[str] = frozenset(
    c.name for c in ANALYSIS_COLUMNS if c.type == "datetime"
)
#: Coded columns and their allowed values with labels.
COLUMN_CHOICES: dict[str, vocab.Choices] = {
    "sma_type": vocab.SMA_TYPES,
    "sex": vocab.SEX,
    "motor_status": vocab.MOTOR_STATUS,
    "regimen": vocab.REGIMENS,
    "guidance": vocab.GUIDANCE,
    "approach": vocab.APPROACH,
    "level_intended": vocab.LEVELS,
    "level_final": vocab.LEVELS,
    "level": vocab.LEVELS,
    "position": vocab.POSITION,
    "needle_tip": vocab.NEEDLE_TIP,
    "scoliosis": (*stats.SCOLIOSIS, (stats.UNKNOWN, stats.UNKNOWN_LABEL)),
    "axial_rotation": vocab.AXIAL_ROTATION,
    "hardware": vocab.HARDWARE,
    "sedation": vocab.SEDATION,
    "csf_appearance": vocab.CSF_APPEARANCE,
    "fallback": vocab.FALLBACK,
    "satisfaction_5min": vocab.SATISFACTION,
    "satisfaction_72h": vocab.SATISFACTION,
    "fu72_state": vocab.FOLLOWUP_STATE,
    "satisfaction_5min_timing": stats.TIMINGS[:3],
    "fu72_timing": stats.TIMINGS[:3],
    "pdph_treatment": vocab.PDPH_TREATMENT,
}


def day_bound(day: date | str, tz: str, end: bool) -> str:
    """The stored UTC text of local midnight starting ``day`` (or the day after it)."""
    import pendulum

    from ..domain.clock import to_text

    d = pendulum.Date.fromisoformat(day) if isinstance(day, str) else day
    start = pendulum.datetime(d.year, d.month, d.day, tz=tz)
    return to_text(start.add(days=1) if end else start)


def analysis_sql(
    columns: Iterable[str] | None = None,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    include_open: bool = False,
    order: bool = True,
    exprs: dict[str, str] | None = None,
) -> tuple[str, list[str], list[Any]]:
    """``(sql, column names, parameters)`` of the analysis-row query.

    ``exprs`` replaces the SQL of some columns (e.g. the stored ``p.started_at`` text
    instead of its ISO form), keeping their position.
    """
    names = list(columns) if columns is not None else [c.name for c in ANALYSIS_COLUMNS]
    unknown = [n for n in names if n not in _SQL]
    if unknown:
        raise ValueError(f"unknown analysis column(s): {', '.join(unknown)}")
    joins = {_SQL[n][1] for n in names}
    sql_of = {n: _SQL[n][0] for n in names} | (exprs or {})
    select = ", ".join(f"{sql_of[n]} AS {n}" for n in names)
    sql = f"SELECT {select} FROM procedures p"
    if _PT in joins:
        sql += " JOIN patients pt ON pt.id = p.patient_id"
    if _F in joins:
        sql += " LEFT JOIN followups f ON f.procedure_id = p.id AND f.kind = 'day3'"
    if _F5 in joins:
        sql += " LEFT JOIN followups f5 ON f5.procedure_id = p.id AND f5.kind = 'score_5min'"
    where, params = [], []
    if not include_open:
        # The unary + keeps SQLite off the status index: nearly every procedure is
        # ended, so walking the start-time index (or the table) beats sorting every
        # row found through the status index (measured: half the time of the export).
        where.append("+p.status = 'ended'")
    if date_from is not None:
        where.append("p.started_at >= ?")
        params.append(day_bound(date_from, tz, end=False))
    if date_to is not None:
        where.append("p.started_at < ?")
        params.append(day_bound(date_to, tz, end=True))
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order:
        sql += " ORDER BY p.started_at, p.id"
    return sql, names, params


def iter_analysis_rows(
    store: Connected,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    columns: Iterable[str] | None = None,
    tz: str = "UTC",
    include_open: bool = False,
    order: bool = True,
) -> Iterator[dict[str, Any]]:
    """One dict per ended procedure (by start time), keys as in :data:`ANALYSIS_COLUMNS`.

    ``date_from`` / ``date_to``: calendar dates (``date`` or ``YYYY-MM-DD``), both
    inclusive, of the procedure start in time zone ``tz``. ``columns``: only these
    keys (and only the joins they need). ``include_open``: procedures still in progress
    too. ``order=False`` skips the sort (the report does not need it).
    """
    sql, names, params = analysis_sql(columns, date_from, date_to, tz, include_open, order)
    yield from iter_dicts(store.conn.execute(sql, params), names)


def iter_dicts(cur: Any, names: list[str]) -> Iterator[dict[str, Any]]:
    """The rows of ``cur`` as dicts keyed by ``names``, fetched 2,000 at a time."""
    cur.arraysize = 2000
    while chunk := cur.fetchmany():
        for values in chunk:
            yield dict(zip(names, values, strict=True))


def timeout_quality(
    conn: sqlite3.Connection,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    where: Any = None,
) -> dict[str, int]:
    """The pre-dose time-out's data-quality counts (issue 14) over the report's ended
    procedures (its dates and filters): ``timeout_of`` (those procedures),
    ``timeout_complete`` (a confirmed time-out with no required item missing),
    ``timeout_flagged`` (confirmed with a flagged value) and ``timeout_overridden``
    (confirmed with a reason: an item missing or a value flagged). Empty when none of
    them has a time-out at all (a file from before time-outs: no line)."""
    filters = stats.parse_where(where)
    if conn.execute("SELECT 1 FROM timeouts LIMIT 1").fetchone() is None:
        return {}  # no time-out in the file: no line, and no pass over every procedure
    columns = list(dict.fromkeys(["procedure_id", *(stats.GROUPINGS[d][0] for d in filters)]))
    sql, names, params = analysis_sql(columns, date_from, date_to, tz, order=False)
    sql = (
        f"SELECT a.*, t.confirmed_at AS _confirmed, t.complete AS _complete, "
        f"t.flags AS _flags, t.reason AS _reason, t.id AS _timeout "
        f"FROM ({sql}) a LEFT JOIN timeouts t ON t.procedure_id = a.procedure_id"
    )
    names = [*names, "_confirmed", "_complete", "_flags", "_reason", "_timeout"]
    out = dict.fromkeys(
        ("timeout_of", "timeout_complete", "timeout_flagged", "timeout_overridden"), 0
    )
    seen = 0
    for row in iter_dicts(conn.execute(sql, params), names):
        if not all(stats.group_key(row, d) in codes for d, codes in filters.items()):
            continue
        out["timeout_of"] += 1
        seen += row["_timeout"] is not None
        if row["_confirmed"] is None:
            continue
        out["timeout_complete"] += row["_complete"] == 1
        out["timeout_flagged"] += bool(row["_flags"])
        out["timeout_overridden"] += bool(row["_reason"])
    return out if seen else {}
