"""The Store on a real SQLite file: pragmas, the bedside flow, audit log, rules, IDs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from conftest import T0, VALID_SETUP

from sma_log.domain import fields
from sma_log.domain.clock import Clock, from_text, to_text
from sma_log.domain.timeline import RuleError
from sma_log.storage.auditlog import CACHE_TABLES
from sma_log.storage.errors import Conflict, NotFound
from sma_log.storage.schema import APPLICATION_ID, CLINICAL_TABLES, SCHEMA_VERSION
from sma_log.storage.store import Store

ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
# Columns that are a cache of the (audited) events, or bookkeeping: not audited themselves.
UNAUDITED = {
    "procedures": {
        "attempts_n",
        "redirections_n",
        "first_attempt_success",
        "first_puncture_at",
        "csf_at",
        "injection_start_at",
        "injection_end_at",
        "procedure_min",
        "puncture_min",
        "sedation",
        "sedation_agent",
        "vial_out_at",
        "drawn_up_at",
        "injection_sec",
        "drawn_to_injection_min",
        "updated_at",
    },
    "patients": {"updated_at"},
    "identifiers": {"updated_at"},
    "followups": {"updated_at"},
}


@pytest.fixture
def at() -> Iterator[Any]:
    """``at(minutes)`` freezes the wall clock at T0 + minutes."""

    def move(minutes: float) -> None:
        pendulum.travel_to(T0.add(seconds=int(minutes * 60)), freeze=True)

    move(0)
    yield move
    pendulum.travel_back()


def rows(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def bedside_flow(store: Store, at: Any) -> tuple[dict[str, Any], str]:
    """create patient → start → 3 attempts with a redirection → CSF → injection → end → 5."""
    at(0)
    patient = store.create_patient({"study_code": "sma-007", "sma_type": "1", "sex": "male"})
    proc = store.start_procedure(patient["id"], VALID_SETUP)
    at(2)
    store.record(proc, "attempt")
    store.record(proc, "redirect")
    at(4)
    store.record(proc, "attempt")
    at(5)
    store.record(proc, "attempt")
    at(6)
    store.record(proc, "csf")
    at(7)
    store.record(proc, "injection_start")
    at(9)
    store.record(proc, "injection_end")
    at(12)
    store.end_procedure(
        proc, {"drug_delivered": "yes", "csf_removed_ml": "5", "csf_appearance": "clear"}
    )
    at(17)
    store.set_score(proc, "5")
    return patient, proc


# ---------------------------------------------------------------- file and pragmas
def test_new_file_is_private_wal_full_with_foreign_keys(store: Store, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    wal = Path(f"{db_path}-wal")
    assert wal.exists()
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    shm = Path(f"{db_path}-shm")
    assert stat.S_IMODE(shm.stat().st_mode) == 0o600
    q = store.conn.execute
    assert q("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert q("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert q("PRAGMA foreign_keys").fetchone()[0] == 1
    assert q("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert q("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert q("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.backup is None
    # no temporary creation file left behind
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["t.db", "t.db-shm", "t.db-wal"]


def test_new_file_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with Store.open(tmp_path / "new" / "u.db", "tester", clock=Clock(monotonic=False)) as s:
            s.create_patient({"study_code": "X1"})
    finally:
        os.umask(old)
    for name in ("u.db", "u.db-wal"):
        path = tmp_path / "new" / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_meta_records_versions(store: Store) -> None:
    meta = dict(store.conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["sqlite_version"] == sqlite3.sqlite_version
    assert {"created_by", "created_at", "last_opened_by"} <= meta.keys()


def test_pragmas_hold_for_every_connection(store: Store, db_path: Path) -> None:
    with Store.open(db_path, "second", clock=Clock(monotonic=False)) as other:
        assert other.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert other.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert other.backup is None


# ---------------------------------------------------------------- the bedside flow
def test_bedside_flow_leaves_exactly_these_rows(store: Store, at: Any) -> None:
    patient, _ = bedside_flow(store, at)
    c = store.conn
    assert store.counts() == {
        "patients": 1,
        "procedures": 1,
        "attempts": 3,
        "events": 9,
        "audit_log": store.counts()["audit_log"],
    }
    p = rows(c, "SELECT * FROM procedures")[0]
    assert p["patient_id"] == patient["id"]
    assert p["status"] == "ended"
    assert p["attempts_n"] == 3
    assert p["redirections_n"] == 1
    assert p["first_attempt_success"] == 0
    assert p["procedure_min"] == 12.0
    assert p["puncture_min"] == 7.0
    assert p["started_at"] == to_text(T0)
    assert p["first_puncture_at"] == to_text(T0.add(minutes=2))
    assert p["csf_at"] == to_text(T0.add(minutes=6))
    assert p["injection_start_at"] == to_text(T0.add(minutes=7))
    assert p["injection_end_at"] == to_text(T0.add(minutes=9))
    assert p["ended_at"] == to_text(T0.add(minutes=12))
    assert p["drug_delivered"] == 1
    assert p["satisfaction_5min"] == 5
    assert p["level_final"] == "L3-L4"
    assert p["csf_removed_ml"] == 5.0
    assert p["csf_appearance"] == "clear"
    assert p["dose_mg"] == 12.0
    assert p["needle_gauge"] == 22
    assert p["cobb_angle"] == 45.5
    assert p["bmi"] == 18.5
    assert p["sedation"] == "local"
    assert p["operator"] == "Dr Rossi"

    attempts = rows(c, "SELECT * FROM attempts ORDER BY number")
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["redirections"] for a in attempts] == [1, 0, 0]
    assert [a["csf_obtained"] for a in attempts] == [0, 0, 1]
    assert [a["voided"] for a in attempts] == [0, 0, 0]
    assert [a["at"] for a in attempts] == [to_text(T0.add(minutes=m)) for m in (2, 4, 5)]
    assert {a["level"] for a in attempts} == {"L3-L4"}
    assert {a["approach"] for a in attempts} == {"paramedian"}

    events = rows(c, "SELECT * FROM events ORDER BY seq")
    assert [e["kind"] for e in events] == [
        "start",
        "attempt",
        "redirect",
        "attempt",
        "attempt",
        "csf",
        "injection_start",
        "injection_end",
        "end",
    ]
    assert [e["seq"] for e in events] == list(range(1, 10))
    assert all(e["voided_at"] is None for e in events)
    assert {e["recorded_by"] for e in events} == {"tester"}
    assert events[2]["attempt_id"] == attempts[0]["id"]  # the redirection's attempt
    assert events[5]["attempt_id"] == attempts[2]["id"]  # CSF on the third attempt
    assert [e["id"] for e in events if e["kind"] == "attempt"] == [a["id"] for a in attempts]

    summary = rows(c, "SELECT * FROM procedure_summary")[0]
    assert summary["study_code"] == "SMA-007"
    assert summary["attempts_n"] == 3
    assert store.pending_scores() == []
    assert store.open_procedures() == []


def test_bedside_flow_survives_reopening(store: Store, db_path: Path, at: Any) -> None:
    _, proc = bedside_flow(store, at)
    before = store.load_procedure(proc)
    store.close()
    with Store.open(db_path, "tester", clock=Clock(monotonic=False)) as again:
        after = again.load_procedure(proc)
    assert after.row == before.row
    assert after.events == before.events
    assert after.state.attempt_count == 3


def test_open_procedure_resumes_after_reopen(db_path: Path, at: Any) -> None:
    s = Store.open(db_path, "tester", clock=Clock(monotonic=False))
    patient = s.create_patient({"study_code": "R1"})
    proc = s.start_procedure(patient["id"], VALID_SETUP)
    at(1)
    s.record(proc, "attempt")
    s.record(proc, "redirect")
    s.conn.close()  # as abrupt as a closed connection gets in-process
    at(3)
    with Store.open(db_path, "tester", clock=Clock(monotonic=False)) as again:
        view = again.load_procedure(proc)
        assert view.state.attempt_count == 1
        assert view.state.redirection_count == 1
        assert view.started_at == T0
        assert again.clock.elapsed(view.started_at, view.anchor) == 180.0
        assert [r["id"] for r in again.open_procedures()] == [proc]


# ---------------------------------------------------------------- undo
def test_undo_is_audited_and_deletes_nothing(at: Any, store: Store, open_procedure: str) -> None:
    proc = open_procedure
    store.record(proc, "attempt")
    at(1)
    store.record(proc, "redirect")
    at(2)
    view, target = store.undo(proc)
    assert target.kind == "redirect"
    assert view.state.redirection_count == 0
    c = store.conn
    ev = rows(c, "SELECT * FROM events WHERE id = ?", (target.id,))[0]
    assert ev["voided_at"] == to_text(T0.add(minutes=2))
    assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    audit = [e for e in store.audit_entries("events", target.id) if e["action"] == "update"]
    assert len(audit) == 1
    assert audit[0]["field"] == "voided_at"
    assert audit[0]["old_value"] is None
    assert audit[0]["new_value"] == ev["voided_at"]
    assert audit[0]["user"] == "tester"
    att = rows(c, "SELECT * FROM attempts")[0]
    assert att["redirections"] == 0
    assert rows(c, "SELECT redirections_n FROM procedures")[0]["redirections_n"] == 0


def test_multi_level_undo_of_attempts(at: Any, store: Store, open_procedure: str) -> None:
    proc = open_procedure
    for m in (1, 2, 3):
        at(m)
        store.record(proc, "attempt")
    store.record(proc, "flag", "bone_contact")
    for _ in range(3):
        store.undo(proc)  # flag, attempt 3, attempt 2
    view = store.load_procedure(proc)
    assert view.state.attempt_count == 1
    c = store.conn
    assert c.execute("SELECT count(*) FROM attempts").fetchone()[0] == 3  # voided, kept
    assert [r[0] for r in c.execute("SELECT voided FROM attempts ORDER BY at")] == [0, 1, 1]
    assert c.execute("SELECT count(*) FROM events WHERE voided_at IS NOT NULL").fetchone()[0] == 3
    assert rows(c, "SELECT attempts_n, first_puncture_at FROM procedures")[0] == {
        "attempts_n": 1,
        "first_puncture_at": to_text(T0.add(minutes=1)),
    }
    store.undo(proc)
    with pytest.raises(RuleError, match="Nothing to undo"):
        store.undo(proc)
    p = rows(c, "SELECT attempts_n, first_puncture_at FROM procedures")[0]
    assert p == {"attempts_n": 0, "first_puncture_at": None}
    # a new attempt after undoing everything is attempt 1 again
    store.record(proc, "attempt")
    assert store.load_procedure(proc).state.attempts[0].number == 1


# ---------------------------------------------------------------- audit log
def _decode(table_types: dict[str, str], column: str, text: str | None) -> Any:
    if text is None:
        return None
    if table_types.get(column, "TEXT").upper() == "TEXT":
        return text
    return json.loads(text)


def test_every_insert_and_update_is_in_the_audit_log(store: Store, at: Any) -> None:
    """Replaying the audit log rebuilds every audited column of every clinical row."""
    _, proc = bedside_flow(store, at)
    at(20)
    store.update_procedure(proc, {"note": "difficult spine", "needle_gauge": "25"})
    pid = store.find_patient("SMA-007")["id"]
    store.update_patient(pid, {"motor_status": "non_sitter", "birth_year": "2019"})
    store.set_identifiers(pid, {"full_name": "Mario Verdi"})
    store.set_identifiers(pid, {"record_number": "H123"})
    other = store.create_patient({"study_code": "U-1"})
    proc2 = store.start_procedure(other["id"], VALID_SETUP)
    for kind, value in [("attempt", None), ("flag", "blood"), ("attempt", None),
                        ("redirect", None), ("sedation", "iv_sedation|midazolam")]:  # fmt: skip
        store.record(proc2, kind, value)
    for _ in range(3):
        store.undo(proc2)  # sedation, redirect, attempt 2
    store.record(proc2, "attempt_detail", "L4-L5|midline")
    c = store.conn
    assert c.execute("SELECT count(*) FROM attempts WHERE voided = 1").fetchone()[0] == 1
    audit = store.audit_entries(limit=-1)  # decoded (schema 5 stores old values only)
    assert audit, "no audit rows"
    for a in audit:
        assert a["user"] == "tester"
        assert STAMP_RE.match(a["at"]), a["at"]
        from_text(a["at"])
        assert isinstance(a["id"], int)
        assert a["action"] in ("insert", "update")
    for table in CLINICAL_TABLES:
        if table in CACHE_TABLES:  # attempts: a cache of the events, not audited
            assert not any(a["table_name"] == table for a in audit)
            continue
        types = {r[1]: r[2] for r in c.execute(f"PRAGMA table_info({table})")}
        rebuilt: dict[str, dict[str, Any]] = {}
        for a in audit:
            if a["table_name"] != table:
                continue
            if a["action"] == "insert":
                assert a["record_id"] not in rebuilt
                assert a["field"] == "*" and a["old_value"] is None
                rebuilt[a["record_id"]] = {"id": a["record_id"], **json.loads(a["new_value"])}
            else:
                row = rebuilt[a["record_id"]]
                assert row.get(a["field"]) == _decode(types, a["field"], a["old_value"])
                row[a["field"]] = _decode(types, a["field"], a["new_value"])
        actual = {r["id"]: r for r in rows(c, f"SELECT * FROM {table}")}
        assert rebuilt.keys() == actual.keys(), table
        skip = UNAUDITED.get(table, set())
        for rid, row in actual.items():
            for col, value in row.items():
                if col in skip:
                    continue
                assert rebuilt[rid].get(col) == value, (table, col)


def test_audit_log_refuses_update_and_delete(store: Store, patient: dict[str, Any]) -> None:
    path = store.path
    n = store.counts()["audit_log"]
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("UPDATE audit_log SET old_value = 'mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("UPDATE audit_tx SET user = 'mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("DELETE FROM audit_tx")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("DELETE FROM audit_log")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM audit_log WHERE record_id = ?", (patient["id"],))
        raw.rollback()
    finally:
        raw.close()
    assert store.counts()["audit_log"] == n
    assert {r["user"] for r in store.audit_entries()} == {"tester"}


def test_audit_log_refuses_insert_or_replace(store: Store, patient: dict[str, Any]) -> None:
    entry = store.audit_entries("patients", patient["id"])[0]
    raw = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            raw.execute(
                "INSERT OR REPLACE INTO audit_log(n, tx, table_name, record_id, field) "
                "VALUES (?, 1, 'patients', ?, '*')",
                (entry["id"], patient["id"]),
            )
            raw.commit()
    finally:
        raw.close()


# ---------------------------------------------------------------- rules through the Store
def test_second_open_procedure_for_same_patient_refused(
    store: Store, patient: dict[str, Any], open_procedure: str
) -> None:
    n = store.counts()
    with pytest.raises(Conflict, match="already has a procedure in progress"):
        store.start_procedure(patient["id"], VALID_SETUP)
    assert store.counts() == n


def test_second_open_procedure_from_another_connection_refused(
    store: Store, db_path: Path, patient: dict[str, Any], open_procedure: str
) -> None:
    with Store.open(db_path, "other", clock=Clock(monotonic=False)) as other:
        with pytest.raises(Conflict):
            other.start_procedure(patient["id"], VALID_SETUP)
        # the partial unique index refuses it even past the Store's own check
        with pytest.raises(sqlite3.IntegrityError):
            other.conn.execute(
                "INSERT INTO procedures(id, patient_id, status, started_at, created_at, "
                "updated_at) VALUES ('x', ?, 'open', 'a', 'a', 'a')",
                (patient["id"],),
            )


def test_new_procedure_after_the_end_is_allowed(store: Store, at: Any) -> None:
    patient, _ = bedside_flow(store, at)
    at(60 * 24 * 120)
    proc2 = store.start_procedure(patient["id"], {**VALID_SETUP, "regimen": "std_maintenance"})
    assert store.load_procedure(proc2).row["status"] == "open"


def test_study_code_unique_case_insensitive(store: Store, patient: dict[str, Any]) -> None:
    with pytest.raises(Conflict, match="SMA-001 already exists"):
        store.create_patient({"study_code": "sma-001"})
    assert store.find_patient("sma-001")["id"] == patient["id"]
    assert store.find_patient(" Sma-001 ")["id"] == patient["id"]
    assert store.find_patient("SMA-002") is None
    assert [p["id"] for p in store.search_patients("sma")] == [patient["id"]]
    assert store.search_patients("%") == []
    assert store.search_patients("_") == []


def test_ids_are_ulids(store: Store, at: Any) -> None:
    bedside_flow(store, at)
    c = store.conn
    ids = []
    for table in CLINICAL_TABLES:
        ids_here = [r[0] for r in c.execute(f"SELECT id FROM {table}")]
        assert len(set(ids_here)) == len(ids_here), table
        ids += ids_here
    assert len(ids) > 15  # (the audit log's rows are numbered since schema 5)
    # an attempt row shares its id with the "attempt" event that made it (by design)
    attempt_events = {r[0] for r in c.execute("SELECT id FROM events WHERE kind = 'attempt'")}
    assert {r[0] for r in c.execute("SELECT id FROM attempts")} == attempt_events
    for i in ids:
        assert len(i) == 26
        assert ULID_RE.match(i), i
    # no autoincrement integers anywhere
    assert (
        c.execute("SELECT count(*) FROM sqlite_master WHERE name='sqlite_sequence'").fetchone()[0]
        == 0
    )


def test_previous_setup_prefills(at: Any, store: Store, patient: dict[str, Any]) -> None:
    assert store.previous_setup(patient["id"]) == {}
    proc = store.start_procedure(patient["id"], {**VALID_SETUP, "sedation_agent": None})
    store.end_procedure(proc, {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"})
    prev = store.previous_setup(patient["id"])
    assert set(prev) <= set(fields.CARRY_OVER)
    assert prev == {
        "operator": "Dr Rossi",
        "guidance": "us_realtime",
        "approach": "paramedian",
        "level_intended": "L3-L4",
        "position": "lateral_left",
        "needle_tip": "pencil_point",
        "needle_gauge": 22,
        "needle_length_mm": 90,
        "cobb_angle": 45.5,
        "axial_rotation": "moderate",
        "hardware": "posterior_fusion",
        "bmi": 18.5,
        "sedation": "local",
    }
    # the pre-fill is itself a valid set-up once the regimen is chosen
    at(60)
    proc2 = store.start_procedure(patient["id"], {**prev, "regimen": "std_maintenance"})
    assert store.load_procedure(proc2).row["needle_gauge"] == 22
    # the most recent procedure wins
    store.update_procedure(proc2, {"needle_gauge": "25"})
    assert store.previous_setup(patient["id"])["needle_gauge"] == 25


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"needle_gauge": "40"}, "needle_gauge"),
        ({"cobb_angle": "-5"}, "cobb_angle"),
        ({"bmi": "abc"}, "bmi"),
        ({"regimen": "50mg"}, "regimen"),
        ({"operator": ""}, "operator"),
        ({"sedation": None}, "sedation"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_setup_writes_nothing(
    store: Store, patient: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    before = store.counts()
    version = store.data_version()
    with pytest.raises(fields.ValidationError) as info:
        store.start_procedure(patient["id"], {**VALID_SETUP, **change})
    assert info.value.field == field
    assert store.counts() == before
    assert store.data_version() == version
    assert store.open_procedures() == []


def test_missing_required_setup_names_them(store: Store, patient: dict[str, Any]) -> None:
    with pytest.raises(fields.ValidationError, match="Required: Operator, Regimen / dose"):
        store.start_procedure(patient["id"], {"guidance": "landmark"})


def test_bad_patient_values_write_nothing(store: Store) -> None:
    for values in ({"study_code": "bad code"}, {"study_code": "A1", "sma_type": "5"}, {}):
        with pytest.raises(fields.ValidationError):
            store.create_patient(values)
    assert store.counts()["patients"] == 0
    assert store.counts()["audit_log"] == 0


def test_start_for_unknown_patient(store: Store) -> None:
    with pytest.raises(NotFound):
        store.start_procedure("01ARZ3NDEKTSV4RRFFQ69G5FAV", VALID_SETUP)
    assert store.counts()["procedures"] == 0


def test_out_of_order_and_ended_refused_through_store(
    at: Any, store: Store, open_procedure: str
) -> None:
    proc = open_procedure
    before = store.counts()
    with pytest.raises(RuleError, match="CSF cannot come before"):
        store.record(proc, "csf")
    with pytest.raises(RuleError, match="Cannot end as delivered: missing"):
        store.end_procedure(proc, {"drug_delivered": "yes"})
    assert store.counts() == before
    with pytest.raises(fields.ValidationError, match="Say why"):
        store.end_procedure(proc, {"drug_delivered": "no"})
    with pytest.raises(Conflict, match="after the procedure has ended"):
        store.set_score(proc, 4)
    store.end_procedure(proc, {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"})
    after_end = store.counts()
    with pytest.raises(RuleError, match="has ended"):
        store.record(proc, "attempt")
    with pytest.raises(RuleError, match="undo is no longer possible"):
        store.undo(proc)
    with pytest.raises(fields.ValidationError):
        store.set_score(proc, "7")
    assert store.counts() == after_end
    with pytest.raises(NotFound):
        store.record("nope", "attempt")


def test_wall_clock_stepping_back_keeps_the_timeline_in_order(
    at: Any, store: Store, open_procedure: str
) -> None:
    proc = open_procedure
    at(5)
    store.record(proc, "attempt")
    at(-30)  # the clock was stepped back half an hour
    store.record(proc, "redirect")
    store.record(proc, "csf")
    view = store.load_procedure(proc)
    times = [e.at for e in view.events]
    assert times == sorted(times)
    assert view.state.milestones["csf"] == T0.add(minutes=5)


def test_timeline_text_is_validated_like_every_text_field(
    store: Store, open_procedure: str
) -> None:
    proc = open_procedure
    before = store.counts()
    with pytest.raises(fields.ValidationError, match="too long"):
        store.record(proc, "note", "x" * 2001)
    with pytest.raises(fields.ValidationError, match="too long"):
        store.record(proc, "sedation", "iv_sedation|" + "p" * 201)
    with pytest.raises(RuleError, match="A note needs some text"):
        store.record(proc, "note", "\x00\x1b")
    assert store.counts() == before
    view = store.record(proc, "note", "\x1b[2Jpatient\tcalm\x07")
    assert view.state.notes[-1][1] == "[2Jpatient\tcalm"
    view = store.record(proc, "sedation", "general|\x00propofol\x1b")
    assert (view.state.sedation, view.state.sedation_agent) == ("general", "propofol")
    view = store.record(proc, "sedation", "none|\x00")
    assert (view.state.sedation, view.state.sedation_agent) == ("none", None)
    stored = [r[0] for r in store.conn.execute("SELECT value FROM events ORDER BY seq")]
    assert stored[-3:] == ["[2Jpatient\tcalm", "general|propofol", "none"]
