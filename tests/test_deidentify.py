"""Issue 11 item 1: one de-identification rule, and byte scans of every export.

``sma_log.export.common.deidentify_row`` (with ``column_action`` and
``deidentification_manifest``) is the rule; each format's file is scanned byte for byte
in the default (de-identified) mode for times of day, full ULIDs of the source file,
identifiers (name, record number, birth date) and note text. Real files only: the
database is written through the Store, the exports run through the CLI.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.export.common import (
    MASK_IDS,
    LocalDates,
    column_action,
    deidentification_manifest,
    deidentify_row,
    mask_id,
)
from sma_log.storage.store import Store

ROME = "Europe/Rome"
NAME = "Zebedee Quartermain"
RECORD = "MRN-4417"
BIRTH = "2011-04-05"
NOTES = (
    "Ottavia phoned twice before the visit",  # event note
    "Lives near the Quartermain bakery",  # procedure note
    "Zebedee cried, father asked to stop",  # failure reason
    "rash seen by aunt Ottavia",  # other adverse event
    "voicemail left for Zebedee",  # contact-attempt note
    "number no longer works Ottavia",  # closed reason
)
IDENTIFIERS = (NAME, "Zebedee", "Quartermain", RECORD, "Ottavia", BIRTH)
SETUP = {
    "operator": "Dr Rossi",
    "regimen": "std_maintenance",
    "guidance": "us_marking",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "none",
}
T0 = pendulum.datetime(2026, 3, 27, 13, 47, 21, tz="UTC")  # 14:47:21 in Rome
TIME_OF_DAY = re.compile(rb"T\d\d:\d\d|\d\d:\d\d:\d\d")
FORMATS = ("csv", "json", "sqlite", "redcap")


@pytest.fixture
def clinic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    config = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(config))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    Settings(timezone=ROME, locale="en").save(config)
    db = tmp_path / "site.db"
    pendulum.travel_to(T0, freeze=False)
    try:
        with Store.open(db, "tester", clock=Clock(monotonic=False)) as store:
            pt = store.create_patient({"study_code": "SMA-001", "sma_type": "2"})
            store.set_identifiers(
                pt["id"], {"full_name": NAME, "record_number": RECORD, "birth_date": BIRTH}
            )
            p1 = store.start_procedure(pt["id"], SETUP)
            store.record(p1, "attempt")
            store.record(p1, "note", NOTES[0])
            store.end_procedure(
                p1,
                {
                    "drug_delivered": "no",
                    "failure_reason": NOTES[2],
                    "fallback": "reschedule",
                    "note": NOTES[1],
                },
            )
            p2 = store.start_procedure(pt["id"], SETUP)
            for kind in ("attempt", "csf", "injection_start", "injection_end"):
                store.record(p2, kind)
            store.end_procedure(p2, {"drug_delivered": "yes"})
            fus = {
                (r["procedure_id"], r["kind"]): r["id"]
                for r in store.query("SELECT id, procedure_id, kind FROM followups")
            }
            pendulum.travel_to(T0.add(hours=72), freeze=False)
            store.record_no_answer(fus[(p2, "day3")], NOTES[4])
            store.complete_followup(
                fus[(p2, "day3")],
                {
                    "satisfaction": "4",
                    "pdph": "no",
                    "back_pain_nrs": "2",
                    "radicular_pain": "no",
                    "nausea_vomiting": "no",
                    "other_event_any": "yes",
                    "other_event": NOTES[3],
                    "other_event_serious": "no",
                    "contact_method": "phone",
                    "assessor": "Nurse Gallo",
                },
            )
            store.close_followup(fus[(p1, "day3")], "unreachable", NOTES[5])
    finally:
        pendulum.travel_back()
    conn = sqlite3.connect(db)
    ulids = set()
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for col in [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]:
            if col == "id" or col.endswith("_id"):
                q = f"SELECT DISTINCT {col} FROM {table} WHERE length({col}) = 26"
                ulids |= {r[0] for r in conn.execute(q)}
    conn.close()
    return {"db": db, "tmp": tmp_path, "ulids": ulids}


def export(clinic: dict[str, Any], fmt: str, *args: str) -> Path:
    out = clinic["tmp"] / f"out-{fmt}{''.join(args)}"
    result = CliRunner().invoke(
        main, ["--db", str(clinic["db"]), "export", "--format", fmt, "--out", str(out), *args]
    )
    assert result.exit_code == 0, result.output
    return out


def blob_of(out: Path) -> bytes:
    files = [out] if out.is_file() else sorted(p for p in out.rglob("*") if p.is_file())
    return b"".join(p.read_bytes() for p in files)


def scan(blob: bytes, ulids: set[str]) -> dict[str, list[str]]:
    """What a de-identified file must not hold, by kind."""
    return {
        "times": sorted({m.decode() for m in TIME_OF_DAY.findall(blob)})[:5],
        "ids": sorted(u for u in ulids if u.encode() in blob)[:5],
        "identifiers": [t for t in IDENTIFIERS if t.encode() in blob],
        "notes": [t for t in NOTES if t.encode() in blob],
    }


# ---------------------------------------------------------------- the rule
def test_column_action_is_the_one_rule() -> None:
    assert column_action("procedures", "note", False) == "remove"
    assert column_action("procedures", "anchor_boot_id", False) == "remove"
    assert column_action("procedures", "patient_id", False) == "mask_id"
    assert column_action("procedures", "started_at", False) == "date"
    assert column_action("procedures", "operator", False) == "keep"
    assert column_action("procedures", "started_at", False, frozenset({MASK_IDS})) == "keep"
    assert all(column_action("procedures", c, True) == "keep" for c in ("note", "id"))


def test_deidentify_row_removes_masks_and_dates() -> None:
    class Opts:
        identifiers = False
        tz = ROME

    ulid = "01KMQ5QH3ZABCDEFGHJKMNPQRS"
    row = {"id": ulid, "kind": "note", "value": "secret", "at": "2026-03-27T23:30:00.000000Z"}
    assert deidentify_row("events", dict(row), Opts()) == {
        "id": mask_id(ulid),
        "kind": "note",
        "at": "2026-03-28",  # 00:30 in Rome: the local date
    }
    assert deidentify_row("identifiers", {"full_name": NAME}, Opts()) is None
    assert deidentify_row("audit_log", {"id": ulid}, Opts()) is None
    odd = deidentify_row("procedures", {"started_at": "2026-13-01T09:00:00Z"}, Opts())
    assert odd == {"started_at": None}  # unreadable: unknown, never its text
    Opts.identifiers = True
    assert deidentify_row("events", dict(row), Opts()) == row


def test_mask_is_stable_and_keeps_ids_unique(clinic: dict[str, Any]) -> None:
    masked = {mask_id(u) for u in clinic["ulids"]}
    assert len(masked) == len(clinic["ulids"])
    assert all(m.startswith("0000000000") for m in masked)
    a = sqlite3.connect(export(clinic, "sqlite"))
    b_out = clinic["tmp"] / "again.db"
    CliRunner().invoke(
        main, ["--db", str(clinic["db"]), "export", "--format", "sqlite", "--out", str(b_out)]
    )
    b = sqlite3.connect(b_out)
    q = "SELECT id FROM procedures ORDER BY id"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_manifest_lists_exactly_what_is_removed_or_masked() -> None:
    m = deidentification_manifest(
        False, {"procedures": ["id", "note", "started_at", "operator"], "identifiers": []}, ROME
    )
    assert m["removed_tables"] == ["identifiers", "audit_log"]
    assert m["removed_columns"] == {"procedures": ["note"]}
    assert m["ids_masked"] == {"procedures": ["id"]}
    assert m["instants_as_dates"] == {"procedures": ["started_at"]}
    assert m["not_masked"] == []
    assert deidentification_manifest(True, {"procedures": ["id"]}, ROME)["applied"] is False


# ---------------------------------------------------------------- byte scans
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["identifiers", "notes", "times", "ids"])
def test_default_export_byte_scan(clinic: dict[str, Any], fmt: str, kind: str) -> None:
    blob = blob_of(export(clinic, fmt))
    found = scan(blob, clinic["ulids"])
    assert found[kind] == [], found


def test_calendar_byte_scan(clinic: dict[str, Any]) -> None:
    """The follow-up calendar (``followups --ics``) masks ids and holds no identifier
    or note; it keeps its events' times (a reminder is at its due time) and says so."""
    out = clinic["tmp"] / "queue.ics"
    result = CliRunner().invoke(main, ["--db", str(clinic["db"]), "followups", "--ics", str(out)])
    assert result.exit_code == 0, result.output
    blob = out.read_bytes()
    found = scan(blob, clinic["ulids"])
    assert found["ids"] == found["identifiers"] == found["notes"] == [], found
    assert b"X-SMA-LOG-DEIDENTIFICATION:not_masked: instants are exact UTC instants" in blob


