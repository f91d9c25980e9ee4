"""Import and merge: idempotence, conflicts, laptops merged, refusals, the JSON round trip.

Round trip, precisely: ``write_json(A) -> import into a new, empty file B ->
write_json(B)`` gives the same document: parsed, the two are equal once
``exported_at`` is removed (and, for an ``identifiers=True`` document, the
``audit_log`` table, because B's audit log records the import, not A's history:
it holds exactly one ``insert`` row per imported record plus the import's own
``import`` row). A de-identified document (ids and times masked) is not imported:
it is refused with one line. One written before masking (exact instants, complete ids,
free text left out: ``tests/jsonlegacy.py``) still merges, and B's de-identified
export is then byte-identical to A's apart from its ``exported_at`` line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner
from jsonlegacy import legacy_deidentified
from test_jsondoc import SECRETS, full_story

from sma_log import demo
from sma_log.cli import main
from sma_log.domain.clock import Clock
from sma_log.export.jsondoc import write_json
from sma_log.importer import ImportRefused, Source, import_file
from sma_log.storage import auditlog
from sma_log.storage.schema import CLINICAL_TABLES
from sma_log.storage.store import Store

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
PATIENT = {"sma_type": "2", "birth_year": "2015", "sex": "female", "motor_status": "sitter"}


# ---------------------------------------------------------------- helpers
def opened(path: Path, user: str = "tester") -> Store:
    return Store.open(path, user, clock=Clock(monotonic=False))


def dump(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in CLINICAL_TABLES
        }
    finally:
        conn.close()


def audit_rows(path: Path) -> list[dict[str, Any]]:
    """The audit log's entries, decoded (schema 5 stores old values only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return auditlog.entries(conn)
    finally:
        conn.close()


def fingerprint(path: Path) -> dict[str, str | None]:
    """The bytes of a database file and its side files (None if absent)."""
    out: dict[str, str | None] = {}
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


