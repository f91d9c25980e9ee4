"""Every write path of the Store, in one scripted run (the audit log's replay test, and
``tests/fixtures/make_schema4.py`` / ``make_schema5.py``, which ran it with the schema-4
and schema-5 code; the pre-dose calls of schema 6 run only where they exist).

Only public Store and importer calls, so the same script runs with older code. The
clock is pendulum's travel (no sleeps); ``snap()`` is called after every action.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum

SETUP: dict[str, Any] = {
    "operator": "Dr Rossi",
    "assistant": "Nurse Bianchi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "position": "lateral_left",
    "needle_tip": "pencil_point",
    "needle_gauge": "22",
    "needle_length_mm": "90",
    "cobb_angle": "45.5",
    "axial_rotation": "moderate",
    "hardware": "none",
    "sedation": "none",
}
DAY3 = {
    "satisfaction": 4,
    "pdph": "0",
    "back_pain_nrs": "2",
    "radicular_pain": "0",
    "nausea_vomiting": "0",
    "other_event_any": "0",
    "contact_method": "phone",
    "assessor": "RN",
}
DAY3_FIX = {
    **DAY3,
    "satisfaction": 5,
    "pdph": "1",
    "pdph_onset_hours": "24",
    "pdph_orthostatic": "1",
    "pdph_severity": "3",
    "pdph_treatment": "conservative",
    "pdph_resolved": "1",
}
START = pendulum.datetime(2026, 3, 2, 9, tz="UTC")


def drive(
    store_a: Any, open_store: Callable[[Path, str], Any], folder: Path, snap: Callable[[], Any]
) -> None:
    """Drive ``store_a`` (user ``tester``, a wall clock) through every write path.

    ``open_store(path, user)`` opens another file (for the import); ``folder`` is for it
    and the documents.
    """
    from sma_log.export.jsondoc import write_json
    from sma_log.importer import import_file

    try:  # schema 6 (the fixtures of older schemas ran this script without it)
        from sma_log.storage import predose
    except ImportError:
        predose = None  # type: ignore[assignment]

    t = START
    pendulum.travel_to(t, freeze=True)

    def tick(seconds: float = 20) -> None:
        nonlocal t
        t = t.add(seconds=seconds)
        pendulum.travel_to(t, freeze=True)

    def act(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        tick(7)
        out = fn(*args, **kw)
        snap()
        return out

    st = store_a
    pids = []
    for i in range(3):
        p = act(st.create_patient, {"study_code": f"P{i}", "sma_type": 2, "birth_year": 2010})
        act(st.set_identifiers, p["id"], {"full_name": f"Name {i}", "record_number": str(i)})
        pids.append(p["id"])
    act(st.update_patient, pids[0], {"sma_type": 3, "motor_status": "walker"})
    act(st.set_identifiers, pids[0], {"full_name": "Renamed 0"})
    keys = [
        ("attempt", None),
        ("redirect", None),
        ("flag", "bone_contact"),
        ("undo", None),
        ("redirect", None),
        ("attempt", None),
        ("csf", None),
        ("injection_start", None),
        ("injection_end", None),
    ]
    procs = []
    for k in range(5):
        tick(3600 * 24 * 3)
        proc = act(st.start_procedure, pids[k % 3], SETUP)
        if k == 0 and predose is not None:  # schema 6: labs, a time-out, drug times
            lab = act(predose.add_lab, st, pids[0], "platelets", "250", START.date())
            act(predose.add_lab, st, pids[0], "urine_protein", "0.1", START.date())
            act(predose.void_lab, st, lab["id"])
            act(predose.add_lab, st, pids[0], "platelets", "240", START.date())
            act(predose.save_timeout, st, proc, {"consent": "yes", "skin": "intact"})
            act(predose.save_timeout, st, proc, {"antithrombotic": "none", "vp_shunt": "no"})
            act(predose.confirm_timeout, st, proc)
            act(predose.record_drug_time, st, proc, "vial_out")
            act(predose.record_drug_time, st, proc, "drawn_up")
        if k == 3:
            act(st.cancel_procedure, proc, "wrong patient")
            continue
        for kind, value in keys:
            if kind == "undo":
                act(st.undo, proc)
            else:
                act(st.record, proc, kind, value)
        tick(60)
        act(
            st.end_procedure,
            proc,
            {"drug_delivered": True, "csf_appearance": "clear", "csf_removed_ml": "3"},
        )
        procs.append(proc)
        tick(300)
        act(st.set_score, proc, 3 + k % 2)
        if k == 0:
            act(st.set_score, proc, 2)  # a correction
            act(
                st.update_procedure, proc, {"note": "corrected", "bmi": "19.5", "sedation": "local"}
            )
        day3 = st.one("SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (proc,))[
            "id"
        ]
        tick(3600 * 60)
        act(st.record_no_answer, day3, "no answer")
        act(st.record_no_answer, day3, None)
        act(st.undo_no_answer, day3)
        tick(3600 * 12)
        if k == 1:
            act(st.close_followup, day3, "unreachable", "no phone")
            act(st.reopen_followup, day3)
        act(st.complete_followup, day3, DAY3)
        if k in (0, 2):
            act(st.complete_followup, day3, DAY3_FIX)
        if k == 2:
            act(st.reopen_followup, day3)
            act(st.complete_followup, day3, DAY3)
    # An import: a second file's new records, then this file's own document changed
    # (a patient, a procedure's note, a follow-up's answer) merged preferring it.
    tick(3600)
    b_path = folder / "b.db"
    store_b = open_store(b_path, "other")
    try:
        pb = store_b.create_patient({"study_code": "B1", "sma_type": 1, "birth_year": 2015})
        proc_b = store_b.start_procedure(pb["id"], SETUP)
        for kind, value in keys[:2] + keys[5:]:
            tick(11)
            store_b.record(proc_b, kind, value)
        tick(60)
        store_b.end_procedure(proc_b, {"drug_delivered": True})
        tick(300)
        store_b.set_score(proc_b, 5)
        write_json(store_b, folder / "b.json", identifiers=True)
    finally:
        store_b.close()
    tick(60)
    act(import_file, st, folder / "b.json", pause=lambda s: None)
    write_json(st, folder / "a.json", identifiers=True)
    doc = json.loads((folder / "a.json").read_text(encoding="utf-8"))
    tables = doc["tables"]
    for row in tables["patients"]:
        if row["id"] == pids[1]:
            row["motor_status"] = "sitter"
    for row in tables["procedures"]:
        if row["id"] == procs[1]:
            row["note"] = "changed elsewhere"
    for row in tables["followups"]:
        if row["procedure_id"] == procs[1] and row["kind"] == "day3":
            row["back_pain_nrs"] = 6
    (folder / "a2.json").write_text(json.dumps(doc), encoding="utf-8")
    tick(60)
    act(import_file, st, folder / "a2.json", prefer_incoming=True, pause=lambda s: None)
    pendulum.travel_back()


def build_fixture(out: Path, version: int) -> None:
    """Write ``out``: this scenario run by the sma-log on ``sys.path`` (an old checkout:
    tests/fixtures/make_schema4.py, make_schema5.py), which must write ``version``;
    checkpointed into one .db (no -wal); the import's second file is left out."""
    import shutil
    import sqlite3
    import tempfile

    from sma_log.domain.clock import Clock
    from sma_log.storage.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def open_store(path: Path, user: str) -> Store:
            return Store.open(path, user, clock=Clock(monotonic=False))

        store = open_store(folder / "a.db", "tester")
        assert store.user_version() == version
        drive(store, open_store, folder, lambda: None)
        store.close()
        conn = sqlite3.connect(folder / "a.db")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        shutil.copyfile(folder / "a.db", out)
