"""Demo data: deterministic, consistent with the Store's own derivations, quick."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from ulid import ULID

from sma_log import demo
from sma_log.domain import fields, schedule, timeline
from sma_log.domain.clock import Clock, from_text, to_text
from sma_log.storage.auditlog import audit_text as auditlog_text
from sma_log.storage.store import Store

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
CACHE = frozenset(timeline.derived_columns(timeline.replay([], None, None), to_text))
TABLES = (
    "patients",
    "procedures",
    "attempts",
    "events",
    "followups",
    "contact_attempts",
    "audit_tx",
    "audit_log",
)


def _readonly(path: Path) -> sqlite3.Connection:
    # immutable: no -wal/-shm files appear beside the file (the tests look at the folder)
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def dump(path: Path, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple]]:
    conn = _readonly(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        conn.close()


def rows(path: Path, sql: str, params: tuple = ()) -> list[dict]:
    conn = _readonly(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    demo.write_demo(path, procedures=120, seed=7, now=NOW)
    return path


def test_same_seed_same_contents_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    demo.write_demo(a, procedures=80, seed=3, now=NOW)
    demo.write_demo(b, procedures=80, seed=3, now=NOW)
    demo.write_demo(c, procedures=80, seed=4, now=NOW)
    assert dump(a) == dump(b)
    assert dump(a)["procedures"] != dump(c)["procedures"]


def test_counts_returned_match_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    result = demo.write_demo(path, procedures=50, seed=2, now=NOW)
    with Store.open(path, readonly=True, create=False) as store:
        counts = store.counts()
    for table, n in counts.items():
        assert result[table] == n
    assert result["procedures"] == 50
    assert result["open"] == 1


def test_file_is_private_wal_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = demo.demo_database(tmp_path)
    assert path.parent == tmp_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    assert json.loads(meta["demo"])["seed"] == 1


def test_ids_are_ulids_at_the_records_time(demo_file: Path) -> None:
    for table, column in (
        ("patients", "created_at"),
        ("procedures", "started_at"),
        ("attempts", "at"),
        ("events", "at"),
        ("followups", "created_at"),
        ("contact_attempts", "at"),
    ):
        for r in rows(demo_file, f"SELECT id, {column} AS t FROM {table}"):
            ulid = ULID.from_str(r["id"])
            assert str(ulid) == r["id"]
            at = from_text(r["t"])
            assert ulid.milliseconds == at.int_timestamp * 1000 + at.microsecond // 1000


def test_realistic_shape(demo_file: Path) -> None:
    procs = rows(demo_file, "SELECT * FROM procedures")
    patients = rows(demo_file, "SELECT * FROM patients")
    now = pendulum.instance(NOW)
    assert all(p["study_code"].startswith("DEMO-") for p in patients)
    assert {p["sma_type"] for p in patients} <= {1, 2, 3, 4}
    for p in patients:
        fields.validate(fields.PATIENT_FIELDS, {k: p[k] for k in fields.PATIENT_FIELDS})
    opened = [p for p in procs if p["status"] == "open"]
    assert len(opened) == 1
    started = from_text(opened[0]["started_at"])
    assert now - timedelta(minutes=10) <= started <= now - timedelta(seconds=30)
    assert opened[0]["ended_at"] is None and opened[0]["drug_delivered"] is None
    ended = [p for p in procs if p["status"] == "ended"]
    assert all(from_text(p["ended_at"]) < now for p in ended)
    pending = [p for p in ended if p["satisfaction_5min"] is None]
    assert pending, "some ended procedures must still await their 5-minute score"
    assert {p["attempts_n"] for p in procs} <= set(range(0, 7))
    assert all(1.5 <= p["procedure_min"] <= 45 for p in ended)
    assert all(0 <= p["cobb_angle"] <= 110 for p in procs)
    scores = [p["satisfaction_5min"] for p in ended if p["satisfaction_5min"]]
    assert sum(s >= 4 for s in scores) / len(scores) > 0.8
    guidance = {p["guidance"] for p in procs}
    assert {"us_marking", "us_realtime"} <= guidance
    failed = [p for p in ended if p["drug_delivered"] == 0]
    for p in failed:
        assert p["failure_reason"] and p["fallback"]
    for p in procs:
        fields.validate(fields.SETUP_FIELDS, {k: p[k] for k in fields.SETUP_FIELDS})


def test_the_audit_log_is_the_one_the_app_writes(demo_file: Path) -> None:
    """Every record inserted once, as the app inserts it, then changed field by field
    (issue 13: the demo's size is a real file's); decoded, the log replays back."""
    # (attempts: a cache of the events, not audited)
    clinical = ("patients", "procedures", "events", "followups", "contact_attempts")
    with Store.open(demo_file, "reader", readonly=True) as store:
        entries = store.audit_entries(limit=-1)
    assert {e["user"] for e in entries} == {"demo"}
    records = {t: {r["id"]: r for r in rows(demo_file, f"SELECT * FROM {t}")} for t in clinical}
    by_record: dict[tuple[str, str], list[dict]] = {}
    for e in entries:
        by_record.setdefault((e["table_name"], e["record_id"]), []).append(e)
    assert set(by_record) == {(t, rid) for t in clinical for rid in records[t]}
    procs = records["procedures"]
    updates = 0
    for (table, rid), log in by_record.items():
        assert log[0]["action"] == "insert" and all(e["action"] == "update" for e in log[1:])
        assert [e["at"] for e in log] == sorted(e["at"] for e in log)
        inserted = json.loads(log[0]["new_value"])
        # walked back from the row, the values are the insert's
        row = {k: auditlog_text(v) for k, v in records[table][rid].items()}
        for e in reversed(log[1:]):
            assert row[e["field"]] == e["new_value"]
            row[e["field"]] = e["old_value"]
            updates += 1
        if table == "procedures":  # as start_procedure writes it
            assert inserted["status"] == "open" and inserted["csf_removed_ml"] == 5.0
            assert inserted["attempts_n"] == 0 and inserted["satisfaction_5min"] is None
            assert "ended_at" not in inserted and inserted["drug_delivered"] is None
            if procs[rid]["status"] == "ended":
                assert {"status", "ended_at", "drug_delivered"} <= {e["field"] for e in log}
        if table == "followups":  # as _schedule_followups writes it
            assert inserted["state"] == "open" and inserted["contact_attempts_n"] == 0
            assert inserted["completed_at"] is None and inserted["satisfaction"] is None
        for k, v in inserted.items():
            if k != "updated_at" and k in row and not (table == "procedures" and k in CACHE):
                assert auditlog_text(v) == row[k] or float(v) == float(row[k]), (table, k)
    assert updates > 5 * len(procs)  # the end, scores, attempts, calls, completions


def test_followups_as_the_store_schedules_them_and_a_queue_around_now(demo_file: Path) -> None:
    procs = {p["id"]: p for p in rows(demo_file, "SELECT * FROM procedures")}
    fus = rows(demo_file, "SELECT * FROM followups")
    now = pendulum.instance(NOW)
    ended = [p for p in procs.values() if p["status"] == "ended"]
    assert len(fus) == 2 * len(ended)
    assert {(f["procedure_id"], f["kind"]) for f in fus} == {
        (p["id"], k) for p in ended for k in ("score_5min", "day3")
    }
    calls = rows(demo_file, "SELECT * FROM contact_attempts")
    per_followup: dict[str, list[dict]] = {}
    for c in calls:
        per_followup.setdefault(c["followup_id"], []).append(c)
        assert c["outcome"] == "no_answer" and from_text(c["at"]) <= now
    for f in fus:
        p = procs[f["procedure_id"]]
        end = from_text(p["ended_at"])
        assert from_text(f["due_at"]) == schedule.due_at(f["kind"], end)
        assert f["created_at"] == p["ended_at"]
        assert f["state"] in ("open", "done", "unreachable", "declined")
        mine = sorted(per_followup.get(f["id"], []), key=lambda c: c["at"])
        assert f["contact_attempts_n"] == len(mine)
        assert f["last_contact_at"] == (mine[-1]["at"] if mine else None)
        if f["state"] == "open":
            assert f["completed_at"] is None
        else:
            done_at = from_text(f["completed_at"])
            assert end < done_at <= now
            assert all(from_text(c["at"]) <= done_at for c in mine)
            window = schedule.DEFAULT_WINDOWS[f["kind"]]
            missed = schedule.status(f["kind"], from_text(f["due_at"]), done_at, window)
            assert f["late"] == int(f["state"] == "done" and missed == "missed")
        if f["kind"] == "score_5min":
            assert (f["state"] == "done") == (p["satisfaction_5min"] is not None)
            assert f["satisfaction"] == p["satisfaction_5min"]
            assert not mine
        if f["state"] == "done" and f["kind"] == "day3":
            answers = {k: f[k] for k in fields.FOLLOWUP_FIELDS if f[k] is not None}
            assert schedule.clean_followup(answers)[1] == {}
        if f["state"] in ("unreachable", "declined"):
            assert f["closed_reason"]
    day3 = [f for f in fus if f["kind"] == "day3" and f["state"] == "done"]
    assert sum(f["satisfaction"] >= 4 for f in day3) / len(day3) > 0.75
    pdph = [f for f in day3 if f["pdph"]]
    assert pdph and all(f["pdph_severity"] is not None for f in pdph)
    assert all(f["pdph_onset_hours"] is None for f in day3 if not f["pdph"])
    assert any(f["back_pain_nrs"] for f in day3)
    assert any(f["late"] for f in day3)
    assert {"unreachable", "declined"} <= {f["state"] for f in fus}
    with Store.open(demo_file, readonly=True, create=False) as store:
        statuses = {i.status for i in store.followup_queue(now=now)}
    assert {"upcoming", "missed"} <= statuses
    assert statuses & {"due", "overdue"}


def test_every_event_is_one_the_timeline_rules_accept(demo_file: Path) -> None:
    with Store.open(demo_file, readonly=True, create=False) as store:
        for (pid,) in store.conn.execute("SELECT id FROM procedures").fetchall():
            view = store.load_procedure(pid)
            events = view.events
            live = [e for e in events if not e.voided]
            for i, ev in enumerate(events):
                if ev.kind == "start":
                    assert i == 0
                    continue
                state = timeline.replay(
                    events[:i], view.row["level_intended"], view.row["approach"]
                )
                if ev.kind == "end":
                    timeline.check_end(state, ev.value == "delivered")
                else:
                    timeline.check(state, ev.kind, ev.value)
            assert [e.at for e in events] == sorted(e.at for e in events)
            assert live[-1].kind == "end" or view.row["status"] == "open"


def test_derived_columns_equal_what_the_store_computes(demo_file: Path) -> None:
    """Run the Store's own _sync_derived over every procedure: it must change nothing."""
    before = dump(demo_file, ("procedures", "attempts"))
    store = Store.open(demo_file, "test")
    try:
        store.conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [r[0] for r in store.conn.execute("SELECT id FROM procedures")]
            for pid in ids:
                row, events, _ = store._for_write(pid)
                store._sync_derived(row, events)
            after = {
                t: store.conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
                for t in ("procedures", "attempts")
            }
        finally:
            store.conn.execute("ROLLBACK")
    finally:
        store.close()
    assert after == before


