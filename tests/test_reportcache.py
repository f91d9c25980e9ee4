"""The report's facts kept by triggers (sma_log.storage.reportcache).

Every test compares the report read from the kept facts with the plain one: the
figures summarised from the analysis rows (procedures ⨝ patients ⟕ follow-ups, one row
per procedure), on real files written through the real Store, importer, demo
generator and migrations.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import pendulum
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from sma_log.demo import write_demo
from sma_log.domain import schedule, stats
from sma_log.domain.clock import Clock, from_text
from sma_log.storage import reportcache
from sma_log.storage.analysis import iter_analysis_rows
from sma_log.storage.schema import SCHEMA_VERSION
from sma_log.storage.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
NOW = pendulum.datetime(2026, 3, 27, 9, 0, tz="UTC")
GROUPS = [None, *stats.GROUPINGS]


def plain(store: Store, by: str | None, unit: str = "procedure", **kw: Any) -> dict[str, Any]:
    """The report from the analysis rows (the definition the caches must match), with
    its data-quality line counted from the procedures table."""
    cols = [*stats.NEEDED] + ([stats.GROUPINGS[by][0]] if by else [])
    rows = iter_analysis_rows(store, columns=cols, order=False, **kw)
    report = stats.summarise(rows, by, unit)  # type: ignore[arg-type]
    report.quality["cancelled"] = cancelled(store, **kw)
    return report.as_dict()


def cancelled(store: Store, date_from: Any = None, date_to: Any = None, tz: str = "UTC") -> int:
    """Starts cancelled before the first puncture whose local start date is in range."""
    lo = None if date_from is None else pendulum.parse(str(date_from)).date()
    hi = None if date_to is None else pendulum.parse(str(date_to)).date()
    n = 0
    for (started,) in store.conn.execute(
        "SELECT started_at FROM procedures WHERE status = 'cancelled'"
    ):
        day = from_text(started).in_timezone(tz).date()
        n += (lo is None or lo <= day) and (hi is None or day <= hi)
    return n


def fast(store: Store, by: str | None, unit: str = "procedure", **kw: Any) -> dict[str, Any]:
    return reportcache.load_report(store.conn, by, unit, **kw).as_dict()  # type: ignore[arg-type]


def assert_consistent(store: Store) -> None:
    assert reportcache.check(store.conn) == []
    for by in GROUPS:
        assert fast(store, by) == plain(store, by), by


# ---------------------------------------------------------------- statistics on counts
values = st.lists(
    st.one_of(st.integers(0, 12), st.sampled_from([0.5, 1.25, 9.533333333333333, 30.0])),
    min_size=5,
    max_size=60,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_spread_of_counts_is_the_statistics_module_on_the_data(data: list[float]) -> None:
    s = stats.spread(data)
    assert s.n == len(data)
    assert s.min == min(data) and s.max == max(data)
    assert s.mean == pytest.approx(statistics.fmean(data), rel=1e-12, abs=1e-12)
    if len(data) == 1:
        assert s.sd is None and s.median == s.q1 == s.q3 == data[0]
    else:
        q1, med, q3 = statistics.quantiles(data, n=4, method="inclusive")
        assert (s.q1, s.median, s.q3) == (q1, med, q3)  # exactly, not approximately
        assert s.sd == pytest.approx(statistics.stdev(data), rel=1e-9, abs=1e-12)
    from collections import Counter

    assert stats.median_counts(Counter(data)) == statistics.median(data)


# ---------------------------------------------------------------- migration 3
def test_schema2_file_migrates_to_whole_seconds_and_filled_caches(tmp_path: Path) -> None:
    db = shutil.copy(FIXTURES / "schema2.db", tmp_path / "old.db")
    with sqlite3.connect(db) as raw:
        before = raw.execute(
            "SELECT id, procedure_min, puncture_min FROM procedures ORDER BY id"
        ).fetchall()
    raw.close()
    assert any(m is not None and (m * 60) % 1 for _, m, _ in before)  # fractions of a second
    store = Store.open(db, "tester")
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        after = store.conn.execute(
            "SELECT id, procedure_min, puncture_min FROM procedures ORDER BY id"
        ).fetchall()
        for (_, old_p, old_u), (_, new_p, new_u) in zip(before, after, strict=True):
            for old, new in ((old_p, new_p), (old_u, new_u)):
                if old is None:
                    assert new is None
                else:
                    assert new == round(new * 60) / 60  # whole seconds
                    assert abs(new - old) * 60 <= 0.5 + 1e-9
        # What the Store computes from the events now is exactly what the migration wrote.
        store.conn.execute("BEGIN IMMEDIATE")
        try:
            for (pid,) in store.conn.execute("SELECT id FROM procedures").fetchall():
                row, events, _ = store._for_write(pid)
                changed = store._sync_derived(dict(row), events)
                assert changed is not None
            recomputed = store.conn.execute(
                "SELECT id, procedure_min, puncture_min FROM procedures ORDER BY id"
            ).fetchall()
        finally:
            store.conn.execute("ROLLBACK")
        assert recomputed == after
        assert store.conn.execute("SELECT count(*) FROM report_facts").fetchone()[0] == 5
        assert_consistent(store)
        assert fast(store, None)["overall"]["figures"][0] == {
            "key": "patients",
            "label": "Patients, n",
            "unit": "patient",
            "n": 3,
        }
    finally:
        store.close()


def test_the_stored_view_is_what_this_code_generates(store: Store) -> None:
    """Changing the analysis definitions needs a migration that recreates the view."""
    sql = store.conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'report_facts_source'"
    ).fetchone()[0]
    assert sql == f"CREATE VIEW report_facts_source AS {reportcache.source_sql()}"
    triggers = {
        r[0]
        for r in store.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'report_%'"
        )
    }
    assert triggers == set(reportcache.trigger_sql())


# ---------------------------------------------------------------- kept by every writer
def _procedure(store: Store, patient_id: str, setup: dict[str, Any], keys: list[str]) -> str:
    pid = store.start_procedure(patient_id, setup)
    for k in keys:
        store.record(pid, k)
    return pid


def test_every_store_action_keeps_the_caches_right(
    store: Store, patient: dict[str, Any], setup_values: dict[str, Any]
) -> None:
    pendulum.travel_to(NOW, freeze=True)
    try:
        other = store.create_patient({"study_code": "SMA-002", "sma_type": "3"})
        a = _procedure(store, patient["id"], setup_values, ["attempt", "attempt", "csf"])
        facts = lambda: store.conn.execute("SELECT count(*) FROM report_facts").fetchone()[0]  # noqa: E731
        assert facts() == 0  # a procedure in progress has no facts
        pendulum.travel_to(NOW.add(minutes=7, seconds=13, microseconds=400_000), freeze=True)
        store.record(a, "injection_start")
        store.record(a, "injection_end")
        store.end_procedure(a, {"drug_delivered": "yes"})
        assert facts() == 1
        assert_consistent(store)
        assert (
            store.one("SELECT procedure_min FROM procedures WHERE id = ?", (a,))["procedure_min"]
            == 433 / 60
        )  # 7 min 13.4 s → 433 s
        pendulum.travel_to(NOW.add(minutes=12, seconds=13), freeze=True)  # score in window
        store.set_score(a, 4)
        assert_consistent(store)
        b = _procedure(store, other["id"], {**setup_values, "approach": "midline"}, ["attempt"])
        store.record(b, "attempt")
        store.undo(b)
        store.end_procedure(b, {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"})
        assert_consistent(store)
        mistaken = _procedure(store, other["id"], setup_values, [])
        store.cancel_procedure(mistaken, "wrong patient")  # in no figure; a data-quality line
        assert fast(store, None)["data_quality"] == {"cancelled": 1}
        assert_consistent(store)
        day3 = {
            r["procedure_id"]: r["id"]
            for r in store.query("SELECT id, procedure_id FROM followups WHERE kind = 'day3'")
        }
        pendulum.travel_to(NOW.add(hours=72), freeze=True)  # the 72-hour calls
        store.record_no_answer(day3[a])
        store.complete_followup(
            day3[a],
            {
                **schedule.NO_ADVERSE_EVENTS,
                "satisfaction": "5",
                "pdph": "yes",
                "back_pain_nrs": "3",
                "assessor": "RN",
            },
        )
        assert_consistent(store)
        store.close_followup(day3[b], "declined", "no")
        store.reopen_followup(day3[b])
        assert_consistent(store)
        store.update_procedure(a, {"approach": "midline", "cobb_angle": "72"})
        store.update_patient(patient["id"], {"study_code": "SMA-001", "sma_type": "3"})
        assert_consistent(store)
        report = fast(store, "approach")
        assert [g["group"] for g in report["groups"]] == ["midline"]
        assert report["groups"][0]["figures"][1]["n"] == 2  # procedures
        assert fast(store, "scoliosis")["groups"][0]["group"] == "moderate"  # b: 45.5°
    finally:
        pendulum.travel_back()


def test_an_attempt_on_an_open_procedure_does_no_report_work(
    store: Store, open_procedure: str
) -> None:
    before = store.conn.total_changes
    store.record(open_procedure, "attempt")
    changed = store.conn.total_changes - before
    # the event, the attempt row, the derived columns, the audit rows; no fact row
    assert store.conn.execute("SELECT count(*) FROM report_facts").fetchone()[0] == 0
    assert changed < 10


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    write_demo(path, procedures=400, seed=3, now=NOW)
    return path


@pytest.mark.parametrize("by", GROUPS)
def test_demo_report_from_cells_equals_the_rows(demo_db: Path, by: str | None) -> None:
    with Store.open(demo_db, "tester", readonly=True) as store:
        assert fast(store, by) == plain(store, by)
        # the row path (a date range, the patient unit) reads the facts table
        assert fast(store, by, "patient") == plain(store, by, "patient")
        kw = {"date_from": "2025-06-01", "date_to": "2025-12-31", "tz": "Europe/Rome"}
        assert fast(store, by, **kw) == plain(store, by, **kw)


def test_demo_file_caches_are_consistent(demo_db: Path) -> None:
    with Store.open(demo_db, "tester", readonly=True) as store:
        assert reportcache.check(store.conn) == []
        n = store.conn.execute("SELECT count(*) FROM report_facts").fetchone()[0]
        assert n == 399  # every ended procedure, not the open one


def test_check_finds_a_tampered_cache(tmp_path: Path, demo_db: Path) -> None:
    db = shutil.copy(demo_db, tmp_path / "t.db")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE report_facts SET attempts_n = attempts_n + 1 "
            "WHERE procedure_id = (SELECT min(procedure_id) FROM report_facts)"
        )
        assert reportcache.check(conn) == ["1 stale or extra fact row(s)", "1 missing fact row(s)"]
    conn.close()


def test_import_and_sqlite_export_keep_caches_right(tmp_path: Path, demo_db: Path) -> None:
    from sma_log.export.common import ExportOptions
    from sma_log.export.sqlitecopy import write_sqlite
    from sma_log.importer import import_file

    target = tmp_path / "merged.db"
    with Store.open(target, "tester") as store:
        import_file(store, demo_db)
        assert_consistent(store)
    for opts in (
        ExportOptions(identifiers=False, tz="Europe/Rome"),
        ExportOptions(
            identifiers=True,
            tz="Europe/Rome",
            date_from=pendulum.date(2025, 6, 1),
            date_to=pendulum.date(2025, 12, 31),
        ),
    ):
        out = tmp_path / f"copy-{opts.identifiers}.db"
        with Store.open(demo_db, "tester", readonly=True) as store:
            write_sqlite(store, out, opts, force=False)
        with Store.open(out, "tester", readonly=True) as copy:
            assert_consistent(copy)
            triggers = copy.conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'report_%'"
            ).fetchone()[0]
            assert triggers == len(reportcache.trigger_sql())


def test_older_json_export_imports_without_false_conflicts(tmp_path: Path, demo_db: Path) -> None:
    """A schema-2 export has minutes with fractions of a second: normalised on import."""
    from sma_log.export.jsondoc import write_json
    from sma_log.importer import import_file

    db = shutil.copy(demo_db, tmp_path / "here.db")
    doc_path = tmp_path / "old.json"
    with Store.open(db, "tester", readonly=True) as store:
        write_json(store, doc_path, identifiers=True)
    doc = json.loads(doc_path.read_text())
    for row in doc["tables"]["procedures"]:
        if row.get("procedure_min") is not None:
            row["procedure_min"] += 0.3 / 60  # what schema 2 kept: 0.3 s more
    for version in (3, 2):
        doc["schema_version"] = version
        doc_path.write_text(json.dumps(doc))
        with Store.open(db, "tester") as store:
            result = import_file(store, doc_path, dry_run=True)
        # minutes are recomputed from the events, never taken from the file: a
        # schema-3 file's odd minutes are listed, a schema-2 file's are normalised
        assert not result.conflicts, version
        assert bool(result.recomputed) is (version == 3), version


def test_info_check_finds_dropped_triggers_and_rebuild_repairs(
    tmp_path: Path, demo_db: Path
) -> None:
    """Whoever owns the file can drop a trigger; `info --check` says so, rebuild repairs."""
    from click.testing import CliRunner

    from sma_log.cli import main

    db = shutil.copy(demo_db, tmp_path / "t.db")
    runner = CliRunner()
    ok = runner.invoke(main, ["--db", str(db), "info", "--check"])
    assert ok.exit_code == 0, ok.output
    assert "check:" in ok.output and "ok" in ok.output.split("check:")[1]
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER report_followup_update")
        conn.execute(
            "UPDATE followups SET state = 'declined' WHERE kind = 'day3' AND state = 'open'"
        )
    conn.close()
    bad = runner.invoke(main, ["--db", str(db), "info", "--check"])
    assert bad.exit_code == 1
    assert "report figures" in bad.output and "--rebuild-report" in bad.output
    fixed = runner.invoke(main, ["--db", str(db), "info", "--rebuild-report", "--check"])
    assert fixed.exit_code == 0, fixed.output
    with Store.open(db, "tester") as store:
        assert_consistent(store)
        n = store.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'report_%'"
        ).fetchone()[0]
        assert n == len(reportcache.trigger_sql())


# ---------------------------------------------------------------- random action sequences
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "start",
                "start",
                "complete",
                "complete",
                "attempt",
                "redirect",
                "csf",
                "inject",
                "undo",
                "end_ok",
                "end_failed",
                "score",
                "fu_done",
                "fu_no_answer",
                "fu_close",
                "fu_reopen",
                "edit_setup",
                "edit_patient",
                "cancel",
                "score_early",
                "fu_early",
                "wait",
                "wait",
                "wait",
                "wait",
            ]
        ),
        st.integers(0, 3),  # which patient / procedure / value / how long
    ),
    min_size=5,
    max_size=60,
)


@given(ACTIONS)
@example(  # every timing at least once: early (confirmed), in window, late; and a cancel
    [
        ("complete", 0),
        ("score_early", 0),
        ("complete", 1),
        ("wait", 1),
        ("score", 1),
        ("start", 2),
        ("complete", 2),
        ("wait", 2),
        ("score", 2),
        ("fu_early", 0),
        ("wait", 3),
        ("fu_done", 1),
        ("wait", 3),
        ("fu_done", 2),
        ("start", 3),
        ("cancel", 0),
    ]
)
@settings(max_examples=100, deadline=None)
def test_random_action_sequences_keep_the_caches_right(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[str, int]]
) -> None:
    """Whatever the users do, in whatever order, the kept figures match the tables.

    Actions the rules refuse (an end before CSF, a score twice, a score or a call
    before its window…) are refused as in the app and must leave the caches as they
    were. The clock travels ("wait": 1 min, 5 min, 3 h or 72 h), so scores and calls
    are taken early (confirmed), in their window or late.
    """
    pendulum.travel_to(NOW, freeze=True)
    try:
        _random_actions(tmp_path_factory, actions)
    finally:
        pendulum.travel_back()


WAITS = (
    pendulum.duration(minutes=1),
    pendulum.duration(minutes=5),
    pendulum.duration(hours=3),
    pendulum.duration(hours=72),
)


def _day3_answers(k: int) -> dict[str, str]:
    """Every item of the 72-hour call, answered in one of four ways."""
    answers = {
        "satisfaction": str(2 + k),
        "pdph": "yes" if k % 2 else "no",
        "back_pain_nrs": str(k),
        "radicular_pain": "yes" if k == 2 else "no",
        "nausea_vomiting": "yes" if k == 3 else "no",
        "other_event_any": "no",
        "assessor": "RN",
    }
    if k == 3:
        answers.update(other_event_any="yes", other_event="rash", other_event_serious="no")
    return answers


def _random_actions(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[str, int]]
) -> None:
    from factories import SETUP

    from sma_log.domain import fields, timeline
    from sma_log.storage.errors import StorageError

    db = tmp_path_factory.mktemp("seq") / "t.db"
    approaches = ["paramedian", "midline", "transforaminal", "other"]
    with Store.open(db, "tester", clock=Clock(monotonic=False)) as store:
        patients = [
            store.create_patient({"study_code": f"P-{i}", "sma_type": str(1 + i % 4)})
            for i in range(4)
        ]
        procs = [
            store.start_procedure(patients[i]["id"], {**SETUP, "approach": approaches[i]})
            for i in range(2)
        ]
        for action, k in actions:
            open_ = [r["id"] for r in store.open_procedures()]
            ended = [
                r[0]
                for r in store.conn.execute(
                    "SELECT id FROM procedures WHERE status = 'ended' ORDER BY id"
                )
            ]
            day3 = [
                r[0]
                for r in store.conn.execute(
                    "SELECT id FROM followups WHERE kind = 'day3' ORDER BY id"
                )
            ]
            pick = lambda xs, k=k: xs[k % len(xs)] if xs else None  # noqa: E731
            try:
                if action == "start":
                    setup = {**SETUP, "approach": approaches[k], "cobb_angle": str(k * 20)}
                    procs.append(store.start_procedure(patients[k]["id"], setup))
                elif action in ("attempt", "redirect", "csf", "undo", "inject") and open_:
                    pid = pick(open_)
                    if action == "undo":
                        store.undo(pid)
                    elif action == "inject":
                        store.record(pid, "injection_start")
                        store.record(pid, "injection_end")
                    else:
                        store.record(pid, action)
                elif action == "complete" and open_:
                    pid = pick(open_)
                    for kind in ("attempt", "csf", "injection_start", "injection_end"):
                        with contextlib.suppress(timeline.RuleError):
                            store.record(pid, kind)
                    store.end_procedure(pid, {"drug_delivered": "yes"})
                elif action == "end_ok" and open_:
                    store.end_procedure(pick(open_), {"drug_delivered": "yes"})
                elif action == "end_failed" and open_:
                    store.end_procedure(
                        pick(open_),
                        {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"},
                    )
                elif action == "score" and ended:
                    store.set_score(pick(ended), 1 + k)
                elif action == "score_early" and ended:  # confirmed before its window
                    store.set_score(pick(ended), 1 + k, early_ok=True)
                elif action == "fu_done" and day3:
                    store.complete_followup(pick(day3), _day3_answers(k))
                elif action == "fu_early" and day3:  # confirmed before its window
                    store.complete_followup(pick(day3), _day3_answers(k), early_ok=True)
                elif action == "cancel" and open_:
                    store.cancel_procedure(pick(open_), "started by mistake")
                elif action == "wait":
                    pendulum.travel_to(pendulum.now("UTC") + WAITS[k], freeze=True)
                elif action == "fu_no_answer" and day3:
                    store.record_no_answer(pick(day3))
                elif action == "fu_close" and day3:
                    store.close_followup(pick(day3), ["unreachable", "declined"][k % 2], "r")
                elif action == "fu_reopen" and day3:
                    store.reopen_followup(pick(day3))
                elif action == "edit_setup" and ended:
                    store.update_procedure(
                        pick(ended), {"approach": approaches[3 - k], "cobb_angle": str(k * 30)}
                    )
                elif action == "edit_patient":
                    store.update_patient(
                        patients[k]["id"], {"study_code": f"P-{k}", "sma_type": str(4 - k)}
                    )
            except (fields.ValidationError, timeline.RuleError, StorageError, ValueError):
                pass  # refused, as the app would refuse it
        facts = store.conn.execute("SELECT count(*) FROM report_facts").fetchone()[0]
        event(f"ended procedures: {min(facts, 3)}{'+' if facts >= 3 else ''}")
        for timing in ("early", "late"):
            if store.one(f"SELECT 1 AS x FROM followups WHERE state = 'done' AND {timing}"):
                event(f"a score or call taken {timing}")
        if store.one(
            "SELECT 1 AS x FROM followups WHERE state = 'done' AND NOT early AND NOT late"
        ):
            event("a score or call taken in its window")
        assert reportcache.check(store.conn) == []
        for by in (None, "approach", "scoliosis", "sma_type"):
            assert fast(store, by) == plain(store, by)
            assert fast(store, by, "patient") == plain(store, by, "patient")


# ---------------------------------------------------------------- what other tools write
def _raw(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db)  # a third-party tool: foreign keys off, no triggers lifted
    try:
        for s in sql:
            conn.execute(s)
        conn.commit()
    finally:
        conn.close()


def _ended_with_attempt(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT p.id FROM procedures p JOIN followups f ON f.procedure_id = p.id "
            "AND f.kind = 'day3' AND f.state = 'done' WHERE p.attempts_n >= 2 LIMIT 1"
        ).fetchone()[0]
    finally:
        conn.close()


def _agree(db: Path) -> None:
    with Store.open(db, "tester", readonly=True) as store:
        assert reportcache.check(store.conn) == []
        for by in (None, "sma_type", "approach"):
            assert fast(store, by) == plain(store, by), by
            assert fast(store, by, "patient") == plain(store, by, "patient"), by
            kw = {"date_from": "2000-01-01", "date_to": "2099-12-31"}
            assert fast(store, by, **kw) == plain(store, by, **kw), by


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE procedures SET drug_delivered = 'yes' WHERE id = '{pid}'",
        "UPDATE procedures SET first_attempt_success = 'no' WHERE id = '{pid}'",
        "UPDATE procedures SET attempts_n = -1 WHERE id = '{pid}'",
        "UPDATE procedures SET attempts_n = 0.5 WHERE id = '{pid}'",
        "UPDATE procedures SET redirections_n = '' WHERE id = '{pid}'",
        "UPDATE followups SET pdph = 'no' WHERE procedure_id = '{pid}' AND kind = 'day3'",
        "UPDATE followups SET back_pain_nrs = 'n/a' WHERE procedure_id = '{pid}'",
        "UPDATE followups SET kind = 'day7' WHERE procedure_id = '{pid}' AND kind = 'day3'",
    ],
)
def test_odd_values_written_by_other_tools_count_the_same_both_ways(
    tmp_path: Path, demo_db: Path, change: str
) -> None:
    """Python's truth of a value (text 'yes' is true, -1 is an attempt…) is the cells'."""
    db = shutil.copy(demo_db, tmp_path / "t.db")
    _raw(db, change.format(pid=_ended_with_attempt(db)))
    _agree(db)


def test_replace_and_delete_by_other_tools_keep_the_caches_right(
    tmp_path: Path, demo_db: Path
) -> None:
    import sqlite_utils

    db = shutil.copy(demo_db, tmp_path / "t.db")
    pid = _ended_with_attempt(db)
    sdb = sqlite_utils.Database(db)
    patient = dict(next(sdb.query("SELECT * FROM patients LIMIT 1")))
    sdb["patients"].insert(
        {**patient, "sma_type": 4 if patient["sma_type"] != 4 else 1}, replace=True
    )
    proc = dict(next(sdb.query("SELECT * FROM procedures WHERE id = ?", [pid])))
    sdb["procedures"].insert({**proc, "status": "open"}, replace=True)
    fu = dict(next(sdb.query("SELECT * FROM followups WHERE kind = 'day3' AND state = 'done'")))
    sdb["followups"].insert({**fu, "kind": "day7"}, replace=True)
    sdb.conn.close()
    _agree(db)
    _raw(db, "DELETE FROM patients WHERE id = (SELECT patient_id FROM procedures LIMIT 1)")
    with Store.open(db, "tester", readonly=True) as store:
        assert reportcache.check(store.conn) == []


def test_text_where_a_number_belongs_is_one_line_not_a_traceback(
    tmp_path: Path, demo_db: Path
) -> None:
    from click.testing import CliRunner

    from sma_log.cli import main

    db = shutil.copy(demo_db, tmp_path / "t.db")
    _raw(db, f"UPDATE procedures SET redirections_n = 'abc' WHERE id = '{_ended_with_attempt(db)}'")
    for extra in ([], ["--unit", "patient"], ["--from", "2000-01-01"]):
        result = CliRunner().invoke(main, ["--db", str(db), "report", *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert "'abc'" in result.output and "Traceback" not in result.output


def test_odd_old_rows_do_not_stop_the_migration(tmp_path: Path) -> None:
    db = shutil.copy(FIXTURES / "schema2.db", tmp_path / "old.db")
    _raw(
        db,
        "UPDATE procedures SET ended_at = '2026-03-27 09:09:31' WHERE rowid = 1",
        "UPDATE procedures SET ended_at = '2026-03-28T09:09:31+00:00' WHERE rowid = 2",
        "UPDATE procedures SET ended_at = NULL, procedure_min = 'n/a' WHERE rowid = 3",
    )
    with Store.open(db, "tester") as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = store.conn.execute(
            "SELECT procedure_min FROM procedures WHERE rowid IN (1, 2, 3) ORDER BY rowid"
        ).fetchall()
        assert rows[0][0] == 571 / 60  # read despite the space: 09:00:00 → 09:09:31
        assert rows[1][0] == 572 / 60  # offset vs no offset: from the old 9 min 31.7 s
        assert rows[2][0] == "n/a"  # not a number: left as it was
        assert reportcache.check(store.conn) == []


def test_info_check_on_an_older_file_says_so(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sma_log.cli import main

    db = shutil.copy(FIXTURES / "schema2.db", tmp_path / "old.db")
    db.chmod(0o400)
    result = CliRunner().invoke(main, ["--db", str(db), "info", "--check"])
    assert result.exit_code == 1, result.output
    assert "older schema" in result.output and "Traceback" not in result.output


def test_check_and_load_report_leave_the_connection_as_they_found_it(demo_db: Path) -> None:
    conn = sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True)  # Python's default mode
    try:
        assert reportcache.check(conn) == []
        assert not conn.in_transaction
        conn.execute("BEGIN")
        reportcache.load_report(conn, "approach")  # inside the caller's transaction
        assert conn.in_transaction
        conn.rollback()
    finally:
        conn.close()
