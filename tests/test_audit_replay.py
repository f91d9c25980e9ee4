"""The audit log still tells every past value (issue 13 item 5, schema 5).

Schema 5 stores no new value and no JSON copy of an inserted row: they are derived
(:mod:`sma_log.storage.auditlog`). Here the real Store goes through every write path
(``tests/audit_scenario.py``: start, keys, undo, end, cancel, corrections, scores,
no-answer calls and their undo, close, reopen, complete, identifiers, imports with
``prefer_incoming``), the tables are read after every action, and the decoded audit log
is replayed backward from the final tables: it must give back every one of those
snapshots, and each entry's new value must be the value the action left.

Left out of the comparison, with their reason:

* ``updated_at``: never audited (the time of the last change, in the log as the
  entries' own instants);
* a procedure's timeline cache (:func:`sma_log.domain.timeline.derived_columns`):
  rewritten with every event without an audit row; checked instead by replaying the
  events as the log gives them back (``timeline.replay``);
* the ``attempts`` table (``auditlog.CACHE_TABLES``): every column derived from the
  events, not audited since schema 5; rebuilt the same way from the events and checked.

The migration test converts ``tests/fixtures/schema4.db`` (written by the schema-4
code running the same scenario) and checks that the decoded log equals the stored one
entry by entry, and that ``revision()`` (ICS SEQUENCE/DTSTAMP) does not move.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import audit_scenario
import pytest

from sma_log.domain import records, timeline
from sma_log.domain.clock import Clock, from_text, to_text
from sma_log.storage import auditlog
from sma_log.storage.schema import CLINICAL_TABLES, SCHEMA_VERSION
from sma_log.storage.store import Store

FIXTURE4 = Path(__file__).parent / "fixtures" / "schema4.db"
TIMELINE_CACHE = frozenset(timeline.derived_columns(timeline.replay([], None, None), to_text))

Tables = dict[str, dict[str, dict[str, str | None]]]


def _text(row: dict[str, Any]) -> dict[str, str | None]:
    return {k: auditlog.audit_text(v) for k, v in row.items()}


def tables_now(conn: sqlite3.Connection) -> Tables:
    out: Tables = {}
    for table in CLINICAL_TABLES:
        cur = conn.execute(f"SELECT * FROM {table}")
        cols = [c[0] for c in cur.description]
        out[table] = {r[0]: _text(dict(zip(cols, r, strict=True))) for r in cur.fetchall()}
    return out


def _open(path: Path, user: str) -> Store:
    return Store.open(path, user, clock=Clock(monotonic=False))


def _replay(evs: list[dict[str, str | None]], proc: dict[str, str | None], until: str | None):
    """The timeline of ``evs`` as it stood at ``until`` (None: now)."""
    tl = [
        timeline.Event(
            e["id"],
            e["kind"],
            from_text(e["at"]),
            e["value"],
            e["attempt_id"],
            e["voided_at"] is not None and (until is None or e["voided_at"] < until),
        )
        for e in evs
        if until is None or e["at"] <= until
    ]
    return timeline.replay(tl, proc["level_intended"], proc["approach"])


def _derived(
    events: dict[str, dict[str, str | None]], proc: dict[str, str | None]
) -> tuple[dict, dict]:
    """The procedure's timeline cache and its attempts rows, from its events (a voided
    attempt keeps the columns it had when it was undone, as Store._sync_derived does)."""
    evs = sorted(
        (e for e in events.values() if e["procedure_id"] == proc["id"]),
        key=lambda e: int(e["seq"] or 0),
    )
    state = _replay(evs, proc, None)
    attempts = {}
    for att in [*state.attempts, *state.voided_attempts]:
        if att.voided:
            undone = next(e["voided_at"] for e in evs if e["id"] == att.id)
            before = _replay(evs, proc, undone)
            att = next(a for a in before.attempts if a.id == att.id)
            values = {**timeline.attempt_columns(att), "voided": 1}
        else:
            values = timeline.attempt_columns(att)
        row = {"id": att.id, "procedure_id": proc["id"], "at": to_text(att.at), **values}
        attempts[att.id] = _text(row)
    return _text(timeline.derived_columns(state, to_text)), attempts


def test_the_columns_written_unaudited_are_the_ones_the_log_keeps() -> None:
    assert auditlog.UNAUDITED["procedures"] >= TIMELINE_CACHE
    assert auditlog.UNAUDITED["procedures"] >= set(records.DERIVED["procedures"])


def test_replaying_the_log_backward_gives_back_every_past_state(tmp_path: Path) -> None:
    store = _open(tmp_path / "a.db", "tester")
    snaps: list[tuple[int, str, Tables]] = []

    def snap() -> None:
        import pendulum

        pos = store.conn.execute("SELECT coalesce(max(n), 0) FROM audit_log").fetchone()[0]
        snaps.append((pos, to_text(pendulum.now("UTC")), tables_now(store.conn)))

    audit_scenario.drive(store, _open, tmp_path, snap)
    entries = store.audit_entries(limit=-1)
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    state = tables_now(store.conn)
    kinds = {e["table_name"] for e in entries}
    assert kinds >= {*CLINICAL_TABLES, "import"} - auditlog.CACHE_TABLES
    assert not kinds & auditlog.CACHE_TABLES
    checked = {"update": 0, "insert": 0, "snapshots": 0, "derived": 0}
    i = len(entries)
    previous = 0
    for k in range(len(snaps) - 1, -1, -1):
        pos, at, snapshot = snaps[k]
        start = snaps[k - 1][0] if k else 0
        mine = [e for e in entries if start < e["id"] <= pos]
        # one action: one instant (the travel clock's), one user
        assert {e["at"] for e in mine} <= {at}, (k, {e["at"] for e in mine}, at)
        assert {e["user"] for e in mine} <= {"tester"}
        # state is the final tables with every entry after ``pos`` undone: compare
        while i > 0 and entries[i - 1]["id"] > pos:
            i -= 1
            _undo(entries[i], state, checked)
        _compare(state, snapshot, k)
        checked["snapshots"] += 1
        for pid, proc in snapshot["procedures"].items():
            # a correction (update_procedure) of a cached column is audited: its value
            # is the log's until the next event rewrites it
            corrected = {
                e["field"]
                for e in entries[:i]
                if e["table_name"] == "procedures"
                and e["record_id"] == pid
                and e["action"] == "update"
                and e["field"] in TIMELINE_CACHE
            }
            derived, attempts = _derived(state["events"], proc)
            assert attempts == {
                aid: a for aid, a in snapshot["attempts"].items() if a["procedure_id"] == pid
            }, (k, pid)
            for col in TIMELINE_CACHE:
                want = state["procedures"][pid][col] if col in corrected else derived[col]
                assert proc[col] == want, (k, col, proc[col], want)
            checked["derived"] += 1
        previous = pos
    assert previous == snaps[0][0]
    while i > 0:
        i -= 1
        _undo(entries[i], state, checked)
    left = {t: rows for t, rows in state.items() if rows and t not in auditlog.CACHE_TABLES}
    assert not left, "rows the log does not account for"
    assert checked["update"] > 150 and checked["insert"] > 75 and checked["snapshots"] > 80


def _undo(e: dict[str, Any], state: Tables, checked: dict[str, int]) -> None:
    table, rid = e["table_name"], e["record_id"]
    if e["action"] == "import":
        assert json.loads(e["new_value"])  # the run's note, kept
        return
    row = state[table][rid]
    if e["action"] == "update":
        field = e["field"]
        if not (table == "procedures" and field in TIMELINE_CACHE):
            assert row[field] == e["new_value"], (table, field, row[field], e["new_value"])
        row[field] = e["old_value"]
        checked["update"] += 1
        return
    assert e["action"] == "insert"
    inserted = json.loads(e["new_value"])
    for col, value in inserted.items():
        if col == "updated_at" or (table == "procedures" and col in TIMELINE_CACHE):
            continue
        assert _same(auditlog.audit_text(value), row[col]), (table, col, value, row[col])
    del state[table][rid]
    checked["insert"] += 1


def _same(a: str | None, b: str | None) -> bool:
    """The same text, or the same number (12 given, 12.0 stored in a REAL column)."""
    if a == b:
        return True
    try:
        return a is not None and b is not None and float(a) == float(b)
    except ValueError:
        return False


def _compare(state: Tables, snapshot: Tables, k: int) -> None:
    for table, rows in snapshot.items():
        if table in auditlog.CACHE_TABLES:
            continue  # compared with the events replayed (_derived)
        assert set(state[table]) == set(rows), (k, table)
        for rid, row in rows.items():
            for col, value in row.items():
                if col == "updated_at" or (table == "procedures" and col in TIMELINE_CACHE):
                    continue
                assert state[table][rid][col] == value, (
                    k,
                    table,
                    col,
                    value,
                    state[table][rid][col],
                )


# ---------------------------------------------------------------------- migration


def _v4_rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
        return [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY id")]
    finally:
        conn.close()


def _v4_revision(path: Path, records_: list[tuple[str, str]]) -> tuple[int, str | None]:
    conn = sqlite3.connect(path)
    try:
        where = " OR ".join("(table_name = ? AND record_id = ?)" for _ in records_)
        n, last = conn.execute(
            f"SELECT count(*) FILTER (WHERE action != 'insert'), max(at) FROM audit_log "
            f"WHERE {where}",
            [v for pair in records_ for v in pair],
        ).fetchone()
        return int(n), last
    finally:
        conn.close()


def _columns(path: Path, table: str) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
    finally:
        conn.close()


@pytest.fixture
def migrated(tmp_path: Path) -> tuple[Path, list[dict[str, Any]], Path]:
    old = tmp_path / "v4.db"
    shutil.copyfile(FIXTURE4, old)
    before = _v4_rows(old)
    path = tmp_path / "a.db"
    shutil.copyfile(FIXTURE4, path)
    return path, before, old


def test_migration_5_keeps_every_entry_of_the_log(
    migrated: tuple[Path, list[dict[str, Any]], Path],
) -> None:
    path, before, _ = migrated
    assert len(before) > 250
    size = path.stat().st_size
    with _open(path, "tester") as store:
        assert store.user_version() == SCHEMA_VERSION
        assert store.backup is not None and store.backup.exists()
        after = store.audit_entries(limit=-1)
        kept = store.conn.execute("SELECT count(kept) FROM audit_log").fetchone()[0]
        added = {t: set(store.columns(t)) - _columns(FIXTURE4, t) for t in CLINICAL_TABLES}
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        new = dict(new)
        if new["action"] == "insert" and added.get(new["table_name"]):
            # A column a later migration added (schema 6: the procedure's drug times)
            # did not exist when the row was inserted: the decoded insert shows it as
            # null, what the migration gave the row; anything else must be as it was.
            row = json.loads(new["new_value"])
            assert all(row.pop(c) is None for c in added[new["table_name"]] if c in row)
            new["new_value"] = json.dumps(row, sort_keys=True)
        assert {k: v for k, v in new.items() if k != "id"} == {
            k: v for k, v in old.items() if k != "id"
        }
    # the derivation does the work: a residual only where it must
    assert kept < len(before) / 4
    assert path.stat().st_size < size  # compacted after the migration


def test_migration_5_keeps_every_revision(
    migrated: tuple[Path, list[dict[str, Any]], Path],
) -> None:
    path, before, old = migrated
    wanted = sorted({(r["table_name"], r["record_id"]) for r in before})
    groups = [[w] for w in wanted] + [wanted[:7], wanted[-5:]]
    expected = [_v4_revision(old, g) for g in groups]
    with _open(path, "tester") as store:
        assert [store.revision(g) for g in groups] == expected


def test_a_migrated_file_goes_on_being_audited(
    migrated: tuple[Path, list[dict[str, Any]], Path],
) -> None:
    path, before, _ = migrated
    with _open(path, "nurse") as store:
        fid = store.one(
            "SELECT id FROM followups WHERE state = 'done' AND kind = 'day3' "
            "AND back_pain_nrs = 2 LIMIT 1"
        )["id"]
        n0, _ = store.revision([("followups", fid)])
        store.complete_followup(fid, {**audit_scenario.DAY3, "back_pain_nrs": "7"})
        entries = store.audit_entries("followups", fid, limit=-1)
        old_n = sum(r["record_id"] == fid for r in before)
        new = entries[old_n:]
        assert new and {e["user"] for e in new} == {"nurse"} and len({e["at"] for e in new}) == 1
        assert [(e["old_value"], e["new_value"]) for e in new if e["field"] == "back_pain_nrs"] == [
            ("2", "7")
        ]
        n1, last = store.revision([("followups", fid)])
        assert n1 == n0 + len(new) and last == new[-1]["at"]
        assert [e["old_value"] for e in entries[:old_n]] == [
            r["old_value"] for r in before if r["record_id"] == fid
        ]