def test_identified_export_keeps_them(clinic: dict[str, Any]) -> None:
    """The scan finds what is there: with --identifiers every kind shows up."""
    for fmt in ("csv", "json", "sqlite"):
        found = scan(blob_of(export(clinic, fmt, "--identifiers")), clinic["ulids"])
        assert all(found[k] for k in ("times", "ids", "identifiers", "notes")), (fmt, found)


def test_each_export_says_what_it_removed_or_masked(clinic: dict[str, Any]) -> None:
    doc = json.loads(export(clinic, "json").read_text(encoding="utf-8"))
    block = doc["deidentification"]
    assert block["applied"] is True and block["removed_tables"] == ["identifiers", "audit_log"]
    assert "note" in block["removed_columns"]["procedures"]
    assert block["not_masked"] == []
    assert {"id", "procedure_id"} <= set(block["ids_masked"]["events"])
    assert "at" in block["instants_as_dates"]["events"]
    dictionary = (export(clinic, "csv") / "data_dictionary.csv").read_bytes().decode("utf-8")
    for key in ("removed_tables", "removed_columns", "ids_masked", "instants_as_dates"):
        assert f"\r\n{key},(export),deidentification," in dictionary, key
    assert "procedures: started_at" in dictionary or "started_at" in dictionary
    meta = dict(sqlite3.connect(export(clinic, "sqlite")).execute("SELECT key, value FROM meta"))
    manifest = json.loads(meta["export_deidentification"])
    assert {"id", "procedure_id"} <= set(manifest["ids_masked"]["events"])
    assert "at" in manifest["instants_as_dates"]["events"]
    assert meta["export_removed_tables"] == "identifiers, audit_log"


def test_local_dates_of_the_copy_are_the_csv_dates(clinic: dict[str, Any]) -> None:
    csv_text = (export(clinic, "csv") / "procedures.csv").read_text(encoding="utf-8")
    copy = sqlite3.connect(export(clinic, "sqlite"))
    for (day,) in copy.execute("SELECT started_at FROM procedures"):
        assert day == LocalDates(ROME).date("2026-03-27T13:47:21.000000Z") and day in csv_text
