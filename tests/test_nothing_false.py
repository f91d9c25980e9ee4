"""Issue 9 through the Store: a record says what happened and when it happened.

Real files, the real Store, the clock travelling (pendulum + time-machine), never
sleeping. The UI side of the same rules is in the Pilot tests of the screens.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from factories import SETUP

from sma_log.domain import schedule, stats, timeline
from sma_log.domain.clock import Clock, from_text
from sma_log.domain.fields import ValidationError
from sma_log.storage import reportcache
from sma_log.storage.errors import Conflict
from sma_log.storage.store import Store

T0 = pendulum.datetime(2026, 3, 27, 9, 0, tz="UTC")
FIXTURES = Path(__file__).parent / "fixtures"
ANSWERS = {**schedule.NO_ADVERSE_EVENTS, "satisfaction": 5, "assessor": "RN Bianchi"}


@pytest.fixture
def at() -> Iterator[Any]:
    """``at(dt)``: the wall clock (and so the Store's) frozen at ``dt``."""

    def go(dt: pendulum.DateTime) -> None:
        pendulum.travel_to(dt, freeze=True)

    go(T0)
    yield go
    pendulum.travel_back()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "t.db", "tester", clock=Clock(monotonic=False))
    try:
        yield s
    finally:
        s.close()


def _ended(store: Store, at: Any, code: str = "NF-001", start: pendulum.DateTime = T0) -> str:
    """A delivered procedure from ``start``; ends 8 minutes later."""
    at(start)
    pt = store.find_patient(code) or store.create_patient({"study_code": code})
    pid = store.start_procedure(pt["id"], SETUP)
    for i, kind in enumerate(("attempt", "csf", "injection_start", "injection_end")):
        at(start.add(minutes=2 + i))
        store.record(pid, kind)
    at(start.add(minutes=8))
    store.end_procedure(pid, {"drug_delivered": "yes"})
    return pid


def _fu(store: Store, pid: str, kind: str) -> dict[str, Any]:
    row = store.one("SELECT * FROM followups WHERE procedure_id = ? AND kind = ?", (pid, kind))
    assert row is not None
    return row


def _figure(store: Store, key: str) -> Any:
    return reportcache.load_report(store.conn).overall.figure(key).value


# ---------------------------------------------------------------- 1. cancel a mistaken start
def test_a_start_cancelled_before_the_first_puncture_counts_in_no_figure(
    store: Store, at: Any
) -> None:
    delivered = _ended(store, at, "NF-001")
    at(T0.add(hours=1))
    pt = store.create_patient({"study_code": "NF-002"})
    mistaken = store.start_procedure(pt["id"], SETUP)
    at(T0.add(hours=1, seconds=20))
    view = store.cancel_procedure(mistaken, "wrong patient chosen")
    assert view.row["status"] == "cancelled"
    assert view.row["cancelled_at"] == "2026-03-27T10:00:20.000000Z"
    assert view.state.cancelled and view.events[-1].kind == "cancel"
    row = store.one("SELECT * FROM procedures WHERE id = ?", (mistaken,))
    assert row is not None and row["drug_delivered"] is None and row["ended_at"] is None
    # kept, audited with who and when, never deleted
    audit = store.audit_entries("procedures", mistaken)
    assert any(
        a["field"] == "status" and a["new_value"] == "cancelled" and a["user"] == "tester"
        for a in audit
    )
    assert store.one("SELECT recorded_by FROM events WHERE kind = 'cancel'") == {
        "recorded_by": "tester"
    }
    # no follow-up, no next dose, not a failure, no open procedure left
    assert store.query("SELECT * FROM followups WHERE procedure_id = ?", (mistaken,)) == []
    assert store.next_dose(pt["id"]) is None
    assert store.open_procedures() == []
    assert _figure(store, "success") == stats.Count(1, 1)
    assert _figure(store, "procedures") == 1
    report = reportcache.load_report(store.conn)
    assert report.quality == {"cancelled": 1}
    assert (
        "Cancelled before the first skin puncture (in no figure): 1" in (report.quality_lines()[0])
    )
    assert reportcache.check(store.conn) == []
    # the same patient can start again at once
    assert store.start_procedure(pt["id"], SETUP)
    assert delivered


