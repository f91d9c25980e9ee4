"""The columns the demo writes, table by table, in the order the batches are inserted."""

from __future__ import annotations

from typing import Any

from ..domain import fields

#: The user of every event, contact attempt and audit row the demo writes.
DEMO_USER = "demo"

PATIENT_COLUMNS = (
    "id",
    "study_code",
    "sma_type",
    "birth_year",
    "sex",
    "motor_status",
    "created_at",
    "updated_at",
)
PROCEDURE_COLUMNS = (
    "id",
    "patient_id",
    "status",
    "operator",
    "assistant",
    "regimen",
    "dose_mg",
    "guidance",
    "approach",
    "level_intended",
    "level_final",
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
    "csf_removed_ml",
    "csf_appearance",
    "drug_delivered",
    "failure_reason",
    "fallback",
    "note",
    "satisfaction_5min",
    "started_at",
    "ended_at",
    "anchor_boot_id",
    "anchor_boottime",
    "attempts_n",
    "redirections_n",
    "first_attempt_success",
    "first_puncture_at",
    "csf_at",
    "injection_start_at",
    "injection_end_at",
    "procedure_min",
    "puncture_min",
    "created_at",
    "updated_at",
    "cancelled_at",
    "cancel_reason",
    # schema 6 (issue 14): derived drug timing, as the Store writes it
    "vial_out_at",
    "drawn_up_at",
    "injection_sec",
    "drawn_to_injection_min",
)
FOLLOWUP_COLUMNS = (
    "id",
    "procedure_id",
    "kind",
    "due_at",
    "state",
    "closed_reason",
    "completed_at",
    "late",
    "contact_attempts_n",
    "last_contact_at",
    "satisfaction",
    "pdph",
    "pdph_onset_hours",
    "pdph_orthostatic",
    "pdph_severity",
    "pdph_treatment",
    "pdph_resolved",
    "back_pain_nrs",
    "radicular_pain",
    "nausea_vomiting",
    "other_event",
    "other_event_serious",
    "contact_method",
    "assessor",
    "created_at",
    "updated_at",
    "early",
    "offset_min",
    "other_event_any",
)
CONTACT_ATTEMPT_COLUMNS = ("id", "followup_id", "at", "outcome", "by_user", "note", "voided_at")
#: The follow-up answers (``complete_followup`` writes all of them, unanswered ones None).
ANSWER_COLUMNS = tuple(fields.FOLLOWUP_FIELDS)
ATTEMPT_COLUMNS = (
    "id",
    "procedure_id",
    "number",
    "at",
    "level",
    "approach",
    "redirections",
    "bone_contact",
    "paraesthesia",
    "blood",
    "csf_obtained",
    "voided",
)
EVENT_COLUMNS = (
    "id",
    "procedure_id",
    "seq",
    "kind",
    "at",
    "value",
    "attempt_id",
    "voided_at",
    "recorded_by",
)
#: The audit log's stored form (schema 5), filled by :mod:`sma_log.demo.auditrows`.
AUDIT_TX_COLUMNS = ("n", "at", "user")
AUDIT_COLUMNS = ("n", "tx", "table_name", "record_id", "field", "old_value", "kept")

#: Every table a batch fills, parents before children: the batch is inserted in this order.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": PATIENT_COLUMNS,
    "procedures": PROCEDURE_COLUMNS,
    "attempts": ATTEMPT_COLUMNS,
    "events": EVENT_COLUMNS,
    "followups": FOLLOWUP_COLUMNS,
    "contact_attempts": CONTACT_ATTEMPT_COLUMNS,
    "audit_tx": AUDIT_TX_COLUMNS,
    "audit_log": AUDIT_COLUMNS,
}

Batch = dict[str, list[tuple[Any, ...]]]


def empty_batch() -> Batch:
    """No rows yet, one list per table of :data:`TABLE_COLUMNS`, in its order."""
    return {table: [] for table in TABLE_COLUMNS}


def as_tuple(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """``row``'s values in the order of the table's columns."""
    return tuple(row[c] for c in TABLE_COLUMNS[table])


def insert_sql(table: str) -> str:
    """The ``INSERT`` of one row of ``table`` (one ``?`` per column)."""
    cols = TABLE_COLUMNS[table]
    return f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
