"""The JSON export: the shipped schema, validation, de-identification, private atomic file."""

from __future__ import annotations

import itertools
import json
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pendulum
import pytest

from sma_log import demo
from sma_log.domain.clock import Clock
from sma_log.export import jsondoc
from sma_log.export.jsondoc import write_json
from sma_log.storage.schema import CLINICAL_TABLES, SCHEMA_VERSION
from sma_log.storage.store import Store

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)

# Identifying values a de-identified document must not contain (not even in part).
SECRETS = {
    "full_name": "Mariangela Quattrocchi",
    "record_number": "MRN-99817723",
    "birth_date": "2015-04-03",
    "timeline_note": "Mother says they moved to Via Garibaldi 17",
    "procedure_note": "Grandfather Ottavio present, brought the consent",
    "failure_reason": "Pt kicked needle, Ottaviano ward bed 4",
    "other_event": "Rash seen by Dr Pellegrinotti at home",
    "closed_reason": "Family emigrated to Quebec per neighbour Zanardelli",
    "contact_note": "Left voicemail on 0039-333-1234567",
}


def validator() -> jsonschema.Draft202012Validator:
    schema = jsondoc.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=None)


def errors_of(doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(doc)]


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    demo.write_demo(path, procedures=150, seed=11, now=NOW)
    return path


def full_story(store: Store, setup: dict[str, Any]) -> dict[str, Any]:
    """A patient with identifiers, notes everywhere free text can go, and follow-ups.

    Both procedures are done now; the 5-minute score and the 72-hour call are taken in
    their windows by travelling in time (the clock keeps running from each instant).
    The clock is left at the 72-hour call: the caller travels back (``pendulum.travel_back``).
    """
    start = pendulum.now("UTC")
    p = store.create_patient({"study_code": "SMA-042", "sma_type": "3", "sex": "male"})
    store.set_identifiers(
        p["id"],
        {
            "full_name": SECRETS["full_name"],
            "record_number": SECRETS["record_number"],
            "birth_date": SECRETS["birth_date"],
        },
    )
    failed = store.start_procedure(p["id"], setup)
    store.record(failed, "attempt")
    store.record(failed, "note", SECRETS["timeline_note"])
    store.end_procedure(
        failed,
        {
            "drug_delivered": "no",
            "failure_reason": SECRETS["failure_reason"],
            "fallback": "reschedule",
            "note": SECRETS["procedure_note"],
        },
    )
    fus = {r["kind"]: r["id"] for r in store.query("SELECT id, kind FROM followups")}
    store.record_no_answer(fus["day3"], SECRETS["contact_note"])
    store.close_followup(fus["day3"], "unreachable", SECRETS["closed_reason"])
    done = store.start_procedure(p["id"], setup)
    for kind in ("attempt", "csf", "injection_start", "injection_end"):
        store.record(done, kind)
    store.end_procedure(done, {"drug_delivered": "yes"})
    pendulum.travel_to(start.add(minutes=5), freeze=False)
    store.set_score(done, 5)
    day3 = store.one("SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (done,))[
        "id"
    ]
    pendulum.travel_to(start.add(hours=72), freeze=False)
    store.complete_followup(
        day3,
        {
            "satisfaction": "4",
            "pdph": "no",
            "back_pain_nrs": "0",
            "radicular_pain": "no",
            "nausea_vomiting": "no",
            "other_event_any": "yes",
            "other_event": SECRETS["other_event"],
            "other_event_serious": "no",
            "contact_method": "phone",
            "assessor": "Nurse Bianchi",
        },
    )
    return {"patient": p, "failed": failed, "done": done}


