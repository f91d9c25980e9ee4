"""Issue 14: labs, time-outs and drug times through every export, import and the report."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from conftest import T0, VALID_SETUP

from sma_log.domain import predose
from sma_log.domain.clock import Clock
from sma_log.export import csvfiles, jsondoc, redcap, sqlitecopy
from sma_log.export.common import ExportOptions
from sma_log.importer import import_file
from sma_log.storage import predose as stored
from sma_log.storage.store import Store

SECRET = "Mother refused the INR, asked for Dr Zebulon"
US = predose.Rules(required=predose.PRESETS["us"], label="us")


def rows(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT * FROM {table} ORDER BY id")
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Path]:
    """One patient, two ended procedures: one with a complete time-out, one gone ahead
    with a reason (platelets missing, urine protein flagged); drug times entered."""
    db = tmp_path / "story.db"
    pendulum.travel_to(T0, freeze=True)
    with Store.open(db, "Dr Rossi", clock=Clock(monotonic=False)) as s:
        patient = s.create_patient({"study_code": "SMA-1"})
        pid = patient["id"]
        for test, value in (("platelets", 240), ("pt", 12), ("aptt", 30), ("urine_protein", 0.1)):
            stored.add_lab(s, pid, test, value, "2026-03-20", source="patient_page")
        items = {"consent": "y", "skin": "intact", "antithrombotic": "none", "vp_shunt": "n"}
        for day, reason in ((0, None), (1, SECRET)):
            pendulum.travel_to(T0.add(days=day), freeze=True)
            if reason:
                platelets = stored.latest_labs(s, pid)["platelets"]
                stored.void_lab(s, platelets.id)
                stored.add_lab(s, pid, "urine_protein", "0.5", "2026-03-27", source="bedside")
            proc = s.start_procedure(pid, VALID_SETUP)
            stored.save_timeout(s, proc, items, US)
            stored.confirm_timeout(s, proc, US, reason=reason)
            stored.record_drug_time(s, proc, "vial_out", T0.add(days=day).subtract(minutes=50))
            stored.record_drug_time(s, proc, "drawn_up", T0.add(days=day).subtract(minutes=20))
            for minute, key in ((2, "attempt"), (3, "csf"), (4, "injection_start")):
                pendulum.travel_to(T0.add(days=day, minutes=minute), freeze=True)
                s.record(proc, key)
            pendulum.travel_to(T0.add(days=day, minutes=6, seconds=30), freeze=True)
            s.record(proc, "injection_end")
            pendulum.travel_to(T0.add(days=day, minutes=8), freeze=True)
            s.end_procedure(proc, {"drug_delivered": "yes"})
    yield db
    pendulum.travel_back()


def test_json_round_trip_keeps_every_lab_and_timeout(story: Path, tmp_path: Path) -> None:
    doc = tmp_path / "all.json"
    with Store.open(story, "t") as s:
        jsondoc.write_json(s, doc, identifiers=True)
    with Store.open(tmp_path / "copy.db", "importer") as target:
        result = import_file(target, doc)
        assert result.conflicts == [] and result.refused == [] and result.recomputed == []
        assert result.counts["labs"]["inserted"] == 5
        assert result.counts["timeouts"]["inserted"] == 2
    a, b = sqlite3.connect(story), sqlite3.connect(tmp_path / "copy.db")
    for table in ("labs", "timeouts", "procedures"):
        assert rows(a, table) == rows(b, table), table
    # imported again: identical, nothing written
    with Store.open(tmp_path / "copy.db", "importer") as target:
        again = import_file(target, doc)
        assert again.counts["timeouts"]["skipped"] == 2 and again.changed == 0


def test_sqlite_copy_then_import(story: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.sqlite"
    with Store.open(story, "t") as s:
        sqlitecopy.write_sqlite(s, out, ExportOptions(identifiers=True, tz="UTC"), force=False)
    with Store.open(tmp_path / "merged.db", "importer") as target:
        result = import_file(target, out)
        assert result.refused == [] and result.conflicts == []
    assert rows(sqlite3.connect(story), "timeouts") == rows(
        sqlite3.connect(tmp_path / "merged.db"), "timeouts"
    )


def test_deidentified_exports_leave_the_reason_out(story: Path, tmp_path: Path) -> None:
    opts = ExportOptions(identifiers=False, tz="Europe/Rome")
    with Store.open(story, "t") as s:
        csvfiles.write_csv(s, tmp_path / "csv", opts, force=False)
        jsondoc.write_json(s, tmp_path / "d.json")
        sqlitecopy.write_sqlite(s, tmp_path / "d.sqlite", opts, force=False)
        redcap.write_redcap(s, tmp_path / "rc", opts, force=False)
    for path in [*(tmp_path / "csv").iterdir(), tmp_path / "d.json", tmp_path / "d.sqlite"]:
        assert b"Zebulon" not in path.read_bytes(), path
    assert b"Zebulon" not in (tmp_path / "rc" / "redcap_import.csv").read_bytes()
    with (tmp_path / "csv" / "timeouts.csv").open(encoding="utf-8", newline="") as fh:
        timeouts = list(csv.DictReader(fh))
    assert "reason" not in timeouts[0]
    assert [t["missing"] for t in timeouts] == ["", "platelets"]
    assert [t["flags"] for t in timeouts] == ["", "urine_protein"]
    assert timeouts[0]["confirmed_at"] == "2026-03-27"  # a date, no time of day
    assert timeouts[0]["platelets_lab_id"].startswith("0000000000")  # masked id
    with (tmp_path / "csv" / "procedures.csv").open(encoding="utf-8", newline="") as fh:
        procs = list(csv.DictReader(fh))
    assert {p["injection_sec"] for p in procs} == {"150.0"}
    assert {p["drawn_to_injection_min"] for p in procs} == {"24.0"}
    assert {p["drawn_up_at"] for p in procs} == {"2026-03-27", "2026-03-28"}
    with (tmp_path / "csv" / "data_dictionary.csv").open(encoding="utf-8", newline="") as fh:
        variables = {(r["table"], r["variable"]): r for r in csv.DictReader(fh)}
    assert ("timeouts", "reason") not in variables
    assert variables[("labs", "test")]["allowed_values"].startswith("platelets = Platelet count")
    assert variables[("procedures", "injection_sec")]["unit"] == "s"
    with (tmp_path / "rc" / "redcap_import.csv").open(encoding="utf-8", newline="") as fh:
        rc = [r for r in csv.DictReader(fh) if r["redcap_repeat_instrument"] == "timeout"]
    assert [(r["to_urine_protein"], r["to_platelets"]) for r in rc] == [
        ("0.1", "240.0"),
        ("0.5", ""),
    ]
    assert {r["timeout_complete"] for r in rc} == {"2"}
    doc = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert doc["removed"]["fields"]["timeouts"] == ["reason"]
    assert all("reason" not in r for r in doc["tables"]["timeouts"])


def test_import_judges_labs_and_timeouts(story: Path, tmp_path: Path) -> None:
    doc = tmp_path / "all.json"
    with Store.open(story, "t") as s:
        jsondoc.write_json(s, doc, identifiers=True)
    data = json.loads(doc.read_text(encoding="utf-8"))
    data["tables"]["labs"][0]["value"] = -3
    data["tables"]["labs"][1]["test"] = "ferritin"
    data["tables"]["timeouts"][0]["flags"] = "made_up"
    doc.write_text(json.dumps(data), encoding="utf-8")
    with Store.open(tmp_path / "copy.db", "importer") as target:
        result = import_file(target, doc)
    refused = {(r.table, r.field) for r in result.refused}
    assert refused == {("labs", "value"), ("labs", "test"), ("timeouts", "flags")}
    assert result.counts["labs"]["inserted"] == 3 and result.counts["timeouts"]["inserted"] == 1


def test_report_data_quality_lines(story: Path, tmp_path: Path) -> None:
    with Store.open(story, "t") as s:
        report = s.load_report()
        lines = report.quality_lines()
    assert "Pre-dose time-out complete (confirmed, nothing missing): 1 of 2 procedures (50%)" in (
        lines
    )
    assert "Pre-dose time-out with a flagged value: 1 of 2 procedures (50%)" in lines
    assert "Pre-dose time-out gone ahead with a reason: 1 of 2 procedures (50%)" in lines
    assert report.as_dict()["data_quality"]["timeout_complete"] == 1
    # a file without any time-out: no line (and the JSON as before)
    with Store.open(tmp_path / "empty.db", "t") as s:
        patient = s.create_patient({"study_code": "X-1"})
        proc = s.start_procedure(patient["id"], VALID_SETUP)
        s.end_procedure(proc, {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"})
        report = s.load_report()
    assert not [line for line in report.quality_lines() if "time-out" in line]
    assert "timeout_of" not in report.as_dict()["data_quality"]