def copy_db(src: Path, dst: Path) -> Path:
    """A consistent copy (SQLite's backup API: pragmas and header come along)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def ended_procedure(store: Store, patient_id: str, setup: dict[str, Any]) -> str:
    proc = store.start_procedure(patient_id, setup)
    for kind in ("attempt", "redirect", "attempt", "csf", "injection_start", "injection_end"):
        store.record(proc, kind)
    store.end_procedure(proc, {"drug_delivered": "yes", "csf_appearance": "clear"})
    return proc


@pytest.fixture
def travel() -> Iterator[Any]:
    """``travel(dt)``: the clock jumps to ``dt`` and runs on from there. Travelled back
    after the test, as is the travel of :func:`full_story` (which takes its scores and
    calls in their windows)."""

    def go(dt: pendulum.DateTime) -> None:
        pendulum.travel_to(dt, freeze=False)

    yield go
    pendulum.travel_back()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    monkeypatch.setenv("SMA_LOG_CONFIG", str(tmp_path / "settings.json"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return CliRunner()


def cli(runner: CliRunner, db: Path, *args: str, user: str = "merger") -> Any:
    return runner.invoke(main, ["--db", str(db), "--user", user, "import", *map(str, args)])


@pytest.fixture
def base(tmp_path: Path, setup_values: dict[str, Any]) -> Path:
    """The common start of two laptops: two patients, an ended procedure with follow-ups."""
    path = tmp_path / "base.db"
    with opened(path, "nurse") as store:
        p1 = store.create_patient({"study_code": "SMA-001", **PATIENT})
        store.create_patient({"study_code": "SMA-002", **PATIENT})
        ended_procedure(store, p1["id"], setup_values)
    return path


@pytest.fixture
def demo_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo.db"
    demo.write_demo(path, procedures=60, seed=5, now=NOW)
    return path


# ---------------------------------------------------------------- plain merges
def test_sqlite_into_a_new_file_copies_every_record_and_audits_each(
    demo_file: Path, tmp_path: Path
) -> None:
    target = tmp_path / "new.db"
    with opened(target, "merger") as store:
        result = import_file(store, demo_file)
    assert result.conflicts == []
    assert dump(target) == dump(demo_file)
    inserted = sum(c["inserted"] for c in result.counts.values())
    assert inserted == sum(len(rows) for rows in dump(demo_file).values())
    audit = audit_rows(target)
    # Provenance: the run's source row (its first batch) and its result row (its last),
    # one record id and one instant (changed with batched imports: a run stopped
    # part-way shows as a source without its result).
    runs = [a for a in audit if a["action"] == "import"]
    assert [a["field"] for a in runs] == ["source", "result"]
    assert {(a["table_name"], a["record_id"], a["at"]) for a in runs} == {
        ("import", runs[0]["record_id"], runs[0]["at"])
    }
    note = json.loads(runs[0]["new_value"])
    assert note["source"] == str(demo_file.resolve()) and note["kind"] == "sqlite"
    counts = json.loads(runs[1]["new_value"])["counts"]
    assert sum(c["inserted"] for c in counts.values()) == sum(
        c["inserted"] for c in result.counts.values()
    )
    rows = [a for a in audit if a["action"] == "insert"]
    # every record but the attempts (a cache of the events, not audited since schema 5)
    assert len(rows) == inserted - result.counts["attempts"]["inserted"]
    assert {(a["user"], a["field"], a["at"]) for a in rows} == {("merger", "*", runs[0]["at"])}
    # the insert audit row holds the record as inserted, as the Store writes it
    one = next(a for a in rows if a["table_name"] == "patients")
    stored = dump(demo_file)["patients"]
    assert any(json.loads(one["new_value"])["study_code"] == r[1] for r in stored)


@pytest.mark.parametrize("kind", ["sqlite", "json-legacy-deidentified", "json-identifiers"])
def test_importing_twice_changes_nothing_not_even_the_audit_log(
    demo_file: Path, tmp_path: Path, runner: CliRunner, kind: str
) -> None:
    source = demo_file
    if kind != "sqlite":
        source = tmp_path / "demo.json"
        with opened(demo_file) as store:
            write_json(store, source, identifiers=True)
        if kind == "json-legacy-deidentified":
            doc = legacy_deidentified(json.loads(source.read_text(encoding="utf-8")))
            source.write_text(json.dumps(doc), encoding="utf-8")
    target = tmp_path / "t.db"
    first = cli(runner, target, source)
    assert first.exit_code == 0, first.output
    tables, audit = dump(target), audit_rows(target)
    before = fingerprint(target)
    second = cli(runner, target, source)
    assert second.exit_code == 0, second.output
    assert "No conflicts." in second.output
    assert dump(target) == tables
    assert audit_rows(target) == audit
    total = next(line for line in second.output.splitlines() if line.startswith("total"))
    assert total.split()[1:] == ["0", "0", str(sum(len(r) for r in tables.values())), "0"]
    assert fingerprint(target)[target.name] == before[target.name]


@pytest.mark.usefixtures("travel")
def test_json_round_trip_gives_the_same_document(
    store: Store, setup_values: dict[str, Any], tmp_path: Path
) -> None:
    full_story(store, setup_values)
    ended_procedure(store, store.create_patient({"study_code": "SMA-077"})["id"], setup_values)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_json(store, first, identifiers=True)
    rebuilt = tmp_path / "rebuilt.db"
    with opened(rebuilt, "merger") as target:
        result = import_file(target, first)
        assert result.conflicts == []
        write_json(target, second, identifiers=True)
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert a.pop("exported_at") != "" and b.pop("exported_at") != ""
    original, rebuilt_log = a["tables"].pop("audit_log"), b["tables"].pop("audit_log")
    # the source's log is not copied: every entry is the import's
    assert original and {r["user"] for r in rebuilt_log} == {"merger"}
    imported = sum(len(rows) for t, rows in a["tables"].items() if t != "attempts")
    assert [r["action"] for r in rebuilt_log].count("insert") == imported
    assert [r["field"] for r in rebuilt_log if r["action"] == "import"] == ["source", "result"]
    assert a == b


def _legacy(store: Store, path: Path) -> Path:
    """``store`` as a de-identified document written before ids and times were masked."""
    write_json(store, path, identifiers=True)
    doc = legacy_deidentified(json.loads(path.read_text(encoding="utf-8")))
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _without_exported_at(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if '"exported_at"' not in line]


@pytest.mark.usefixtures("travel")
def test_de_identified_json_is_refused_in_one_line_and_writes_nothing(
    store: Store, setup_values: dict[str, Any], tmp_path: Path, runner: CliRunner
) -> None:
    """Its ids and times are masked: merging it could only invent them."""
    full_story(store, setup_values)
    out = tmp_path / "d.json"
    write_json(store, out)
    target = tmp_path / "n.db"
    with opened(target):
        pass
    before = fingerprint(target)
    result = cli(runner, target, out)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "a de-identified export" in lines[0], result.stderr
    assert "--identifiers" in lines[0] and str(out) in lines[0]
    assert fingerprint(target) == before


@pytest.mark.usefixtures("travel")
def test_legacy_de_identified_json_rebuilds_the_same_de_identified_export(
    store: Store, setup_values: dict[str, Any], tmp_path: Path
) -> None:
    full_story(store, setup_values)
    ended_procedure(store, store.create_patient({"study_code": "SMA-077"})["id"], setup_values)
    source, first, second = tmp_path / "legacy.json", tmp_path / "a.json", tmp_path / "b.json"
    _legacy(store, source)
    write_json(store, first)
    with opened(tmp_path / "rebuilt.db", "merger") as target:
        assert import_file(target, source).conflicts == []
        write_json(target, second)
    assert _without_exported_at(first) == _without_exported_at(second)


@pytest.mark.usefixtures("travel")
def test_legacy_de_identified_json_back_into_its_source_is_all_skipped(
    store: Store, setup_values: dict[str, Any], tmp_path: Path
) -> None:
    """Removed fields are unknown, not empty: they neither conflict nor erase notes."""
    full_story(store, setup_values)
    out = _legacy(store, tmp_path / "d.json")
    before, audit_n = dump(store.path), store.counts()["audit_log"]
    result = import_file(store, out)
    assert result.conflicts == []
    assert all(c["inserted"] == c["updated"] == 0 for c in result.counts.values())
    assert dump(store.path) == before and store.counts()["audit_log"] == audit_n
    assert (
        store.one("SELECT note FROM procedures WHERE note IS NOT NULL")["note"]
        == (SECRETS["procedure_note"])
    )


@pytest.mark.usefixtures("travel")
def test_legacy_de_identified_json_into_a_new_file_leaves_removed_fields_empty(
    store: Store, setup_values: dict[str, Any], tmp_path: Path
) -> None:
    full_story(store, setup_values)
    out = _legacy(store, tmp_path / "d.json")
    target = tmp_path / "n.db"
    with opened(target) as new:
        import_file(new, out)
    rows = dump(target)
    text = json.dumps(rows)
    for secret in SECRETS.values():
        assert secret not in text
    assert rows["identifiers"] == []
    assert len(rows["procedures"]) == 2


# ---------------------------------------------------------------- two laptops
def test_two_laptops_merged_into_a_third_hold_every_record_once(
    base: Path, tmp_path: Path, setup_values: dict[str, Any], runner: CliRunner, travel: Any
) -> None:
    a = copy_db(base, tmp_path / "a.db")
    b = copy_db(base, tmp_path / "b.db")
    with opened(a, "laptop-a") as store:
        p = store.create_patient({"study_code": "SMA-010", **PATIENT})
        proc = ended_procedure(store, p["id"], setup_values)
        travel(pendulum.now("UTC").add(minutes=5))  # the 5-minute score, in its window
        store.set_score(proc, 4)
        ongoing = store.start_procedure(store.find_patient("SMA-002")["id"], setup_values)
        store.record(ongoing, "attempt")
    with opened(b, "laptop-b") as store:
        p = store.create_patient({"study_code": "SMA-020", **PATIENT})
        proc = ended_procedure(store, p["id"], setup_values)
        day3 = store.one(
            "SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (proc,)
        )["id"]
        store.record_no_answer(day3, "no answer")
    unit = tmp_path / "unit.db"
    for laptop in (a, b):
        result = cli(runner, unit, laptop)
        assert result.exit_code == 0, result.output
    merged = dump(unit)
    expected: dict[str, set] = {t: set() for t in CLINICAL_TABLES}
    for laptop in (a, b):
        for table, rows in dump(laptop).items():
            expected[table] |= set(rows)
    assert {t: set(rows) for t, rows in merged.items()} == expected
    for table, rows in merged.items():  # no duplicates, by id or by content
        assert len({r[0] for r in rows}) == len(rows), table
    assert len(merged["patients"]) == 4
    assert len(merged["procedures"]) == 4
    codes = [r[1] for r in merged["patients"]]
    assert sorted(codes) == ["SMA-001", "SMA-002", "SMA-010", "SMA-020"]
    # merging again, in the other order, changes nothing
    audit = audit_rows(unit)
    for laptop in (b, a):
        assert cli(runner, unit, laptop).exit_code == 0
    assert dump(unit) == merged and audit_rows(unit) == audit
    # and the merged file works: the open procedure continues in the unit file
    with opened(unit) as store:
        ongoing_id = store.open_procedures()[0]["id"]
        view = store.record(ongoing_id, "attempt")
        assert view.state.attempt_count == 2


# ---------------------------------------------------------------- conflicts
def test_a_changed_record_is_a_conflict_kept_here_unless_prefer_incoming(
    base: Path, tmp_path: Path, runner: CliRunner
) -> None:
    here = copy_db(base, tmp_path / "here.db")
    there = copy_db(base, tmp_path / "there.db")
    with opened(there, "laptop-b") as store:
        pid = store.find_patient("SMA-001")["id"]
        store.update_patient(pid, {"sma_type": "3", "motor_status": "walker"})
    before, audit = dump(here), audit_rows(here)
    result = cli(runner, here, there)
    assert result.exit_code == 3, result.output
    assert f"patients {pid} [sma_type, motor_status, updated_at]" in result.output
    assert "kept this database's values" in result.output
    assert "1 conflict(s) left unresolved (exit code 3)" in result.stderr
    assert dump(here) == before and audit_rows(here) == audit  # nothing else to merge
    as_json = cli(runner, here, there, "--format", "json")
    assert as_json.exit_code == 3
    report = json.loads(as_json.stdout)
    assert report["conflicts"] == [
        {
            "table": "patients",
            "id": pid,
            "fields": ["sma_type", "motor_status", "updated_at"],
            "reason": "differs here (kept this database's values)",
        }
    ]
    assert report["counts"]["patients"] == {
        "inserted": 0,
        "updated": 0,
        "skipped": 1,
        "conflicts": 1,
        "refused": 0,
    }
    assert report["refused"] == [] and report["recomputed"] == []
    # --prefer-incoming: overwritten, each field audited with old and new values
    old = dump(here)["patients"]
    forced = cli(runner, here, there, "--prefer-incoming")
    assert forced.exit_code == 0, forced.output
    with opened(here) as store:
        row = store.patient(pid)
        assert (row["sma_type"], row["motor_status"]) == (3, "walker")
        assert row["updated_at"] == opened(there).patient(pid)["updated_at"]
    changes = {
        a["field"]: (a["old_value"], a["new_value"], a["user"])
        for a in audit_rows(here)
        if a["action"] == "update" and a["record_id"] == pid
    }
    old_row = next(r for r in old if r[0] == pid)
    assert changes["sma_type"] == ("2", "3", "merger")
    assert changes["motor_status"] == ("sitter", "walker", "merger")
    assert changes["updated_at"][0] == old_row[-1]
    assert [a["field"] for a in audit_rows(here) if a["action"] == "import"] == [
        "source",
        "result",
    ]
    assert dump(here) == dump(there)
    # now identical: a further import is a no-op
    assert cli(runner, here, there).exit_code == 0


def test_same_study_code_on_another_patient_is_a_conflict_with_its_records_held_back(
    tmp_path: Path, setup_values: dict[str, Any]
) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with opened(a) as store:
        store.create_patient({"study_code": "SMA-009", **PATIENT})
    with opened(b) as store:
        p = store.create_patient({"study_code": "sma-009", "sma_type": "1"})
        proc = ended_procedure(store, p["id"], setup_values)
        other = store.create_patient({"study_code": "SMA-777"})
    with opened(a, "merger") as store:
        result = import_file(store, b, prefer_incoming=True)
        codes = [r["study_code"] for r in store.query("SELECT study_code FROM patients")]
    by_table = {(c.table, c.id): c for c in result.conflicts}
    clash = by_table[("patients", p["id"])]
    assert clash.fields == ("study_code",)
    assert "belongs to another patient here" in clash.reason
    assert "not in this database" in by_table[("procedures", proc)].reason
    held = [c for c in result.conflicts if c.table in ("events", "attempts", "followups")]
    assert held and all(
        "not in this database" in c.reason or "in conflict" in c.reason for c in held
    )
    assert sorted(codes) == ["SMA-009", "SMA-777"]  # the unrelated patient came in
    assert result.counts["patients"]["inserted"] == 1
    assert other["id"] in {r[0] for r in dump(a)["patients"]}


def test_a_second_open_procedure_for_a_patient_is_a_conflict(
    base: Path, tmp_path: Path, setup_values: dict[str, Any]
) -> None:
    here = copy_db(base, tmp_path / "here.db")
    there = copy_db(base, tmp_path / "there.db")
    with opened(here) as store:
        mine = store.start_procedure(store.find_patient("SMA-002")["id"], setup_values)
    with opened(there) as store:
        theirs = store.start_procedure(store.find_patient("SMA-002")["id"], setup_values)
        store.record(theirs, "attempt")
    with opened(here, "merger") as store:
        result = import_file(store, there, prefer_incoming=True)
        open_now = [r["id"] for r in store.open_procedures()]
    assert open_now == [mine]
    reasons = {(c.table, c.id): c.reason for c in result.conflicts}
    assert "one open procedure per patient" in reasons[("procedures", theirs)]
    assert all(c.table in ("procedures", "events", "attempts") for c in result.conflicts)
    assert result.counts["events"]["inserted"] == 0


def test_new_children_of_a_procedure_in_conflict_are_held_back(
    base: Path, tmp_path: Path, setup_values: dict[str, Any]
) -> None:
    """The derived columns (attempt counts, minutes) must add up to the events."""
    with opened(base) as store:
        proc = store.start_procedure(store.find_patient("SMA-002")["id"], setup_values)
    here = copy_db(base, tmp_path / "here.db")
    there = copy_db(base, tmp_path / "there.db")
    with opened(here) as store:
        store.record(proc, "attempt")
    with opened(there) as store:
        store.record(proc, "attempt")
        store.record(proc, "redirect")
        theirs = {
            r["id"]
            for r in store.query(
                "SELECT id FROM events WHERE procedure_id = ? AND seq > 1", (proc,)
            )
        }
    with opened(here, "merger") as store:
        result = import_file(store, there)
        attempts_n = store.one("SELECT attempts_n FROM procedures WHERE id = ?", (proc,))
        events_n = store.one("SELECT count(*) AS n FROM events WHERE procedure_id = ?", (proc,))
    by_id = {c.id: c for c in result.conflicts}
    # derived columns (attempts_n, ...) are not compared: they follow the events, which
    # are listed themselves (changed: they used to be listed among the differing fields)
    assert by_id[proc].fields == ("updated_at",)
    held = [c for c in result.conflicts if c.table in ("events", "attempts")]
    assert held and all("held back" in c.reason for c in held)
    assert {c.id for c in held if c.table == "events"} == theirs
    assert attempts_n == {"attempts_n": 1} and events_n == {"n": 2}
    # --prefer-incoming: an event number is taken here, so the procedure cannot become
    # theirs (its derived columns would not add up to the events here): it is left as it
    # is with all its events. (Changed: the procedure was overwritten before, beside
    # attempts rows that no longer matched it.)
    with opened(here, "merger") as store:
        before_forced = dump(here)
        forced = import_file(store, there, prefer_incoming=True)
    assert forced.conflicts[0].table == "events"
    assert "event number 2" in forced.conflicts[0].reason
    assert {c.table for c in forced.conflicts} == {"events", "procedures", "attempts"}
    assert all("in conflict" in c.reason for c in forced.conflicts[1:])
    assert dump(here) == before_forced


def test_event_number_taken_by_another_event_is_a_conflict(
    base: Path, tmp_path: Path, setup_values: dict[str, Any]
) -> None:
    # A procedure in progress (a note after the end is refused now, as at the bedside).
    with opened(base) as store:
        proc = store.start_procedure(store.find_patient("SMA-002")["id"], setup_values)
    here = copy_db(base, tmp_path / "here.db")
    there = copy_db(base, tmp_path / "there.db")
    for path, text in ((here, "note here"), (there, "note there")):
        with opened(path) as store:
            # a note does not change the procedure row: only the event differs
            store.record(proc, "note", text)
    with opened(here, "merger") as store:
        before = dump(here)
        result = import_file(store, there, prefer_incoming=True)
    [conflict] = result.conflicts
    assert conflict.table == "events" and conflict.fields == ("seq",)
    assert "event number" in conflict.reason
    assert dump(here) == before


def test_a_note_after_the_end_is_refused_with_its_procedure(base: Path, tmp_path: Path) -> None:
    """The bedside refuses anything after the end; so does import (changed: a note added
    behind the Store's back used to be merged)."""
    there = copy_db(base, tmp_path / "there.db")
    with opened(there) as store:
        proc = store.query("SELECT id FROM procedures")[0]["id"]
        store.conn.execute("BEGIN IMMEDIATE")
        store._insert_event(proc, "note", store.now(), "after the end")
        store.conn.execute("COMMIT")
    target = tmp_path / "t.db"
    with opened(target, "merger") as store:
        result = import_file(store, there)
    assert result.conflicts == []
    reasons = {(r.table, r.field): r.reason for r in result.refused}
    assert "has ended" in reasons[("events", "kind")]
    assert {r.table for r in result.refused} == {
        "procedures",
        "events",
        "attempts",
        "followups",
    }
    assert dump(target)["procedures"] == [] and dump(target)["events"] == []
    assert len(dump(target)["patients"]) == 2  # the patients came in


def test_dry_run_writes_nothing(base: Path, tmp_path: Path, runner: CliRunner) -> None:
    here = copy_db(base, tmp_path / "here.db")
    with opened(here):
        pass
    before = fingerprint(here)
    missing = tmp_path / "missing.db"
    for target in (here, missing):
        result = cli(runner, target, base, "--dry-run")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Dry run (nothing written)")
    assert fingerprint(here) == before
    assert not missing.exists()
    wet = cli(runner, missing, base)
    assert wet.exit_code == 0
    dry_total = cli(runner, tmp_path / "m2.db", base, "--dry-run").output.splitlines()[-2]
    assert dry_total == wet.output.splitlines()[-2]  # the same counts


# ---------------------------------------------------------------- refusals
def _newer(tmp: Path, base: Path) -> Path:
    path = copy_db(base, tmp / "newer.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    return path


def _foreign(tmp: Path, base: Path) -> Path:
    path = tmp / "other-app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.commit()
    conn.close()
    return path


def _truncated(tmp: Path, base: Path) -> Path:
    path = copy_db(base, tmp / "truncated.db")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _damaged(tmp: Path, base: Path) -> Path:
    path = copy_db(base, tmp / "damaged.db")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for n in range(2, len(data) // page):  # every page but the first: garbage
        data[n * page : n * page + 200] = b"\xa5" * 200
    path.write_bytes(bytes(data))
    return path


def _text(tmp: Path, base: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("Shopping list\nnot a database\n")
    return path


def _empty(tmp: Path, base: Path) -> Path:
    path = tmp / "empty.db"
    path.write_bytes(b"")
    return path


def _json(doc: Any, name: str) -> Any:
    def make(tmp: Path, base: Path) -> Path:
        path = tmp / name
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    return make


def _export(change: Any, name: str) -> Any:
    def make(tmp: Path, base: Path) -> Path:
        src = tmp / f"{name}.src.json"
        with opened(base) as store:
            write_json(store, src, identifiers=True)
        doc = json.loads(src.read_text())
        change(doc)
        path = tmp / name
        path.write_text(json.dumps(doc))
        return path

    return make


REFUSED = {
    "newer schema": (_newer, "written by a newer sma-log (schema 99"),
    "foreign sqlite": (_foreign, "another application"),
    "truncated": (_truncated, "truncated"),
    "damaged": (_damaged, "damaged"),
    "text": (_text, "neither an SQLite database nor a JSON export"),
    "empty": (_empty, "empty"),
    "foreign json": (_json({"hello": "world"}, "f.json"), "not an sma-log export"),
    "bad json": (_json('{"format": "sma-log", ', "b.json"), "not valid JSON"),
    "newer format": (
        _export(lambda d: d.update(format_version=2), "nf.json"),
        "newer sma-log (JSON format 2",
    ),
    "newer json schema": (
        _export(lambda d: d.update(schema_version=99), "ns.json"),
        "newer sma-log (schema 99",
    ),
    "unknown table": (
        _export(lambda d: d["tables"].update(bookmarks=[]), "ut.json"),
        "unknown table 'bookmarks'",
    ),
    "unknown column": (
        _export(lambda d: d["tables"]["patients"][0].update(colour="red"), "uc.json"),
        "unknown column 'colour'",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_files_leave_the_target_untouched(
    case: str, base: Path, tmp_path: Path, runner: CliRunner
) -> None:
    make, words = REFUSED[case]
    folder = tmp_path / "in"
    folder.mkdir()
    source = make(folder, base)
    target = copy_db(base, tmp_path / "target.db")
    source_bytes = source.read_bytes()
    before = fingerprint(target)

    def listing_now() -> list[str]:
        # A read-only SQLite connection to a WAL file may leave empty -wal/-shm beside
        # the *source* (as `sma-log info` does); the source itself is never written.
        return sorted(p.name for p in tmp_path.rglob("*") if not p.name.endswith(("-wal", "-shm")))

    listing = listing_now()
    result = cli(runner, target, source)
    assert result.exit_code == 2, (case, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sma-log: error: "), result.stderr
    assert words in lines[0], lines[0]
    assert str(source) in lines[0]
    assert fingerprint(target) == before
    assert source.read_bytes() == source_bytes
    assert listing_now() == listing
    # a missing target is not even created
    fresh = tmp_path / "fresh.db"
    assert cli(runner, fresh, source).exit_code == 2
    assert not fresh.exists()


def test_older_schema_file_refused_and_left_as_it_was(tmp_path: Path, runner: CliRunner) -> None:
    old = shutil.copy(FIXTURES / "schema1.db", tmp_path / "old.db")
    before = Path(old).read_bytes()
    target = tmp_path / "t.db"
    result = cli(runner, target, old)
    assert result.exit_code == 2
    assert "older sma-log (schema 1" in result.stderr and "upgrade" in result.stderr
    assert Path(old).read_bytes() == before
    assert not target.exists()


def test_importing_a_database_into_itself_is_refused(base: Path, runner: CliRunner) -> None:
    result = cli(runner, base, base)
    assert result.exit_code == 2
    assert "is the database being imported into" in result.stderr


def test_the_source_database_is_only_read(base: Path, tmp_path: Path) -> None:
    before = base.read_bytes()
    with opened(tmp_path / "t.db") as store:
        import_file(store, base)
    assert base.read_bytes() == before


def test_refused_inside_the_transaction_rolls_back(base: Path, tmp_path: Path) -> None:
    class Broken(Source):
        kind = "sqlite"
        path = base
        schema_version = 2
        note: dict[str, Any] = {}

        def tables(self) -> tuple[str, ...]:
            return ("patients", "procedures")

        def rows(self, table: str) -> Any:
            if table == "procedures":
                raise ImportRefused(f"{base}: the database is damaged or unreadable (test)")
            yield from (
                {
                    "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
                    "study_code": f"X-{i}",
                    "created_at": "2026-03-27T09:00:00.000000Z",
                    "updated_at": "2026-03-27T09:00:00.000000Z",
                }
                for i in range(1)
            )

        def close(self) -> None:
            pass

    target = tmp_path / "t.db"
    with opened(target) as store:
        before = dump(target), store.counts()["audit_log"]
        with pytest.raises(ImportRefused):
            import_file(store, base, source=Broken())  # type: ignore[arg-type]
        assert (dump(target), store.counts()["audit_log"]) == before
        assert not store.conn.in_transaction


# ---------------------------------------------------------------- the command
def test_import_listed_in_help_and_its_help_loads_nothing_heavy() -> None:
    probe = (
        "import sys\n"
        "from sma_log.cli import main\n"
        "try:\n"
        "    main(['import', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'sqlite_utils', 'pendulum', 'rich', 'ulid'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    for word in ("--prefer-incoming", "--dry-run", "Exit codes"):
        assert word in result.stdout