class SteppedClock(Clock):
    """A clock that says whatever the test sets (no sleeping, no real time)."""

    def __init__(self) -> None:
        super().__init__(monotonic=False)
        self.at = pendulum.instance(NOW)

    def now(self) -> pendulum.DateTime:
        return self.at


SETUP = tuple(fields.SETUP_FIELDS)
COMPARED = tuple(
    c
    for c in demo.PROCEDURE_COLUMNS
    if c not in ("id", "patient_id", "created_at", "updated_at", "anchor_boot_id")
    and c != "anchor_boottime"
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replaying_a_demo_through_the_store_api_gives_the_same_rows(
    tmp_path: Path, seed: int
) -> None:
    """Drive the real Store (start, record, undo, end, score) with the demo's timeline."""
    source = tmp_path / "demo.db"
    demo.write_demo(source, procedures=30, seed=seed, now=NOW)
    clock = SteppedClock()
    patients = rows(source, "SELECT * FROM patients ORDER BY created_at")
    procs = rows(source, "SELECT * FROM procedures ORDER BY started_at")
    with Store.open(tmp_path / "replayed.db", "demo", clock=clock) as store:
        new_patient: dict[str, str] = {}
        for p in patients:
            clock.at = from_text(p["created_at"])
            made = store.create_patient({k: p[k] for k in fields.PATIENT_FIELDS})
            new_patient[p["id"]] = made["id"]
        pairs = []
        for p in procs:
            events = rows(
                source, "SELECT * FROM events WHERE procedure_id = ? ORDER BY seq", (p["id"],)
            )
            first = events[0]
            assert first["kind"] == "start"
            clock.at = from_text(first["at"])
            setup = {k: p[k] for k in SETUP}
            # The sedation confirmed at the start ("code|agent"); the row has the deepest.
            code, _, agent = first["value"].partition("|")
            setup["sedation"], setup["sedation_agent"] = code, agent or None
            pid = store.start_procedure(new_patient[p["patient_id"]], setup)
            for ev in events[1:]:
                clock.at = from_text(ev["at"])
                if ev["kind"] == "end":
                    outcome = {
                        k: p[k]
                        for k in ("csf_removed_ml", "csf_appearance", "failure_reason", "fallback")
                    }
                    outcome["drug_delivered"] = bool(p["drug_delivered"])
                    outcome["note"] = p["note"]
                    store.end_procedure(pid, outcome)
                    continue
                store.record(pid, ev["kind"], ev["value"])
                if ev["voided_at"]:
                    clock.at = from_text(ev["voided_at"])
                    store.undo(pid)
            if p["satisfaction_5min"] is not None:
                clock.at = from_text(p["updated_at"])
                store.set_score(pid, p["satisfaction_5min"])
            pairs.append((p["id"], pid))
        for old, new in pairs:
            want = rows(source, "SELECT * FROM procedures WHERE id = ?", (old,))[0]
            got = store.one("SELECT * FROM procedures WHERE id = ?", (new,))
            assert got is not None
            assert {c: got[c] for c in COMPARED} == {c: want[c] for c in COMPARED}, old
            cols = "number, at, level, approach, redirections, bone_contact, paraesthesia, "
            cols += "blood, csf_obtained, voided"
            sql = f"SELECT {cols} FROM attempts WHERE procedure_id = ? ORDER BY at"
            assert store.query(sql, (new,)) == rows(source, sql, (old,))
            sql = "SELECT seq, kind, at, value, voided_at, recorded_by FROM events "
            sql += "WHERE procedure_id = ? ORDER BY seq"
            assert store.query(sql, (new,)) == rows(source, sql, (old,))

        # The follow-ups: what the nurses did, replayed in time order through the Store.
        new_proc = dict(pairs)
        theirs = rows(source, "SELECT * FROM followups")
        mine = {
            (r["procedure_id"], r["kind"]): r["id"]
            for r in store.query("SELECT id, procedure_id, kind FROM followups")
        }
        assert len(mine) == len(theirs)
        new_fu = {f["id"]: mine[(new_proc[f["procedure_id"]], f["kind"])] for f in theirs}
        actions: list[tuple[str, int, str, Any]] = []
        for c in rows(source, "SELECT * FROM contact_attempts"):
            actions.append((c["at"], 0, "call", c))
        for f in theirs:
            if f["kind"] == "day3" and f["state"] != "open":
                actions.append((f["completed_at"], 1, f["state"], f))
        for at, _, what, rec in sorted(actions, key=lambda a: (a[0], a[1])):
            clock.at = from_text(at)
            if what == "call":
                store.record_no_answer(new_fu[rec["followup_id"]], rec["note"])
            elif what == "done":
                answers = {k: rec[k] for k in fields.FOLLOWUP_FIELDS if rec[k] is not None}
                for k, spec in fields.FOLLOWUP_FIELDS.items():
                    if spec.kind == "bool" and k in answers:
                        answers[k] = bool(answers[k])
                store.complete_followup(new_fu[rec["id"]], answers)
            else:
                store.close_followup(new_fu[rec["id"]], what, rec["closed_reason"])
        for f in theirs:
            got = store.one("SELECT * FROM followups WHERE id = ?", (new_fu[f["id"]],))
            assert got is not None
            skip = ("id", "procedure_id")
            assert {k: v for k, v in got.items() if k not in skip} == {
                k: v for k, v in f.items() if k not in skip
            }, f["id"]
        sql = "SELECT at, outcome, by_user, note FROM contact_attempts ORDER BY at"
        assert store.query(sql) == rows(source, sql)


def test_a_hundred_procedures_are_quick(tmp_path: Path) -> None:
    began = time.perf_counter()
    result = demo.write_demo(tmp_path / "q.db", procedures=100, seed=5)
    assert time.perf_counter() - began < 5
    assert result["procedures"] == 100


def test_one_procedure_is_the_open_one(tmp_path: Path) -> None:
    demo.write_demo(tmp_path / "one.db", procedures=1, seed=1, now=NOW)
    procs = rows(tmp_path / "one.db", "SELECT status FROM procedures")
    assert procs == [{"status": "open"}]
    with pytest.raises(ValueError):
        demo.write_demo(tmp_path / "zero.db", procedures=0)


def test_existing_path_refused_and_force_only_replaces_a_demo(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    demo.write_demo(path, procedures=10, seed=1, now=NOW)
    before = path.read_bytes()
    with pytest.raises(demo.DemoRefused, match="already exists"):
        demo.write_demo(path, procedures=10, seed=2, now=NOW)
    assert path.read_bytes() == before
    demo.write_demo(path, procedures=12, seed=2, now=NOW, force=True)
    assert len(rows(path, "SELECT id FROM procedures")) == 12
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # A real (non-demo) sma-log database is never replaced, even with force.
    real = tmp_path / "real.db"
    Store.open(real, "nurse").close()
    real_bytes = real.read_bytes()
    with pytest.raises(demo.DemoRefused, match="not an sma-log demo"):
        demo.write_demo(real, procedures=5, force=True)
    assert real.read_bytes() == real_bytes

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    with pytest.raises(demo.DemoRefused):
        demo.write_demo(text, procedures=5, force=True)
    assert text.read_text() == "not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "real.db", "x.db"]