def test_no_cancel_after_the_first_puncture_and_nothing_after_a_cancel(
    store: Store, at: Any
) -> None:
    pt = store.create_patient({"study_code": "NF-003"})
    pid = store.start_procedure(pt["id"], SETUP)
    store.record(pid, "attempt")
    with pytest.raises(timeline.RuleError, match="cannot be cancelled"):
        store.cancel_procedure(pid)
    assert store.load_procedure(pid).row["status"] == "open"
    # an attempt keyed by mistake and undone: nothing went in, the start can be cancelled
    store.undo(pid)
    store.cancel_procedure(pid)
    for action in (
        lambda: store.cancel_procedure(pid),
        lambda: store.record(pid, "attempt"),
        lambda: store.undo(pid),
        lambda: store.end_procedure(pid, {"drug_delivered": "no", "failure_reason": "x"}),
    ):
        with pytest.raises((timeline.RuleError, ValidationError)):
            action()
    assert store.load_procedure(pid).row["status"] == "cancelled"
    ended = _ended(store, at, "NF-004", T0.add(days=1))
    with pytest.raises(timeline.RuleError, match="has ended"):
        store.cancel_procedure(ended)


# ---------------------------------------------------------------- 2. scores taken when due
def test_the_5_minute_score_3_seconds_after_the_end_needs_a_confirmation(
    store: Store, at: Any
) -> None:
    pid = _ended(store, at)
    end = T0.add(minutes=8)
    due = store.score_due(pid)
    assert (due.ended_at, due.opens_at, due.due_at) == (
        end,
        end.add(minutes=4),
        end.add(minutes=5),
    )
    at(end.add(seconds=3))
    with pytest.raises(schedule.TooEarly) as refused:
        store.set_score(pid, 5)
    assert refused.value.opens_at == end.add(minutes=4)
    assert "4:00 min after the end" in str(refused.value)
    assert store.one("SELECT satisfaction_5min FROM procedures WHERE id = ?", (pid,)) == {
        "satisfaction_5min": None
    }
    assert _fu(store, pid, "score_5min")["state"] == "open"
    # confirmed: recorded, flagged early, with when it was taken
    store.set_score(pid, 5, early_ok=True)
    fu = _fu(store, pid, "score_5min")
    assert (fu["state"], fu["early"], fu["late"]) == ("done", 1, 0)
    assert fu["completed_at"] == "2026-03-27T09:08:03.000000Z"
    assert fu["offset_min"] == pytest.approx(3 / 60)
    # left out of the satisfaction figure, counted on its own line
    assert _figure(store, "satisfaction_5min").n == 0
    assert _figure(store, "score_5min_early") == stats.Count(1, 1)


def test_a_score_in_its_window_is_on_time_and_a_late_one_is_flagged(store: Store, at: Any) -> None:
    on_time = _ended(store, at, "NF-010")
    at(T0.add(minutes=12))  # 4:00 after the end: the window opens (boundary included)
    store.set_score(on_time, 4)
    late = _ended(store, at, "NF-011", T0.add(days=1))
    at(T0.add(days=1, minutes=8, hours=2, seconds=301))  # past 5 min + 2 h
    store.set_score(late, 2)
    assert (
        _fu(store, on_time, "score_5min")["early"],
        _fu(store, on_time, "score_5min")["late"],
    ) == (0, 0)
    assert _fu(store, on_time, "score_5min")["offset_min"] == 4.0
    assert _fu(store, late, "score_5min")["late"] == 1
    sat = _figure(store, "satisfaction_5min")
    assert (sat.n, sat.mean) == (1, 4.0)
    assert _figure(store, "score_5min_late") == stats.Count(1, 2)
    assert reportcache.check(store.conn) == []


def test_the_earliest_score_is_a_setting(store: Store, at: Any) -> None:
    pid = _ended(store, at)
    store.set_score_earliest(2)
    assert store.score_due(pid).opens_at == T0.add(minutes=10)
    at(T0.add(minutes=10, seconds=1))
    store.set_score(pid, 5)
    assert _fu(store, pid, "score_5min")["early"] == 0
    with pytest.raises(ValueError):
        schedule.score_window(6)


