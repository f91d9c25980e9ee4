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
    db.table("meta").create({"key": T, "value": T}, pk="key", not_null={"value"})
    db.table("patients").create(
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
    db.table("identifiers").create(
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
    db.table("identifiers").create_index(["patient_id"], unique=True)
    db.table("procedures").create(
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
    db.table("procedures").create_index(["patient_id", "started_at"])
    db.table("procedures").create_index(["started_at"])
    db.table("procedures").create_index(["status"])
    db.table("attempts").create(
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
    db.table("attempts").create_index(["procedure_id"])
    db.table("events").create(
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
    db.table("events").create_index(["procedure_id", "seq"], unique=True)
    db.table("audit_log").create(
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
    db.table("audit_log").create_index(["table_name", "record_id"])
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


def _v2(db: sqlite_utils.Database) -> None:
    """Follow-ups (5-minute score and 72-hour call) and their contact attempts.

    Ended procedures already in the file get their follow-ups scheduled, so an
    upgraded database has the same queue a new one would have.
    """
    import json

    import pendulum

    from ..domain import schedule
    from ..domain.clock import from_text, to_text
    from ..domain.ids import new_id

    db.table("followups").create(
        {
            "id": T,
            "procedure_id": T,
            "kind": T,
            "due_at": T,
            "state": T,
            "closed_reason": T,
            "completed_at": T,
            "late": I,
            "contact_attempts_n": I,
            "last_contact_at": T,
            "satisfaction": I,
            "pdph": I,
            "pdph_onset_hours": I,
            "pdph_orthostatic": I,
            "pdph_severity": I,
            "pdph_treatment": T,
            "pdph_resolved": I,
            "back_pain_nrs": I,
            "radicular_pain": I,
            "nausea_vomiting": I,
            "other_event": T,
            "other_event_serious": I,
            "contact_method": T,
            "assessor": T,
            "created_at": T,
            "updated_at": T,
        },
        pk="id",
        foreign_keys=[("procedure_id", "procedures", "id")],
        not_null={"procedure_id", "kind", "due_at", "state", "created_at", "updated_at"},
        defaults={"state": "open", "contact_attempts_n": 0, "late": 0},
    )
    db.table("followups").create_index(["procedure_id", "kind"], unique=True)
    db.table("followups").create_index(["state", "due_at"])
    db.table("contact_attempts").create(
        {"id": T, "followup_id": T, "at": T, "outcome": T, "by_user": T, "note": T},
        pk="id",
        foreign_keys=[("followup_id", "followups", "id")],
        not_null={"followup_id", "at", "outcome"},
    )
    db.table("contact_attempts").create_index(["followup_id"])
    # INSERT OR REPLACE deletes without firing DELETE triggers: refuse a reused id.
    db.execute(
        """CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
        WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
    )
    now = to_text(pendulum.now("UTC"))
    ended = db.execute(
        "SELECT id, ended_at, satisfaction_5min FROM procedures WHERE status = 'ended'"
    ).fetchall()
    for proc_id, ended_at, score in ended:
        end = from_text(ended_at)
        for kind, _ in schedule.FOLLOWUP_KINDS:
            done = kind == "score_5min" and score is not None
            row = {
                "id": new_id(),
                "procedure_id": proc_id,
                "kind": kind,
                "due_at": to_text(schedule.due_at(kind, end)),
                "state": "done" if done else "open",
                "completed_at": now if done else None,
                "satisfaction": score if done else None,
                "created_at": now,
                "updated_at": now,
            }
            db.execute(
                f"INSERT INTO followups({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            audit = {k: v for k, v in row.items() if k != "id"}
            db.execute(
                "INSERT INTO audit_log(id, at, user, action, table_name, record_id, field, "
                "new_value) VALUES (?, ?, 'migration', 'insert', 'followups', ?, '*', ?)",
                (new_id(), now, row["id"], json.dumps(audit, sort_keys=True)),
            )
    db.execute(
        """CREATE VIEW followup_summary AS
        SELECT f.id, pt.study_code, f.procedure_id, p.ended_at, f.kind, f.due_at, f.state,
               f.late, f.contact_attempts_n, f.completed_at, f.satisfaction, f.pdph,
               f.pdph_severity, f.pdph_treatment, f.back_pain_nrs, f.radicular_pain,
               f.nausea_vomiting, f.other_event_serious, f.contact_method
        FROM followups f JOIN procedures p ON p.id = f.procedure_id
        JOIN patients pt ON pt.id = p.patient_id"""
    )


def whole_second_times(row: dict[str, object]) -> dict[str, object]:
    """A procedure row's ``procedure_min`` and ``puncture_min`` as schema 3 keeps them.

    From the stored instants (start → end, first puncture → injection end) rounded to
    the whole second; where an instant is missing or unreadable (a de-identified
    export, a value some other tool wrote), from the old number itself; a value that is
    not a number is left as it is (a migration never fails on one odd row).
    Used by migration 3 and by ``import`` of older JSON exports.
    """
    from ..domain.timeline import whole_second_minutes

    out: dict[str, object] = {}
    for col, a, b in (
        ("procedure_min", "started_at", "ended_at"),
        ("puncture_min", "first_puncture_at", "injection_end_at"),
    ):
        old = row.get(col)
        seconds = _seconds_between(row.get(a), row.get(b))
        if old is None:
            out[col] = None
        elif seconds is not None:
            out[col] = whole_second_minutes(seconds)
        elif isinstance(old, (int, float)) and not isinstance(old, bool):
            out[col] = whole_second_minutes(float(old) * 60)
        else:
            out[col] = old
    return out


def _seconds_between(start: object, end: object) -> float | None:
    from datetime import datetime

    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        a = datetime.fromisoformat(start.removesuffix("Z"))
        b = datetime.fromisoformat(end.removesuffix("Z"))
        return (b - a).total_seconds()
    except (ValueError, TypeError):  # unreadable, or one with an offset and one without
        return None


def _v3(db: sqlite_utils.Database) -> None:
    """Times to the whole second (and, since schema 4, no longer the report caches).

    * ``procedure_min`` and ``puncture_min`` are recomputed from the stored instants,
      rounded to the whole second (:func:`sma_log.domain.timeline.whole_second_minutes`,
      what the code now writes): derived columns, not audited, like every rewrite of them;
    * schema 3 also created ``report_facts``, ``report_cells``, the view
      ``report_facts_source`` and their triggers. Their SQL is generated from the
      code's current definitions, which later migrations' columns feed, so they are now
      built after the last migration, and rebuilt whenever the definitions change
      (:func:`sma_log.storage.reportcache.ensure`, run by every upgrade and open).
    """
    conn = db.conn
    cur = conn.execute(
        "SELECT id, started_at, ended_at, first_puncture_at, injection_end_at, procedure_min, "
        "puncture_min FROM procedures WHERE procedure_min IS NOT NULL OR puncture_min IS NOT NULL"
    )
    names = [c[0] for c in cur.description]
    while rows := cur.fetchmany(5000):
        updates = []
        for values in rows:
            row = dict(zip(names, values, strict=True))
            times = whole_second_times(row)
            updates.append((times["procedure_min"], times["puncture_min"], row["id"]))
        conn.executemany(
            "UPDATE procedures SET procedure_min = ?, puncture_min = ? WHERE id = ?", updates
        )


def followup_v4_values(
    kind: object, state: object, completed_at: object, ended_at: object, other_event: object
) -> dict[str, object]:
    """``early``, ``offset_min`` and ``other_event_any`` of a follow-up written before
    schema 4, from what it stored (used by migration 4 and by ``import`` of older JSON).

    Only a completed (``done``) follow-up gets them: its offset from the stored instants
    (unreadable ones, such as the dates of a de-identified export, leave it unknown),
    early when taken before its default window opened, and "another event: yes" when it
    describes one (else unknown: nobody was asked).
    """
    from ..domain import schedule
    from ..domain.clock import from_text

    out: dict[str, object] = {"early": 0, "offset_min": None, "other_event_any": None}
    if state != "done":
        return out
    if ended_at and completed_at and kind in schedule.FOLLOWUP_DELAY:
        try:
            end, taken = from_text(str(ended_at)), from_text(str(completed_at))
        except (TypeError, ValueError):  # an odd value another tool wrote: left alone
            pass
        else:
            out["offset_min"] = schedule.offset_minutes(end, taken)
            out["early"] = int(schedule.timing(str(kind), end, taken) == "early")
    if kind == "day3" and isinstance(other_event, str) and other_event.strip():
        out["other_event_any"] = 1
    return out


def _v4(db: sqlite_utils.Database) -> None:
    """Nothing false (issue 9): cancelled starts, scores with their timing, unknown ≠ no.

    * ``procedures.cancelled_at`` / ``cancel_reason``: a start cancelled before the first
      skin puncture (status ``cancelled``);
    * ``followups.early`` (taken before its window opened, confirmed), ``offset_min``
      (minutes from the end of the procedure to when it was taken) and
      ``other_event_any`` (the yes/no question "any other adverse event?");
    * ``contact_attempts.voided_at``: a no-answer call undone (kept, not deleted).

    Existing rows: every completed score or follow-up gets its offset from the stored
    instants (completed − procedure end) and is flagged early when it was taken before
    its window (default windows: 4 minutes after the end for the 5-minute score, 60 h
    for the 72-hour call); a completed 72-hour follow-up that describes another event
    answers ``other_event_any`` yes, one that does not stays unknown (NULL: nobody was
    asked). Flags and answers set here are written to the audit log (user
    ``migration``); offsets are derived values, like the procedure's minutes.
    """
    import pendulum

    from ..domain.clock import to_text
    from ..domain.ids import new_id

    conn = db.conn
    for sql in (
        "ALTER TABLE procedures ADD COLUMN cancelled_at TEXT",
        "ALTER TABLE procedures ADD COLUMN cancel_reason TEXT",
        "ALTER TABLE followups ADD COLUMN early INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE followups ADD COLUMN offset_min REAL",
        "ALTER TABLE followups ADD COLUMN other_event_any INTEGER",
        "ALTER TABLE contact_attempts ADD COLUMN voided_at TEXT",
    ):
        conn.execute(sql)
    now = to_text(pendulum.now("UTC"))

    def audit(record_id: str, field: str, new: object) -> None:
        conn.execute(
            "INSERT INTO audit_log(id, at, user, action, table_name, record_id, field, "
            "old_value, new_value) VALUES (?, ?, 'migration', 'update', 'followups', ?, ?, ?, ?)",
            (
                new_id(),
                now,
                record_id,
                field,
                None if field == "other_event_any" else "0",
                str(new),
            ),
        )

    cur = conn.execute(
        "SELECT f.id, f.kind, f.completed_at, p.ended_at, f.other_event FROM followups f "
        "JOIN procedures p ON p.id = f.procedure_id WHERE f.state = 'done'"
    )
    while rows := cur.fetchmany(5000):
        updates = []
        for fid, kind, completed, ended, other in rows:
            v = followup_v4_values(kind, "done", completed, ended, other)
            early, offset, any_other = v["early"], v["offset_min"], v["other_event_any"]
            updates.append((early, offset, any_other, fid))
            if early:
                audit(fid, "early", 1)
            if any_other is not None:
                audit(fid, "other_event_any", 1)
        conn.executemany(
            "UPDATE followups SET early = ?, offset_min = ?, other_event_any = ? WHERE id = ?",
            updates,
        )


AUDIT_TRIGGERS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    # INSERT OR REPLACE deletes without firing DELETE triggers: refuse a reused number.
    """CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE n = NEW.n)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_tx_no_update BEFORE UPDATE ON audit_tx
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_tx_no_delete BEFORE DELETE ON audit_tx
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_tx_no_replace BEFORE INSERT ON audit_tx
    WHEN EXISTS (SELECT 1 FROM audit_tx WHERE n = NEW.n)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)


def _v5(db: sqlite_utils.Database) -> None:
    """A lean audit log (issue 13): nothing stored that the log can derive.

    ``audit_tx(n, at, user)``: one row per write transaction that audits something;
    ``audit_log(n, tx, table_name, record_id, field, old_value, kept)``: one row per
    change, without its own id, time, user, new value or JSON copy of an inserted row
    (see :mod:`sma_log.storage.auditlog` for how they are derived). Existing rows are
    converted in the order written; ``kept`` holds whatever the derivation would not
    give back exactly (checked row by row), so the decoded log equals the old one
    except that an entry's id is its number ``n``. Rows of one (time, user) in a row
    share one ``audit_tx``. The file is compacted (VACUUM) after the commit.
    """
    from .auditlog import column_types, read_current, residuals

    conn = db.conn
    for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_replace"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("ALTER TABLE audit_log RENAME TO audit_log_v4")
    conn.execute("CREATE TABLE audit_tx (n INTEGER PRIMARY KEY, at TEXT NOT NULL, user TEXT)")
    conn.execute(
        "CREATE TABLE audit_log (n INTEGER PRIMARY KEY, "
        "tx INTEGER NOT NULL REFERENCES audit_tx(n), table_name TEXT NOT NULL, "
        "record_id TEXT NOT NULL, field TEXT, old_value TEXT, kept TEXT)"
    )
    # Store.revision() and audit_entries(): a plain index (a partial one is not used).
    conn.execute("CREATE INDEX audit_log_record ON audit_log(table_name, record_id)")
    for sql in AUDIT_TRIGGERS:
        conn.execute(sql)
    conn.execute("CREATE TEMP TABLE audit_v5_kept (id TEXT PRIMARY KEY, kept TEXT NOT NULL)")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    types_of: dict[str, dict[str, str]] = {}
    cols = ("id", "action", "table_name", "record_id", "field", "old_value", "new_value")
    cur = conn.execute(f"SELECT {', '.join(cols)} FROM audit_log_v4 ORDER BY table_name, record_id")

    def convert(group: list[dict[str, object]]) -> None:
        group.sort(key=lambda r: str(r["id"]))
        table, record_id = str(group[0]["table_name"]), str(group[0]["record_id"])
        types: dict[str, str] = {}
        current = None
        if table in tables and table not in ("audit_log", "audit_log_v4", "audit_tx", "meta"):
            types = types_of.setdefault(table, column_types(conn, table))
            if "id" in types:
                current = read_current(conn, table, record_id)
        kept = residuals(table, current, types, group)
        conn.executemany(
            "INSERT INTO temp.audit_v5_kept(id, kept) VALUES (?, ?)",
            [(r["id"], k) for r, k in zip(group, kept, strict=True) if k is not None],
        )

    group: list[dict[str, object]] = []
    while batch := cur.fetchmany(5000):
        for values in batch:
            row = dict(zip(cols, values, strict=True))
            if group and (row["table_name"], row["record_id"]) != (
                group[0]["table_name"],
                group[0]["record_id"],
            ):
                convert(group)
                group = []
            group.append(row)
    if group:
        convert(group)
    cur = conn.execute(
        "SELECT o.at, o.user, o.table_name, o.record_id, o.field, o.old_value, k.kept "
        "FROM audit_log_v4 o LEFT JOIN temp.audit_v5_kept k ON k.id = o.id ORDER BY o.id"
    )
    tx_n, last = 0, None
    while batch := cur.fetchmany(5000):
        txs, rows = [], []
        for at, user, table, record_id, field, old, kept in batch:
            if (at, user) != last:
                tx_n += 1
                last = (at, user)
                txs.append((tx_n, at, user))
            rows.append((tx_n, table, record_id, field, old, kept))
        conn.executemany("INSERT INTO audit_tx(n, at, user) VALUES (?, ?, ?)", txs)
        conn.executemany(
            "INSERT INTO audit_log(tx, table_name, record_id, field, old_value, kept) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    conn.execute("DROP TABLE temp.audit_v5_kept")
    conn.execute("DROP TABLE audit_log_v4")


def _v6(db: sqlite_utils.Database) -> None:
    """Pre-dose time-out and drug timing (issue 14): new tables and nullable columns only.

    * ``labs``: patient-level laboratory results (platelets, PT, aPTT, INR, spot urine
      protein) with their date and source; a mistaken result is voided, never deleted;
    * ``timeouts``: one pre-dose time-out per procedure (NULL answers are unknown);
    * ``procedures.vial_out_at`` / ``drawn_up_at`` / ``injection_sec`` /
      ``drawn_to_injection_min``: derived from the events (new event kinds ``vial_out``
      and ``drawn_up``); existing procedures have none of the new events, so three stay
      NULL, but ``injection_sec`` is derived from the injection start and end a
      procedure already has: it is filled here, as the Store would derive it
      (:func:`sma_log.domain.timeline.drug_columns`; a derived column, not audited).
    """
    from ..domain.clock import from_text

    conn = db.conn
    for sql in (
        "ALTER TABLE procedures ADD COLUMN vial_out_at TEXT",
        "ALTER TABLE procedures ADD COLUMN drawn_up_at TEXT",
        "ALTER TABLE procedures ADD COLUMN injection_sec REAL",
        "ALTER TABLE procedures ADD COLUMN drawn_to_injection_min REAL",
    ):
        conn.execute(sql)
    rows = conn.execute(
        "SELECT id, injection_start_at, injection_end_at FROM procedures "
        "WHERE injection_start_at IS NOT NULL AND injection_end_at IS NOT NULL"
    ).fetchall()
    updates = []
    for proc_id, start, end in rows:
        try:
            seconds = (from_text(end) - from_text(start)).total_seconds()
        except (TypeError, ValueError):  # a value another tool wrote: left for info --check
            continue
        updates.append((float(round(seconds)), proc_id))
    conn.executemany("UPDATE procedures SET injection_sec = ? WHERE id = ?", updates)
    db.table("labs").create(
        {
            "id": T,
            "patient_id": T,
            "test": T,
            "value": R,
            "unit": T,
            "taken_on": T,
            "source": T,
            "voided_at": T,
            "created_at": T,
            "updated_at": T,
        },
        pk="id",
        foreign_keys=[("patient_id", "patients", "id")],
        not_null={"patient_id", "test", "value", "taken_on", "created_at", "updated_at"},
    )
    db.table("labs").create_index(["patient_id", "test", "taken_on"])
    db.table("timeouts").create(
        {
            "id": T,
            "procedure_id": T,
            "consent": I,
            "skin": T,
            "antithrombotic": T,
            "antithrombotic_agent": T,
            "antithrombotic_last_at": T,
            "vp_shunt": I,
            "platelets_lab_id": T,
            "pt_lab_id": T,
            "aptt_lab_id": T,
            "inr_lab_id": T,
            "urine_protein_lab_id": T,
            "required": T,
            "missing": T,
            "flags": T,
            "complete": I,
            "reason": T,
            "confirmed_at": T,
            "confirmed_by": T,
            "created_at": T,
            "updated_at": T,
        },
        pk="id",
        foreign_keys=[("procedure_id", "procedures", "id")],
        not_null={"procedure_id", "created_at", "updated_at"},
    )
    db.table("timeouts").create_index(["procedure_id"], unique=True)


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
    6: _v6,
}
#: The migration after which the file is compacted (VACUUM, after its commit).
VACUUM_AFTER = 5
SCHEMA_VERSION = max(MIGRATIONS)

# Tables whose rows are clinical data: every change to them is audited.
CLINICAL_TABLES = (
    "patients",
    "identifiers",
    "procedures",
    "attempts",
    "events",
    "followups",
    "contact_attempts",
    "labs",
    "timeouts",
)
