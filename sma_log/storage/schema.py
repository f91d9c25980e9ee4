"""The schema and its migrations.

``PRAGMA application_id`` marks a file as sma-log's; ``PRAGMA user_version`` holds the
schema version. Each migration is a function run inside one IMMEDIATE transaction,
after a backup of the file was taken (see :mod:`sma_log.storage.db`). Never edit a
released migration: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for real only by the code that runs migrations
    import sqlite_utils

APPLICATION_ID = 0x534D4C47  # "SMLG"

T = "TEXT"
I = "INTEGER"  # noqa: E741
R = "REAL"


def _v1(db: sqlite_utils.Database) -> None:
    """Patients, identifiers, procedures, attempts, events, audit log, meta."""
    db["meta"].create({"key": T, "value": T}, pk="key", not_null={"value"})
    db["patients"].create(
        {
            "id": T,
            "study_code": T,
            "sma_type": I,
            "birth_year": I,
            "sex": T,
            "motor_status": T,
            "created_at": T,
            "updated_at": T,
        },
        pk="id",
        not_null={"study_code", "created_at", "updated_at"},
    )
    db.execute("CREATE UNIQUE INDEX patients_study_code ON patients(study_code COLLATE NOCASE)")
    db["identifiers"].create(
        {
            "id": T,
            "patient_id": T,
            "full_name": T,
            "record_number": T,
            "birth_date": T,
            "created_at": T,
            "updated_at": T,
        },
        pk="id",
        foreign_keys=[("patient_id", "patients", "id")],
        not_null={"patient_id"},
    )
    db["identifiers"].create_index(["patient_id"], unique=True)
    db["procedures"].create(
        {
            "id": T,
            "patient_id": T,
            "status": T,
            "operator": T,
            "assistant": T,
            "regimen": T,
            "dose_mg": R,
            "guidance": T,
            "approach": T,
            "level_intended": T,
            "level_final": T,
            "position": T,
            "needle_tip": T,
            "needle_gauge": I,
            "needle_length_mm": I,
            "cobb_angle": R,
            "axial_rotation": T,
            "hardware": T,
            "bmi": R,
            "sedation": T,
            "sedation_agent": T,
            "csf_removed_ml": R,
            "csf_appearance": T,
            "drug_delivered": I,
            "failure_reason": T,
            "fallback": T,
            "note": T,
            "satisfaction_5min": I,
            "started_at": T,
            "ended_at": T,
            "anchor_boot_id": T,
            "anchor_boottime": R,
            # Derived from the events, maintained in the same transaction as each event,
            # so reports never rescan the timeline.
            "attempts_n": I,
            "redirections_n": I,
            "first_attempt_success": I,
            "first_puncture_at": T,
            "csf_at": T,
            "injection_start_at": T,
            "injection_end_at": T,
            "procedure_min": R,
            "puncture_min": R,
            "created_at": T,
            "updated_at": T,
        },
        pk="id",
        foreign_keys=[("patient_id", "patients", "id")],
        not_null={"patient_id", "status", "started_at", "created_at", "updated_at"},
        defaults={"status": "open", "attempts_n": 0, "redirections_n": 0},
    )
    db.execute(
        "CREATE UNIQUE INDEX procedures_one_open ON procedures(patient_id) WHERE status = 'open'"
    )
    db["procedures"].create_index(["patient_id", "started_at"])
    db["procedures"].create_index(["started_at"])
    db["procedures"].create_index(["status"])
    db["attempts"].create(
        {
            "id": T,
            "procedure_id": T,
            "number": I,
            "at": T,
            "level": T,
            "approach": T,
            "redirections": I,
            "bone_contact": I,
            "paraesthesia": I,
            "blood": I,
            "csf_obtained": I,
            "voided": I,
        },
        pk="id",
        foreign_keys=[("procedure_id", "procedures", "id")],
        not_null={"procedure_id", "at"},
        defaults={"voided": 0, "redirections": 0},
    )
    db["attempts"].create_index(["procedure_id"])
    db["events"].create(
        {
            "id": T,
            "procedure_id": T,
            "seq": I,
            "kind": T,
            "at": T,
            "value": T,
            "attempt_id": T,
            "voided_at": T,
            "recorded_by": T,
        },
        pk="id",
        foreign_keys=[("procedure_id", "procedures", "id")],
        not_null={"procedure_id", "seq", "kind", "at"},
    )
    db["events"].create_index(["procedure_id", "seq"], unique=True)
    db["audit_log"].create(
        {
            "id": T,
            "at": T,
            "user": T,
            "action": T,
            "table_name": T,
            "record_id": T,
            "field": T,
            "old_value": T,
            "new_value": T,
        },
        pk="id",
        not_null={"at", "action", "table_name", "record_id"},
    )
    db["audit_log"].create_index(["table_name", "record_id"])
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"""CREATE TRIGGER audit_log_no_{op.lower()} BEFORE {op} ON audit_log
            BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
        )
    db.execute(
        """CREATE VIEW procedure_summary AS
        SELECT p.id, pt.study_code, p.status, p.started_at, p.ended_at, p.operator,
               p.regimen, p.dose_mg, p.guidance, p.approach, p.level_intended, p.level_final,
               p.cobb_angle, p.hardware, p.sedation, p.attempts_n, p.redirections_n,
               p.first_attempt_success, p.procedure_min, p.puncture_min,
               p.drug_delivered, p.satisfaction_5min
        FROM procedures p JOIN patients pt ON pt.id = p.patient_id"""
    )


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _v1}
SCHEMA_VERSION = max(MIGRATIONS)

# Tables whose rows are clinical data: every change to them is audited.
CLINICAL_TABLES = ("patients", "identifiers", "procedures", "attempts", "events")