def test_a_72_hour_follow_up_before_its_window_is_refused_with_its_opening(
    store: Store, at: Any
) -> None:
    pid = _ended(store, at)
    end = T0.add(minutes=8)
    fid = _fu(store, pid, "day3")["id"]
    at(end.add(hours=3))  # "done today": days before it is due
    with pytest.raises(schedule.TooEarly) as refused:
        store.complete_followup(fid, ANSWERS)
    assert refused.value.opens_at == end.add(hours=60)
    assert _fu(store, pid, "day3")["state"] == "open"
    store.complete_followup(fid, ANSWERS, early_ok=True)
    fu = _fu(store, pid, "day3")
    assert (fu["state"], fu["early"], fu["offset_min"]) == ("done", 1, 180.0)
    assert _figure(store, "satisfaction_72h").n == 0
    assert _figure(store, "followup_72h_early") == stats.Count(1, 1)
    # adverse events are facts whenever they were asked: they count
    assert _figure(store, "pdph") == stats.Count(0, 1)


def test_a_72_hour_follow_up_in_its_window_counts(store: Store, at: Any) -> None:
    pid = _ended(store, at)
    at(T0.add(minutes=8, hours=60))  # the window opens 12 h before the 72-h mark
    store.complete_followup(_fu(store, pid, "day3")["id"], ANSWERS)
    fu = _fu(store, pid, "day3")
    assert (fu["early"], fu["late"], fu["offset_min"]) == (0, 0, 3600.0)
    sat = _figure(store, "satisfaction_72h")
    assert (sat.n, sat.mean) == (1, 5.0)


# ---------------------------------------------------------------- 5. unknown is not no
@pytest.mark.parametrize(
    "missing", ["back_pain_nrs", "radicular_pain", "nausea_vomiting", "other_event_any", "pdph"]
)
def test_a_72_hour_follow_up_is_done_only_with_every_item(
    store: Store, at: Any, missing: str
) -> None:
    pid = _ended(store, at)
    at(T0.add(hours=72))
    fid = _fu(store, pid, "day3")["id"]
    values = {k: v for k, v in ANSWERS.items() if k != missing}
    with pytest.raises(ValidationError) as refused:
        store.complete_followup(fid, values)
    assert refused.value.field == missing
    assert _fu(store, pid, "day3")["state"] == "open"


def test_other_event_answers_hang_together(store: Store, at: Any) -> None:
    pid = _ended(store, at)
    at(T0.add(hours=72))
    fid = _fu(store, pid, "day3")["id"]
    base = {k: v for k, v in ANSWERS.items() if k != "other_event_any"}
    with pytest.raises(ValidationError, match="Describe"):
        store.complete_followup(fid, {**base, "other_event_any": "yes"})
    with pytest.raises(ValidationError, match="leave this empty"):
        store.complete_followup(
            fid,
            {**base, "other_event_any": "no", "other_event": "fever", "other_event_serious": "no"},
        )
    # describing an event answers "yes"
    store.complete_followup(fid, {**base, "other_event": "fever", "other_event_serious": "no"})
    fu = _fu(store, pid, "day3")
    assert (fu["other_event_any"], fu["other_event"], fu["other_event_serious"]) == (1, "fever", 0)
    assert _figure(store, "other_event") == stats.Count(1, 1)


def test_an_unanswered_question_leaves_the_denominator(tmp_path: Path) -> None:
    """The schema-3 fixture holds a 72-h follow-up done with other events never asked:
    after the migration it is unknown, not "no" (before: counted as no)."""
    path = tmp_path / "old.db"
    shutil.copy2(FIXTURES / "schema3.db", path)
    with Store.open(path, "migrator", clock=Clock(monotonic=False)) as s:
        report = reportcache.load_report(s.conn)
        fig = report.overall
        # two 72-h follow-ups done: one answered the other-event question (yes), one did not
        assert fig.figure("followup_done").value.n == 2
        assert fig.figure("other_event").value == stats.Count(1, 1)
        assert fig.figure("back_pain").value == stats.Count(1, 1)  # asked once (NRS 1)
        assert fig.figure("pdph").value == stats.Count(0, 2)
        patient = reportcache.load_report(s.conn, unit="patient").overall
        assert patient.figure("other_event").value == stats.Count(1, 1)


