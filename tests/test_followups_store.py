"""Follow-ups through the Store on real files, with the clock travelling (never sleeping)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from factories import SETUP

from sma_log.domain import schedule
from sma_log.domain.clock import Clock, from_text
from sma_log.domain.fields import ValidationError
from sma_log.storage.errors import Conflict
from sma_log.storage.schema import SCHEMA_VERSION
from sma_log.storage.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
ROME = "Europe/Rome"
#: Every adverse-event question of the 72-hour call answered "no" (a call is done
#: only with all of them, issue 9).
NO_AE = schedule.NO_ADVERSE_EVENTS


@pytest.fixture
def travel() -> Iterator[Any]:
    def go(dt: pendulum.DateTime) -> None:
        pendulum.travel_to(dt, freeze=True)

    yield go
    pendulum.travel_back()


def _ended(store: Store, code: str = "FU-001") -> str:
    pt = store.create_patient({"study_code": code})
    pid = store.start_procedure(pt["id"], SETUP)
    for kind in ("attempt", "csf", "injection_start", "injection_end"):
        store.record(pid, kind)
    store.end_procedure(pid, {"drug_delivered": "yes"})
    return pid


def _without(values: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != name}


def _day3(store: Store, proc_id: str) -> dict[str, Any]:
    row = store.one("SELECT * FROM followups WHERE procedure_id = ? AND kind = 'day3'", (proc_id,))
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("end_local", "due_local"),
    [
        # spring forward (29 Mar 2026): 72 elapsed hours end at 11:00 local
        ((2026, 3, 27, 10, 0), "2026-03-30 11:00"),
        # fall back (25 Oct 2026): 72 elapsed hours end at 09:00 local
        ((2026, 10, 23, 10, 0), "2026-10-26 09:00"),
    ],
)
def test_day3_due_is_72_elapsed_hours_across_daylight_saving(
    tmp_path: Path, travel: Any, end_local: tuple[int, ...], due_local: str
) -> None:
    end = pendulum.datetime(*end_local, tz=ROME)
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        row = _day3(store, pid)
        due = from_text(row["due_at"])
        assert (due - end).total_seconds() == 72 * 3600
        assert due.in_timezone(ROME).format("YYYY-MM-DD HH:mm") == due_local
        five = store.one(
            "SELECT due_at FROM followups WHERE procedure_id = ? AND kind = 'score_5min'",
            (pid,),
        )
        assert five is not None
        assert (from_text(five["due_at"]) - end).total_seconds() == 300


def test_status_turns_upcoming_due_overdue_missed_as_the_clock_travels(
    tmp_path: Path, travel: Any
) -> None:
    end = pendulum.datetime(2026, 3, 27, 10, 0, tz=ROME)
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        fid = _day3(store, pid)["id"]

        def status() -> str:
            return next(i.status for i in store.followup_queue() if i.id == fid)

        assert status() == "upcoming"
        travel(end.add(hours=61))  # window opens 12 h before the due time
        assert status() == "due"
        travel(end.add(hours=73))
        assert status() == "overdue"
        travel(end.add(hours=72 + 25))  # window closes 24 h after
        assert status() == "missed"


def test_queue_orders_overdue_then_due_then_upcoming_then_missed(
    tmp_path: Path, travel: Any
) -> None:
    now = pendulum.datetime(2026, 5, 10, 12, 0, tz="UTC")
    path = tmp_path / "t.db"
    for code, hours_ago in (("MISSED", 120), ("UPCOMING", 10), ("OVERDUE", 80), ("DUE", 66)):
        end = now.subtract(hours=hours_ago)
        travel(end)
        with Store.open(path, "nurse", clock=Clock(monotonic=False)) as store:
            pid = _ended(store, code)
            travel(end.add(minutes=5))  # the 5-minute score, in its window
            store.set_score(pid, 5)  # leave only the 72-hour calls
    travel(now)
    with Store.open(path, "nurse", clock=Clock(monotonic=False)) as store:
        queue = store.followup_queue()
        assert [(i.row["study_code"], i.status) for i in queue] == [
            ("OVERDUE", "overdue"),
            ("DUE", "due"),
            ("UPCOMING", "upcoming"),
            ("MISSED", "missed"),
        ]


def test_no_answer_twice_then_a_score(tmp_path: Path, travel: Any) -> None:
    end = pendulum.datetime(2026, 5, 1, 9, 0, tz="UTC")
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse-a", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        fid = _day3(store, pid)["id"]
        travel(end.add(hours=70))
        assert store.record_no_answer(fid) == 1
        travel(end.add(hours=71))
        assert store.record_no_answer(fid) == 2
        assert [i.id for i in store.followup_queue()].count(fid) == 1  # still queued
        travel(end.add(hours=72, minutes=30))
        row = store.complete_followup(
            fid, {**NO_AE, "satisfaction": "5", "pdph": "no", "assessor": "nurse-a"}
        )
        assert row["state"] == "done" and row["late"] == 0
        assert row["contact_attempts_n"] == 2 and row["satisfaction"] == 5
        calls = store.contact_attempts(fid)
        assert [c["outcome"] for c in calls] == ["no_answer", "no_answer"]
        assert fid not in [i.id for i in store.followup_queue()]


def test_editing_an_entered_followup_keeps_old_and_new_values_in_the_audit_log(
    tmp_path: Path, travel: Any
) -> None:
    end = pendulum.datetime(2026, 5, 1, 9, 0, tz="UTC")
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse-a", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        fid = _day3(store, pid)["id"]
        travel(end.add(hours=72))  # the call, in its window
        store.complete_followup(fid, {**NO_AE, "satisfaction": "4", "pdph": "no", "assessor": "A"})
        store.user = "nurse-b"
        travel(end.add(hours=73))
        store.complete_followup(
            fid,
            {
                **NO_AE,
                "satisfaction": "3",
                "pdph": "yes",
                "pdph_onset_hours": "20",
                "pdph_severity": "6",
                "pdph_treatment": "caffeine",
                "assessor": "A",
            },
        )
        audit = {
            r["field"]: r
            for r in store.audit_entries("followups", fid)
            if r["action"] == "update" and r["user"] == "nurse-b"
        }
        assert (audit["satisfaction"]["old_value"], audit["satisfaction"]["new_value"]) == (
            "4",
            "3",
        )
        assert (audit["pdph"]["old_value"], audit["pdph"]["new_value"]) == ("0", "1")
        assert audit["pdph_treatment"]["new_value"] == "caffeine"


def test_late_entry_is_allowed_and_flagged(tmp_path: Path, travel: Any) -> None:
    end = pendulum.datetime(2026, 5, 1, 9, 0, tz="UTC")
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        fid = _day3(store, pid)["id"]
        travel(end.add(days=6))
        row = store.complete_followup(fid, {**NO_AE, "satisfaction": 5, "assessor": "N"})
        assert row["state"] == "done" and row["late"] == 1 and row["early"] == 0


def test_not_reachable_and_declined_need_a_reason_and_can_be_reopened(tmp_path: Path) -> None:
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        fid = _day3(store, pid)["id"]
        with pytest.raises(ValidationError):
            store.close_followup(fid, "unreachable", "  ")
        store.close_followup(fid, "unreachable", "three calls, voicemail full")
        assert fid not in [i.id for i in store.followup_queue()]
        assert store.followup(fid)["closed_reason"] == "three calls, voicemail full"
        with pytest.raises(Conflict):
            store.record_no_answer(fid)
        store.reopen_followup(fid)
        assert fid in [i.id for i in store.followup_queue()]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"satisfaction": "0", "assessor": "N"}, "satisfaction"),
        ({"satisfaction": "6", "assessor": "N"}, "satisfaction"),
        ({"back_pain_nrs": "11", "assessor": "N"}, "back_pain_nrs"),
        ({"pdph": "yes", "pdph_onset_hours": "-3", "assessor": "N"}, "pdph_onset_hours"),
        ({**NO_AE, "satisfaction": "5"}, "assessor"),
        ({**NO_AE, "assessor": "N"}, "satisfaction"),  # a call without its score is not "done"
        (
            {**_without(NO_AE, "pdph"), "satisfaction": "5", "assessor": "N"},
            "pdph",
        ),
        (
            {**_without(NO_AE, "back_pain_nrs"), "satisfaction": "5", "assessor": "N"},
            "back_pain_nrs",
        ),
        (
            {**_without(NO_AE, "other_event_any"), "satisfaction": "5", "assessor": "N"},
            "other_event_any",
        ),
        (
            {
                **_without(NO_AE, "other_event_any"),
                "satisfaction": "5",
                "other_event": "fainted",
                "assessor": "N",
            },
            "other_event_serious",
        ),
    ],
)
def test_bad_followup_values_are_refused_and_nothing_is_saved(
    tmp_path: Path, travel: Any, values: dict[str, Any], field: str
) -> None:
    end = pendulum.datetime(2026, 5, 1, 9, 0, tz="UTC")
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        fid = _day3(store, pid)["id"]
        travel(end.add(hours=72))  # in the window: refused for its values, not its time
        before = store.counts()["audit_log"]
        with pytest.raises(ValidationError) as err:
            store.complete_followup(fid, values)
        assert err.value.field == field
        assert store.counts()["audit_log"] == before
        assert store.followup(fid)["state"] == "open"


def test_a_followup_of_a_procedure_still_open_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pt = store.create_patient({"study_code": "OPEN-1"})
        pid = store.start_procedure(pt["id"], SETUP)
        # As an import from another laptop could bring it: a follow-up row for an open one.
        store.conn.execute(
            "INSERT INTO followups(id, procedure_id, kind, due_at, state, created_at, "
            "updated_at) VALUES ('F1', ?, 'day3', '2026-01-01T00:00:00.000000Z', 'open', "
            "'x', 'x')",
            (pid,),
        )
        with pytest.raises(Conflict, match="has not ended"):
            store.complete_followup("F1", {**NO_AE, "satisfaction": 5, "assessor": "N"})
        with pytest.raises(Conflict, match="has not ended"):
            store.record_no_answer("F1")


def test_the_bedside_score_closes_the_5_minute_followup(tmp_path: Path, travel: Any) -> None:
    end = pendulum.datetime(2026, 5, 1, 9, 0, tz="UTC")
    travel(end)
    with Store.open(tmp_path / "t.db", "nurse", clock=Clock(monotonic=False)) as store:
        pid = _ended(store)
        assert {i.row["kind"] for i in store.followup_queue()} == {"score_5min", "day3"}
        travel(end.add(minutes=5))  # the 5-minute score, in its window
        store.set_score(pid, 4)
        assert {i.row["kind"] for i in store.followup_queue()} == {"day3"}
        five = store.one("SELECT * FROM followups WHERE kind = 'score_5min'")
        assert five is not None and five["state"] == "done" and five["satisfaction"] == 4
        assert (five["early"], five["late"], five["offset_min"]) == (0, 0, 5.0)


def test_schema1_file_migrates_with_a_backup_and_nothing_lost(tmp_path: Path) -> None:
    src = FIXTURES / "schema1.db"
    db = tmp_path / "old.db"
    shutil.copyfile(src, db)
    before = sqlite3.connect(src)
    counts = {
        t: before.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("patients", "procedures", "attempts", "events", "audit_log")
    }
    before.close()
    with Store.open(db, "nurse", clock=Clock(monotonic=False)) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.backup is not None and store.backup.exists()
        assert store.backup.stat().st_mode & 0o777 == 0o600
        for table, n in counts.items():
            if table != "audit_log":
                assert store.counts()[table] == n
        # Ended procedures got their follow-ups; the one scored at 5 min is done.
        rows = store.query(
            "SELECT p.satisfaction_5min, f.kind, f.state FROM followups f "
            "JOIN procedures p ON p.id = f.procedure_id"
        )
        assert len(rows) == 2 * 3
        for r in rows:
            if r["kind"] == "score_5min":
                assert r["state"] == ("done" if r["satisfaction_5min"] else "open")
        assert len(store.open_procedures()) == 1
    old = sqlite3.connect(store.backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    old.close()