@pytest.fixture
def story(store: Store, setup_values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    try:
        yield full_story(store, setup_values)
    finally:
        pendulum.travel_back()


# ---------------------------------------------------------------- the schema file
def test_shipped_schema_is_what_the_generator_produces() -> None:
    shipped = jsondoc.SCHEMA_FILE.read_text(encoding="utf-8")
    assert shipped == jsondoc.schema_text(), (
        "sma_log/export/schema.json is out of date: run "
        "python -m sma_log.export.jsondoc --write-schema"
    )


def test_schema_is_draft_2020_12_and_covers_every_table_and_column() -> None:
    schema = jsondoc.load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert set(schema["properties"]["tables"]["properties"]) == {*CLINICAL_TABLES, "audit_log"}
    procedures = schema["$defs"]["procedures_row"]["properties"]
    assert procedures["guidance"]["enum"][:2] == ["us_realtime", "us_marking"]
    assert None in procedures["guidance"]["enum"]
    assert procedures["satisfaction_5min"]["maximum"] == 5
    assert schema["$defs"]["patients_row"]["properties"]["sma_type"]["enum"] == [1, 2, 3, 4, None]


def test_check_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert jsondoc._main(["--check-schema"]) == 0
    assert "up to date" in capsys.readouterr().out


# ---------------------------------------------------------------- documents
@pytest.mark.parametrize("identifiers", [False, True])
def test_demo_export_validates_against_the_shipped_schema(
    demo_file: Path, tmp_path: Path, identifiers: bool
) -> None:
    out = tmp_path / "demo.json"
    with Store.open(demo_file, "tester", readonly=True) as store:
        counts = write_json(store, out, identifiers=identifiers)
        db_counts = {
            t: store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts
        }
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert errors_of(doc) == []
    assert counts == db_counts
    assert {t: len(rows) for t, rows in doc["tables"].items()} == counts
    assert doc["format"] == "sma-log" and doc["format_version"] == 1
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["identifiers_included"] is identifiers
    assert ("audit_log" in doc["tables"]) is identifiers
    assert ("identifiers" in doc["tables"]) is identifiers
    ids = [r["id"] for r in doc["tables"]["procedures"]]
    assert ids == sorted(ids)


def test_story_documents_validate_and_the_schema_refuses_what_breaks_the_rules(
    store: Store, story: dict[str, Any], tmp_path: Path
) -> None:
    write_json(store, tmp_path / "d.json")
    write_json(store, tmp_path / "i.json", identifiers=True)
    deid = json.loads((tmp_path / "d.json").read_text())
    ident = json.loads((tmp_path / "i.json").read_text())
    assert errors_of(deid) == [] and errors_of(ident) == []
    # A de-identified document with identifiers, or a note left in: invalid.
    bad = json.loads(json.dumps(deid))
    bad["tables"]["identifiers"] = ident["tables"]["identifiers"]
    assert errors_of(bad)
    bad = json.loads(json.dumps(deid))
    bad["tables"]["procedures"][0]["note"] = "x"
    assert errors_of(bad)
    bad = json.loads(json.dumps(deid))
    note = next(e for e in bad["tables"]["events"] if e["kind"] == "note")
    note["value"] = "x"
    assert errors_of(bad)
    # An identified document without its audit log; an unknown code; a bad instant.
    bad = json.loads(json.dumps(ident))
    del bad["tables"]["audit_log"]
    assert errors_of(bad)
    bad = json.loads(json.dumps(deid))
    bad["tables"]["procedures"][0]["guidance"] = "xray"
    assert errors_of(bad)
    bad = json.loads(json.dumps(deid))
    bad["tables"]["procedures"][0]["started_at"] = "2026-03-27 09:00"
    assert errors_of(bad)
    bad = json.loads(json.dumps(deid))
    bad["tables"]["patients"][0]["colour"] = "blue"
    assert errors_of(bad)


def test_default_document_is_de_identified_and_says_what_it_removed(
    store: Store, story: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "d.json"
    write_json(store, out)
    data = out.read_bytes()
    for name, secret in SECRETS.items():
        assert secret.encode() not in data, name
        # not even a fragment of it (e.g. a surname)
        longest = max(secret.split(), key=len)
        assert longest.encode() not in data, (name, longest)
    doc = json.loads(data)
    assert doc["removed"] == {
        "tables": ["identifiers", "audit_log"],
        "fields": {  # every column export.common.column_action removes
            "procedures": [
                "note",
                "failure_reason",
                "cancel_reason",
                "anchor_boot_id",
                "anchor_boottime",
            ],
            "followups": ["other_event", "closed_reason"],
            "contact_attempts": ["note"],
            "timeouts": ["reason"],  # issue 14: the time-out's reason (free text)
        },
        "event_values_of_kinds": ["note"],
    }
    procs = doc["tables"]["procedures"]
    assert all("note" not in r and "failure_reason" not in r for r in procs)
    assert [e for e in doc["tables"]["events"] if e["kind"] == "note" and "value" in e] == []
    # What analysis needs is kept: study codes, the set-up, the outcome codes.
    assert doc["tables"]["patients"][0]["study_code"] == "SMA-042"
    assert {r["fallback"] for r in procs} == {"reschedule", None}


def test_identifiers_true_contains_every_identifier_and_note(
    store: Store, story: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "i.json"
    write_json(store, out, identifiers=True)
    text = out.read_text(encoding="utf-8")
    for name, secret in SECRETS.items():
        assert secret in text, name
    doc = json.loads(text)
    assert doc["removed"] == {"tables": [], "fields": {}, "event_values_of_kinds": []}
    assert doc["tables"]["identifiers"][0]["full_name"] == SECRETS["full_name"]
    assert len(doc["tables"]["audit_log"]) == store.counts()["audit_log"]


def test_file_is_private_atomic_and_not_replaced_without_overwrite(
    store: Store, story: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "x.json"
    write_json(store, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if "x.json" in p.name) == ["x.json"]
    out.write_text("keep me")
    with pytest.raises(FileExistsError):
        write_json(store, out, overwrite=False)
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if "x.json" in p.name) == ["x.json"]
    write_json(store, out)  # overwrite (the default) replaces it in one step
    assert json.loads(out.read_text())["format"] == "sma-log"


def test_date_filter_keeps_procedures_in_range_with_their_children(
    demo_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.json"
    with Store.open(demo_file, "tester", readonly=True) as store:
        all_procs = store.query("SELECT id, patient_id, started_at FROM procedures")
        write_json(
            store,
            out,
            identifiers=True,
            date_from=date(2025, 9, 1),
            date_to="2025-12-31",
        )
    doc = json.loads(out.read_text())
    assert errors_of(doc) == []
    assert doc["filter"] == {"date_from": "2025-09-01", "date_to": "2025-12-31"}
    wanted = {
        p["id"]
        for p in all_procs
        if "2025-09-01T00:00:00.000000Z" <= p["started_at"] < "2026-01-01T00:00:00.000000Z"
    }
    got = {r["id"] for r in doc["tables"]["procedures"]}
    assert got == wanted and 0 < len(got) < len(all_procs)
    patients = {p["patient_id"] for p in all_procs if p["id"] in wanted}
    assert {r["id"] for r in doc["tables"]["patients"]} == patients
    for table in ("attempts", "events", "followups"):
        assert {r["procedure_id"] for r in doc["tables"][table]} <= wanted
    followups = {r["id"] for r in doc["tables"]["followups"]}
    assert {r["followup_id"] for r in doc["tables"]["contact_attempts"]} <= followups
    exported = {r["id"] for t in doc["tables"].values() for r in t}
    assert {r["record_id"] for r in doc["tables"]["audit_log"]} <= exported


def test_date_filter_with_instants_is_inclusive(
    store: Store, story: dict[str, Any], tmp_path: Path
) -> None:
    started = store.one("SELECT started_at FROM procedures WHERE id = ?", (story["done"],))
    from sma_log.domain.clock import from_text

    at = from_text(started["started_at"])
    out = tmp_path / "i.json"
    write_json(store, out, date_from=at, date_to=at, identifiers=True)
    doc = json.loads(out.read_text())
    assert [r["id"] for r in doc["tables"]["procedures"]] == [story["done"]]


def test_progress_reports_every_row(demo_file: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with Store.open(demo_file, "tester", readonly=True) as store:
        counts = write_json(store, tmp_path / "p.json", progress=lambda d, t: seen.append((d, t)))
    total = sum(counts.values())
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert all(a <= b for (a, _), (b, _) in itertools.pairwise(seen))


def test_export_is_one_snapshot_and_leaves_no_transaction_open(
    store: Store, story: dict[str, Any], tmp_path: Path
) -> None:
    write_json(store, tmp_path / "s.json")
    assert not store.conn.in_transaction
    # the store still writes afterwards
    store.create_patient({"study_code": "SMA-043"})


def test_a_store_with_a_plain_clock_exports_the_same_rows(tmp_path: Path) -> None:
    """Two exports of an unchanged file differ only in exported_at."""
    path = tmp_path / "c.db"
    with Store.open(path, "t", clock=Clock(monotonic=False)) as store:
        store.create_patient({"study_code": "SMA-100"})
        write_json(store, tmp_path / "1.json")
        write_json(store, tmp_path / "2.json")
    one = json.loads((tmp_path / "1.json").read_text())
    two = json.loads((tmp_path / "2.json").read_text())
    one.pop("exported_at")
    two.pop("exported_at")
    assert one == two