# ---------------------------------------------------------------- 4. undo in the queue
def test_a_no_answer_call_can_be_undone_and_stays_in_the_audit_log(store: Store, at: Any) -> None:
    pid = _ended(store, at)
    fid = _fu(store, pid, "day3")["id"]
    at(T0.add(hours=70))
    store.record_no_answer(fid)
    at(T0.add(hours=71))
    assert store.record_no_answer(fid) == 2
    at(T0.add(hours=71, minutes=1))
    assert store.undo_no_answer(fid) == 1
    fu = _fu(store, pid, "day3")
    assert (fu["contact_attempts_n"], fu["last_contact_at"]) == (1, "2026-03-30T07:00:00.000000Z")
    calls = store.contact_attempts(fid)
    assert [from_text(c["at"]) for c in calls] == [T0.add(hours=70)]
    voided = store.one("SELECT * FROM contact_attempts WHERE voided_at IS NOT NULL")
    assert voided is not None and voided["at"] == "2026-03-30T08:00:00.000000Z"
    assert any(a["field"] == "voided_at" for a in store.audit_entries("contact_attempts"))
    assert store.undo_no_answer(fid) == 0
    with pytest.raises(Conflict, match="No call"):
        store.undo_no_answer(fid)


# ---------------------------------------------------------------- migration 4
def test_schema3_file_migrates_with_offsets_flags_and_an_audit(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy2(FIXTURES / "schema3.db", path)
    with Store.open(path, "migrator", clock=Clock(monotonic=False)) as s:
        rows = s.query(
            "SELECT pt.study_code, p.started_at, f.kind, f.early, f.offset_min, f.other_event_any "
            "FROM followups f JOIN procedures p ON p.id = f.procedure_id "
            "JOIN patients pt ON pt.id = p.patient_id WHERE f.state = 'done' "
            "ORDER BY p.started_at, f.kind"
        )
        got = [(r["kind"], r["early"], r["offset_min"], r["other_event_any"]) for r in rows]
        assert got == [
            ("day3", 1, 120.0, 1),  # answered 2 h after the end, another event described
            ("score_5min", 1, 0.05, None),  # pressed 3 s after the end
            ("day3", 0, 72 * 60 + 30, None),  # on time; other events never asked
            ("score_5min", 0, 6.0, None),
            ("score_5min", 0, 400 / 60, None),
        ]
        audit = sorted(
            (a["field"], a["new_value"])
            for a in s.audit_entries(limit=-1)
            if a["user"] == "migration" and a["field"] != "*"
        )
        assert audit == [
            ("early", "1"),
            ("early", "1"),
            ("other_event_any", "1"),
        ]
        assert reportcache.stored_version(s.conn) == reportcache.definition_version()
        assert reportcache.check(s.conn) == []
        report = reportcache.load_report(s.conn).overall
        assert report.figure("score_5min_early").value == stats.Count(1, 3)
        assert report.figure("satisfaction_5min").value.n == 2
        # an undo of the no-answer call left by schema 3 works on the migrated file
        open_fu = s.one("SELECT id FROM followups WHERE state = 'open' AND kind = 'day3'")
        assert open_fu is not None
        assert s.undo_no_answer(open_fu["id"]) == 0


# ---------------------------------------------------------------- report definitions
def test_caches_built_by_other_definitions_are_rebuilt_on_open(store: Store, at: Any) -> None:
    pid = _ended(store, at)
    at(T0.add(minutes=13))
    store.set_score(pid, 5)
    path = store.path
    store.conn.execute(
        "UPDATE meta SET value = 'older-rules' WHERE key = ?", (reportcache.META_KEY,)
    )
    store.conn.execute("DELETE FROM report_facts")  # what older rules left would not match
    store.close()
    # read-only: the report is computed from the tables by this code's rules
    with Store.open(path, "reader", readonly=True) as ro:
        assert reportcache.load_report(ro.conn).overall.figure("satisfaction_5min").value.n == 1
    # opened for writing: rebuilt once, and marked with this code's version
    with Store.open(path, "writer") as rw:
        assert reportcache.stored_version(rw.conn) == reportcache.definition_version()
        assert reportcache.check(rw.conn) == []
        assert reportcache.load_report(rw.conn).overall.figure("satisfaction_5min").value.n == 1


def test_an_older_json_export_gets_the_timing_migration_4_gives(
    store: Store, at: Any, tmp_path: Path
) -> None:
    """A schema-3 JSON export has no early/offset/other-event answer: import judges its
    follow-ups by the rule migration 4 applies to a file's own rows."""
    import json

    from sma_log.export.jsondoc import write_json
    from sma_log.importer import import_file

    pid = _ended(store, at)
    at(T0.add(minutes=8, seconds=3))
    store.set_score(pid, 5, early_ok=True)
    at(T0.add(hours=72))
    store.complete_followup(
        _fu(store, pid, "day3")["id"],
        {**ANSWERS, "other_event_any": "yes", "other_event": "fever", "other_event_serious": "no"},
    )
    out = tmp_path / "v4.json"
    write_json(store, out, identifiers=True)
    doc = json.loads(out.read_text(encoding="utf-8"))
    doc["schema_version"] = 3
    for row in doc["tables"]["followups"]:
        for key in ("early", "offset_min", "other_event_any"):
            del row[key]
    old = tmp_path / "v3.json"
    old.write_text(json.dumps(doc), encoding="utf-8")
    with Store.open(tmp_path / "new.db", "importer", clock=Clock(monotonic=False)) as new:
        result = import_file(new, old)
        assert not result.conflicts
        got = {
            r["kind"]: (r["early"], r["offset_min"], r["other_event_any"])
            for r in new.query("SELECT * FROM followups")
        }
        assert got == {"score_5min": (1, 0.05, None), "day3": (0, 72 * 60 - 8, 1)}
        # and importing the same file again changes nothing
        again = import_file(new, old)
        assert not again.conflicts


@pytest.mark.parametrize(("text", "expected"), [("2.5", 2.5), ("6.0", None), ("-1.0", None)])
def test_a_hand_edited_earliest_score_outside_0_to_5_is_refused(
    tmp_path: Path, text: str, expected: float | None
) -> None:
    """Outside 0-5 the file is refused in one line naming the key (it used to be
    silently replaced by the default 4; issue 11)."""
    from sma_log.config import Settings, SettingsRefused

    path = tmp_path / "settings.json"
    path.write_text(f'{{"score_earliest_min": {text}}}', encoding="utf-8")
    if expected is None:
        with pytest.raises(SettingsRefused, match=r'"score_earliest_min": .* is outside 0-5'):
            Settings.load(path)
    else:
        assert Settings.load(path).score_earliest_min == expected


# ---------------------------------------------------------------- found in review
def _export(store: Store, tmp_path: Path, name: str = "doc.json") -> dict[str, Any]:
    import json

    from sma_log.export.jsondoc import write_json

    out = tmp_path / name
    write_json(store, out, identifiers=True)
    return json.loads(out.read_text(encoding="utf-8"))


def _import(doc: dict[str, Any], tmp_path: Path, name: str = "in.json") -> Any:
    import json

    from sma_log.importer import import_file

    src = tmp_path / name
    src.write_text(json.dumps(doc), encoding="utf-8")
    target = Store.open(tmp_path / f"{name}.db", "importer", clock=Clock(monotonic=False))
    return target, import_file(target, src)


def test_import_judges_when_a_follow_up_was_taken_from_its_instants(
    store: Store, at: Any, tmp_path: Path
) -> None:
    """A file claiming a 72-h call taken 1 hour after the end was on time (offset 4320)
    does not get into the in-window figure: timing is computed, never taken."""
    pid = _ended(store, at)
    at(T0.add(hours=70))
    store.complete_followup(_fu(store, pid, "day3")["id"], ANSWERS)
    doc = _export(store, tmp_path)
    for row in doc["tables"]["followups"]:
        if row["kind"] == "day3":
            row["completed_at"] = "2026-03-27T10:08:00.000000Z"  # 1 h after the end
            row["early"], row["offset_min"] = 0, 4320.0
    target, result = _import(doc, tmp_path)
    with target:
        fu = target.one("SELECT early, late, offset_min FROM followups WHERE kind = 'day3'")
        assert fu == {"early": 1, "late": 0, "offset_min": 60.0}
        assert any(r.table == "followups" for r in result.recomputed)
        assert reportcache.load_report(target.conn).overall.figure("satisfaction_72h").value.n == 0


def test_a_refused_call_refuses_its_procedure_not_just_the_72_hour_call(
    store: Store, at: Any, tmp_path: Path
) -> None:
    pid = _ended(store, at)
    at(T0.add(hours=71))
    store.record_no_answer(_fu(store, pid, "day3")["id"])
    doc = _export(store, tmp_path)
    doc["tables"]["contact_attempts"][0]["note"] = "rang \x1b[2J twice"
    target, result = _import(doc, tmp_path)
    with target:
        assert result.refused
        # no ended procedure left without its 72-hour call: nothing of it is stored
        assert target.query("SELECT id FROM procedures") == []
        assert target.query("SELECT id FROM followups") == []


def test_an_outcome_on_a_cancelled_start_is_refused_and_moves_no_dose(
    store: Store, at: Any, tmp_path: Path
) -> None:
    delivered = _ended(store, at)
    at(T0.add(days=20))
    pt = store.find_patient("NF-001")
    assert pt is not None
    mistaken = store.start_procedure(pt["id"], SETUP)
    store.cancel_procedure(mistaken)
    due = store.next_dose(pt["id"], today=pendulum.date(2026, 4, 20))
    assert due is not None
    doc = _export(store, tmp_path)
    for row in doc["tables"]["procedures"]:
        if row["id"] == mistaken:
            row["drug_delivered"] = 1
    target, result = _import(doc, tmp_path)
    with target:
        assert any(r.field == "drug_delivered" for r in result.refused)
        assert target.one("SELECT count(*) AS n FROM procedures WHERE status = 'cancelled'") == {
            "n": 0
        }
    # and a cancelled row another tool marked delivered moves no dose either
    store.conn.execute("UPDATE procedures SET drug_delivered = 1 WHERE id = ?", (mistaken,))
    again = store.next_dose(pt["id"], today=pendulum.date(2026, 4, 20))
    assert again is not None and again.due == due.due
    assert delivered


def test_a_reopened_score_taken_back_leaves_no_score_behind(store: Store, at: Any) -> None:
    pid = _ended(store, at)
    at(T0.add(minutes=14))
    store.set_score(pid, 4)
    fid = _fu(store, pid, "score_5min")["id"]
    store.reopen_followup(fid)
    store.close_followup(fid, "unreachable", "went home")
    row = store.one("SELECT satisfaction_5min FROM procedures WHERE id = ?", (pid,))
    assert row == {"satisfaction_5min": None}
    fu = _fu(store, pid, "score_5min")
    assert (fu["satisfaction"], fu["early"], fu["offset_min"]) == (None, 0, None)
    report = reportcache.load_report(store.conn).overall
    assert report.figure("score_5min_unknown").value.N == 0


def test_the_cancelled_line_follows_the_report_s_filters(store: Store, at: Any) -> None:
    _ended(store, at)
    at(T0.add(days=1))
    pt = store.create_patient({"study_code": "NF-009"})
    mistaken = store.start_procedure(pt["id"], {**SETUP, "approach": "midline"})
    store.cancel_procedure(mistaken)
    assert reportcache.load_report(store.conn).quality == {"cancelled": 1}
    paramedian = reportcache.load_report(store.conn, where={"approach": "paramedian"})
    assert paramedian.quality == {"cancelled": 0}
    midline = reportcache.load_report(store.conn, where={"approach": ["midline"]})
    assert midline.quality == {"cancelled": 1}


def test_a_follow_up_done_before_schema_4_stays_done_correctable_and_importable(
    tmp_path: Path,
) -> None:
    """Its newer questions were never asked: unknown. It can be corrected without
    inventing "no" answers, and its file's own export imports whole."""
    path = tmp_path / "old.db"
    shutil.copy2(FIXTURES / "schema3.db", path)
    with Store.open(path, "migrator", clock=Clock(monotonic=False)) as s:
        old = s.one(
            "SELECT id FROM followups WHERE kind = 'day3' AND state = 'done' "
            "AND back_pain_nrs IS NULL"
        )
        assert old is not None
        s.complete_followup(old["id"], {"satisfaction": 3, "pdph": "no", "assessor": "RN B"})
        fixed = s.followup(old["id"])
        assert (fixed["satisfaction"], fixed["back_pain_nrs"], fixed["state"]) == (3, None, "done")
        before = reportcache.load_report(s.conn).as_dict()
        doc = _export(s, tmp_path)
    target, result = _import(doc, tmp_path)
    with target:
        assert not result.refused
        after = reportcache.load_report(target.conn).as_dict()
    assert after["overall"] == before["overall"]
