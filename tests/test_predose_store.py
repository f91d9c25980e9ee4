"""Issue 14, storage: labs, time-outs and drug times in a real file; migration 6."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from conftest import T0, VALID_SETUP

from sma_log.domain import fields, predose, timeline
from sma_log.domain.clock import Clock, to_text
from sma_log.storage import predose as sp
from sma_log.storage.errors import Conflict
from sma_log.storage.schema import SCHEMA_VERSION
from sma_log.storage.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
US = predose.Rules(required=predose.PRESETS["us"], label="us")
ITEMS = {"consent": "yes", "skin": "intact", "antithrombotic": "none", "vp_shunt": "no"}


@pytest.fixture
def at() -> Iterator[Any]:
    def move(minutes: float) -> None:
        pendulum.travel_to(T0.add(seconds=int(minutes * 60)), freeze=True)

    move(0)
    yield move
    pendulum.travel_back()


@pytest.fixture
def proc(store: Store, at: Any) -> tuple[str, str]:
    patient = store.create_patient({"study_code": "P-1"})
    return patient["id"], store.start_procedure(patient["id"], VALID_SETUP)


def audit(store: Store, table: str) -> list[dict[str, Any]]:
    # the decoded log (schema 5 stores old values only; audit_entries gives old and new)
    return [dict(e) for e in store.audit_entries(table, limit=100_000)]


def test_add_lab_validates_stores_and_audits(store: Store, proc: tuple[str, str]) -> None:
    patient_id, _ = proc
    row = sp.add_lab(store, patient_id, "platelets", "250", "2026-03-20", source="bedside")
    assert (row["test"], row["value"], row["unit"], row["taken_on"]) == (
        "platelets",
        250.0,
        "10^9/L",
        "2026-03-20",
    )
    assert [a["action"] for a in audit(store, "labs")] == ["insert"]
    for args, field in (
        (("platelets", "-3", "2026-03-20"), "value"),
        (("platelets", "100", "2026-03-28"), "taken_on"),  # T0 is 2026-03-27
    ):
        with pytest.raises(fields.ValidationError) as bad:
            sp.add_lab(store, patient_id, *args)
        assert bad.value.field == field
    with pytest.raises(fields.ValidationError, match="older than the site's limit"):
        sp.add_lab(
            store, patient_id, "pt", "12", "2026-01-01", rules=predose.Rules(lab_max_age_days=30)
        )
    assert len(sp.patient_labs(store, patient_id)) == 1  # nothing else saved
    # the same result entered twice (a second tap, `labs add` run again): refused
    with pytest.raises(Conflict, match="already stored"):
        sp.add_lab(store, patient_id, "platelets", "250", "2026-03-20", source="cli")
    assert len(sp.patient_labs(store, patient_id)) == 1
    sp.void_lab(store, row["id"])
    assert sp.patient_labs(store, patient_id) == []
    assert audit(store, "labs")[-1]["field"] == "voided_at"
    # a voided result may be entered again (the mistake was the voiding)
    sp.add_lab(store, patient_id, "platelets", "250", "2026-03-20", source="cli")


def test_complete_timeout(store: Store, proc: tuple[str, str], at: Any) -> None:
    patient_id, proc_id = proc
    for test, value in (("platelets", 250), ("inr", 1.0), ("urine_protein", 0.1)):
        sp.add_lab(store, patient_id, test, value, "2026-03-26")
    view = sp.save_timeout(store, proc_id, ITEMS, US)
    assert view.check.complete and not view.check.needs_reason and not view.confirmed
    at(1)
    view = sp.confirm_timeout(store, proc_id, US)
    assert view.confirmed_at == T0.add(minutes=1)
    assert view.confirmed_by == "tester"
    row = view.row
    assert row is not None
    assert (row["complete"], row["missing"], row["flags"], row["reason"]) == (1, "", "", None)
    assert row["platelets_lab_id"] == view.labs["platelets"].id
    assert row["pt_lab_id"] is None and row["inr_lab_id"] == view.labs["inr"].id
    # a later result does not change what the confirmed time-out used
    sp.add_lab(store, patient_id, "platelets", 20, "2026-03-27")
    assert sp.timeout_view(store, proc_id, US).labs["platelets"].value == 250


def test_missing_item_needs_a_reason_stored_and_audited(
    store: Store, proc: tuple[str, str]
) -> None:
    patient_id, proc_id = proc
    sp.add_lab(store, patient_id, "urine_protein", "0.35", "2026-03-26")
    sp.save_timeout(store, proc_id, {"consent": "y", "skin": "intact"}, US)
    with pytest.raises(predose.ReasonNeeded) as refused:
        sp.confirm_timeout(store, proc_id, US)
    assert refused.value.missing == ("antithrombotic", "vp_shunt", "platelets", "coagulation")
    assert refused.value.flags == ("urine_protein",)
    assert sp.timeout_view(store, proc_id, US).confirmed_at is None  # nothing saved
    view = sp.confirm_timeout(store, proc_id, US, reason="Emergency: labs pending")
    row = view.row
    assert row is not None
    assert row["complete"] == 0
    assert row["missing"] == "antithrombotic,vp_shunt,platelets,coagulation"
    assert row["flags"] == "urine_protein"
    assert row["reason"] == "Emergency: labs pending"
    fields_audited = {a["field"] for a in audit(store, "timeouts")}
    assert {"reason", "missing", "flags", "confirmed_at"} <= fields_audited


def test_unknown_stays_unknown(store: Store, proc: tuple[str, str]) -> None:
    _, proc_id = proc
    view = sp.save_timeout(store, proc_id, {"consent": "yes"})
    assert view.items["vp_shunt"] is None and view.items["consent"] is True
    row = store.one("SELECT consent, vp_shunt, skin FROM timeouts")
    assert row == {"consent": 1, "vp_shunt": None, "skin": None}


def test_bad_item_saves_nothing(store: Store, proc: tuple[str, str]) -> None:
    _, proc_id = proc
    with pytest.raises(fields.ValidationError):
        sp.save_timeout(store, proc_id, {"consent": "y", "skin": "pink"})
    with pytest.raises(fields.ValidationError, match="in the future"):
        sp.save_timeout(
            store,
            proc_id,
            {"antithrombotic": "anticoagulant", "antithrombotic_last_at": T0.add(hours=2)},
        )
    assert store.one("SELECT count(*) AS n FROM timeouts") == {"n": 0}


def test_changing_an_answer_unconfirms(store: Store, proc: tuple[str, str]) -> None:
    _, proc_id = proc
    sp.save_timeout(store, proc_id, ITEMS)
    assert sp.confirm_timeout(store, proc_id).confirmed
    assert sp.save_timeout(store, proc_id, ITEMS).confirmed  # the same answers: kept
    view = sp.save_timeout(store, proc_id, {"skin": "infected_inflamed"})
    assert not view.confirmed and view.check.flags == ("skin",)


def test_drug_times_by_key_and_entered(store: Store, proc: tuple[str, str], at: Any) -> None:
    _, proc_id = proc
    view = sp.record_drug_time(store, proc_id, "vial_out", T0.subtract(minutes=45))
    at(1)
    view = sp.record_drug_time(store, proc_id, "drawn_up")
    assert view.row["vial_out_at"] == to_text(T0.subtract(minutes=45))
    assert view.row["drawn_up_at"] == to_text(T0.add(minutes=1))
    view, undone = store.undo(proc_id)
    assert undone.kind == "drawn_up" and view.row["drawn_up_at"] is None
    with pytest.raises(timeline.RuleError, match="in the future"):
        sp.record_drug_time(store, proc_id, "drawn_up", T0.add(hours=1))
    sp.record_drug_time(store, proc_id, "drawn_up", T0.subtract(minutes=5))
    for minute, key in ((2, "attempt"), (3, "csf"), (4, "injection_start")):
        at(minute)
        store.record(proc_id, key)
    with pytest.raises(timeline.RuleError, match="after the injection start"):
        sp.record_drug_time(store, proc_id, "drawn_up")
    at(6)
    view = store.record(proc_id, "injection_end")
    assert view.row["injection_sec"] == 120.0
    assert view.row["drawn_to_injection_min"] == 9.0
    clock = predose.drug_clock(
        view.state.drug_times, "us", T0.add(minutes=6), 30, T0.add(minutes=4)
    )
    assert clock.status == "used"


def test_cancelled_procedure_timeout_refused(store: Store, proc: tuple[str, str]) -> None:
    _, proc_id = proc
    store.cancel_procedure(proc_id, "wrong patient")
    with pytest.raises(timeline.RuleError, match="cancelled"):
        sp.save_timeout(store, proc_id, ITEMS)


def test_schema4_file_migrates_to_6_deriving_only_the_injection_length(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy2(FIXTURES / "schema4_predose.db", path)
    before = sqlite3.connect(path)
    procs = before.execute("SELECT * FROM procedures ORDER BY id").fetchall()
    audit_n = before.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    before.close()
    with Store.open(path, "migrator", clock=Clock(monotonic=False)) as s:
        assert s.user_version() == SCHEMA_VERSION
        assert {"labs", "timeouts"} <= set(s.tables())
        rows = s.query("SELECT * FROM procedures ORDER BY id")
        new = ("vial_out_at", "drawn_up_at", "injection_sec", "drawn_to_injection_min")
        assert [tuple(v for k, v in r.items() if k not in new) for r in rows] == procs
        # no vial_out / drawn_up events yet: those three stay NULL ...
        assert all(r[c] is None for r in rows for c in new if c != "injection_sec")
        # ... but the injection's length is derived from what the procedure already had,
        # exactly as the Store derives it from the events (the reviewer found it NULL)
        for r in rows:
            derived = timeline.drug_columns(
                timeline.replay([e for e in s.load_procedure(r["id"]).events]),
                lambda at: at.isoformat(),
            )["injection_sec"]
            assert r["injection_sec"] == derived
        assert any(r["injection_sec"] is not None for r in rows)
        assert s.counts()["audit_log"] == audit_n  # the migration wrote no audit row
        assert s.backup is not None and s.backup.exists()
        # the old open procedure takes a time-out and drug times
        open_id = next(r["id"] for r in rows if r["status"] == "open")
        sp.save_timeout(s, open_id, ITEMS)
        assert sp.confirm_timeout(s, open_id).confirmed


def test_every_door_refuses_a_future_drug_time(store: Store, proc: tuple[str, str]) -> None:
    """The bedside key path (Store.record) and the import (records' replay) refuse an
    entered drawn-up time after the moment it was recorded."""
    from sma_log.domain import records

    _, proc_id = proc
    future = to_text(T0.add(minutes=30))
    with pytest.raises(timeline.RuleError, match="in the future"):
        store.record(proc_id, "drawn_up", future)
    assert store.load_procedure(proc_id).row["drawn_up_at"] is None
    events = [
        {"id": "01J0000000000000000000000A", "seq": 1, "kind": "start", "at": to_text(T0)},
        {
            "id": "01J0000000000000000000000B",
            "seq": 2,
            "kind": "drawn_up",
            "at": to_text(T0.add(minutes=1)),
            "value": future,
        },
    ]
    proc_row = {"id": "01J00000000000000000000000", "level_intended": "L3-L4"}
    refused = records.check_timeline(proc_row, events)[1]
    assert any("in the future" in r.reason for r in refused)


def test_a_drug_key_pressed_twice_records_once(store: Store, proc: tuple[str, str]) -> None:
    _, proc_id = proc
    sp.record_drug_time(store, proc_id, "vial_out")
    with pytest.raises(timeline.RuleError, match="already recorded at 09:00:00 UTC; u undoes"):
        sp.record_drug_time(store, proc_id, "vial_out")
    # an entered time still replaces it (latest wins)
    view = sp.record_drug_time(store, proc_id, "vial_out", T0.subtract(minutes=10))
    assert view.row["vial_out_at"] == to_text(T0.subtract(minutes=10))


def test_first_attempt_confirms_the_timeout_in_the_same_transaction(
    store: Store, proc: tuple[str, str], at: Any
) -> None:
    _, proc_id = proc
    sp.save_timeout(store, proc_id, {"consent": "y", "skin": "intact"})
    eu = predose.Rules(required=predose.PRESETS["eu"])
    with pytest.raises(predose.ReasonNeeded, match="missing anticoagulant/antiplatelet, VP"):
        sp.record_first_attempt(store, proc_id, eu)
    view = store.load_procedure(proc_id)
    assert view.state.attempts == [] and not sp.timeout_view(store, proc_id, eu).confirmed
    at(1)
    view = sp.record_first_attempt(store, proc_id, eu, reason="parents unsure about the shunt")
    assert view.state.attempt_count == 1
    timeout = sp.timeout_view(store, proc_id, eu)
    assert timeout.confirmed_at == T0.add(minutes=1) == view.state.attempts[0].at
    assert timeout.reason == "parents unsure about the shunt"
    at(2)  # later attempts: plain
    assert sp.record_first_attempt(store, proc_id, eu).state.attempt_count == 2


def test_first_attempt_with_nothing_required_writes_no_timeout(
    store: Store, proc: tuple[str, str]
) -> None:
    _, proc_id = proc
    none = predose.Rules(required=frozenset())
    sp.record_first_attempt(store, proc_id, none)
    assert store.one("SELECT count(*) AS n FROM timeouts") == {"n": 0}


def test_first_attempt_complete_timeout_adds_no_question(
    store: Store, proc: tuple[str, str]
) -> None:
    patient_id, proc_id = proc
    for test, value in (("platelets", 250), ("inr", 1.0), ("urine_protein", 0.1)):
        sp.add_lab(store, patient_id, test, value, "2026-03-26")
    sp.save_timeout(store, proc_id, ITEMS)
    view = sp.record_first_attempt(store, proc_id, US)
    timeout = sp.timeout_view(store, proc_id, US)
    assert view.state.attempt_count == 1 and timeout.confirmed and timeout.row is not None
    assert timeout.row["complete"] == 1 and timeout.reason is None
