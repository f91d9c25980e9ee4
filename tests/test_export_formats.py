"""``sma-log export``: csv, sqlite and redcap files read back, de-identification, refusals.

Real files only: the database is written through the real Store, the command runs
through click's CliRunner (in-process) or the installed ``sma-log`` (subprocess), and
every file is read back with the standard library, SQLite and the sqlite-utils CLI.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
import pytest
from click.testing import CliRunner
from test_redcap_rules import check_redcap

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain.cells import formula_safe as safe_cell
from sma_log.domain.clock import Clock
from sma_log.export.common import LocalDates, mask_id
from sma_log.export.redcap import DICTIONARY_COLUMNS
from sma_log.storage.store import Store

ROME = "Europe/Rome"
NAME = "Zebedee Quartermain"
RECORD = "MRN-4417"
BIRTH = "2011-04-05"
EVENT_NOTE = "Ottavia phoned twice before the visit"
END_NOTE = "Lives near the Quartermain bakery"
FAILURE = "Zebedee cried, father asked to stop"
OTHER_EVENT = "-rash seen by aunt Ottavia"
CONTACT_NOTE = "voicemail left for Zebedee"
CLOSED = "Ottavia's number no longer works"
SECRETS = (NAME, "Zebedee", "Quartermain", RECORD, "Ottavia", BIRTH)
SETUP = {
    "operator": '=HYPERLINK("http://evil","x")',
    "assistant": "+Nurse Plus",
    "regimen": "std_maintenance",
    "guidance": "us_marking",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "iv_sedation",
    "sedation_agent": "@SUM(1+1)",
    "cobb_angle": "12.5",
}
CSV_TABLES = (
    "patients",
    "procedures",
    "attempts",
    "events",
    "followups",
    "contact_attempts",
    "labs",  # issue 14
    "timeouts",
)
# The morning the fixture's procedures are done (10:00 in Rome); the clock runs on from
# there and jumps to when the 5-minute score and the 72-hour call are due.
T0 = pendulum.datetime(2026, 3, 27, 9, 0, tz="UTC")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A database with one identified patient, notes everywhere, and a second patient."""
    config = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(config))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    Settings(timezone=ROME, locale="en").save(config)
    db = tmp_path / "site.db"
    pendulum.travel_to(T0, freeze=False)
    try:
        procedures = _clinic(db)
    finally:
        pendulum.travel_back()
    return {"db": db, "tmp": tmp_path, "procedures": procedures}


def _clinic(db: Path) -> tuple[str, str, str]:
    with Store.open(db, "tester", clock=Clock(monotonic=False)) as store:
        pt = store.create_patient(
            {"study_code": "SMA-001", "sma_type": "2", "birth_year": "2011", "sex": "female"}
        )
        store.set_identifiers(
            pt["id"], {"full_name": NAME, "record_number": RECORD, "birth_date": BIRTH}
        )
        # 1: failed, with notes
        p1 = store.start_procedure(pt["id"], SETUP)
        store.record(p1, "attempt")
        store.record(p1, "note", EVENT_NOTE)
        store.end_procedure(
            p1,
            {
                "drug_delivered": "no",
                "failure_reason": FAILURE,
                "fallback": "reschedule",
                "note": END_NOTE,
            },
        )
        # 2: delivered, follow-ups answered
        p2 = store.start_procedure(pt["id"], SETUP)
        for kind in ("attempt", "redirect", "attempt", "csf", "injection_start", "injection_end"):
            store.record(p2, kind)
        store.end_procedure(p2, {"drug_delivered": "yes"})
        pendulum.travel_to(T0.add(minutes=5), freeze=False)  # the score, in its window
        store.set_score(p2, 5)
        # 3: still open (started the same day)
        other = store.create_patient({"study_code": "SMA-002", "sma_type": "3"})
        p3 = store.start_procedure(other["id"], SETUP)
        store.record(p3, "attempt")
        fus = {
            (r["procedure_id"], r["kind"]): r["id"]
            for r in store.query("SELECT id, procedure_id, kind FROM followups")
        }
        pendulum.travel_to(T0.add(hours=72), freeze=False)  # the 72-hour calls
        store.record_no_answer(fus[(p2, "day3")], CONTACT_NOTE)
        store.complete_followup(
            fus[(p2, "day3")],
            {
                "satisfaction": "4",
                "pdph": "no",
                "back_pain_nrs": "2",
                "radicular_pain": "no",
                "nausea_vomiting": "no",
                "other_event_any": "yes",
                "other_event": OTHER_EVENT,
                "other_event_serious": "no",
                "contact_method": "phone",
                "assessor": "Nurse Gallo",
            },
        )
        store.close_followup(fus[(p1, "day3")], "unreachable", CLOSED)
    return p1, p2, p3


def run(env: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(main, ["--db", str(env["db"]), "export", *args])


def files_under(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ csv
def test_csv_folder_reads_back_with_stdlib_csv(env: dict[str, Any]) -> None:
    out = env["tmp"] / "csv"
    result = run(env, "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert names == {
        *(f"{t}.csv" for t in CSV_TABLES),
        "procedures_analysis.csv",
        "data_dictionary.csv",
    }
    patients = read_csv(out / "patients.csv")
    assert [p["study_code"] for p in patients] == ["SMA-001", "SMA-002"]
    procs = read_csv(out / "procedures.csv")
    assert len(procs) == 3
    assert {p["status"] for p in procs} == {"ended", "open"}
    delivered = next(p for p in procs if p["drug_delivered"] == "1")
    assert delivered["attempts_n"] == "2" and delivered["redirections_n"] == "1"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", delivered["started_at"])
    attempts = read_csv(out / "attempts.csv")
    assert len(attempts) == 4
    assert all(float(a["minutes_from_start"]) >= 0 for a in attempts)
    # ids join across files and carry no time
    proc_ids = {p["id"] for p in procs}
    assert {a["procedure_id"] for a in attempts} <= proc_ids
    assert all(i.startswith("0000000000") for i in proc_ids)
    analysis = read_csv(out / "procedures_analysis.csv")
    assert len(analysis) == 2  # ended procedures
    assert {a["procedure_id"] for a in analysis} <= proc_ids
    # every file 0600, the folder 0700
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_csv_reads_back_with_sqlite_utils_memory(env: dict[str, Any]) -> None:
    out = env["tmp"] / "csv"
    assert run(env, "--format", "csv", "--out", str(out)).exit_code == 0
    result = subprocess.run(
        [
            "sqlite-utils",
            "memory",
            str(out / "procedures.csv"),
            str(out / "attempts.csv"),
            "select p.study_code, count(a.id) as n from procedures p "
            "join attempts a on a.procedure_id = p.id group by p.id order by n",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(result.stdout)
    assert sorted(r["n"] for r in rows) == [1, 1, 2]
    result = subprocess.run(
        [
            "sqlite-utils",
            "memory",
            str(out / "procedures_analysis.csv"),
            "select count(*) as n, sum(attempts_n) as a from procedures_analysis",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == [{"n": 2, "a": 3}]


def test_data_dictionary_describes_every_column(env: dict[str, Any]) -> None:
    out = env["tmp"] / "csv"
    assert run(env, "--format", "csv", "--out", str(out)).exit_code == 0
    dictionary = read_csv(out / "data_dictionary.csv")
    assert list(dictionary[0]) == [
        "variable",
        "table",
        "type",
        "unit",
        "allowed_values",
        "description",
    ]
    described = {(r["table"], r["variable"]) for r in dictionary}
    for name in (*CSV_TABLES, "procedures_analysis"):
        with (out / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh))
        for column in header:
            assert (name, column) in described, (name, column)
    by_key = {(r["table"], r["variable"]): r for r in dictionary}
    assert "L3-L4 = L3-L4" in by_key[("procedures", "level_intended")]["allowed_values"]
    assert by_key[("procedures", "cobb_angle")]["unit"] == "°"
    assert "formula" in by_key[("(export)", "formula_injection")]["description"].lower()
    assert "'" in by_key[("(export)", "formula_injection")]["description"]
    assert ROME in by_key[("(export)", "dates")]["description"]
    assert all(r["description"] for r in dictionary), "every variable has a description"


def test_date_range_filters_by_local_start_date(env: dict[str, Any]) -> None:
    out = env["tmp"] / "none"
    r = run(env, "--format", "csv", "--out", str(out), "--from", "2000-01-01", "--to", "2000-12-31")
    assert r.exit_code == 0, r.output
    assert read_csv(out / "procedures.csv") == []
    assert read_csv(out / "patients.csv") == []
    today = LocalDates(ROME).date(
        Store.open(env["db"], "t", readonly=True).query("SELECT started_at FROM procedures")[0][
            "started_at"
        ]
    )
    out2 = env["tmp"] / "today"
    r = run(env, "--format", "csv", "--out", str(out2), "--from", today, "--to", today)
    assert r.exit_code == 0, r.output
    assert len(read_csv(out2 / "procedures.csv")) == 3


# ------------------------------------------------------------------ de-identification
@pytest.mark.parametrize("fmt", ["csv", "sqlite", "redcap"])
def test_default_export_holds_no_identifier_or_note(env: dict[str, Any], fmt: str) -> None:
    out = env["tmp"] / f"deid-{fmt}"
    result = run(env, "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "WARNING" not in result.output
    for path in files_under(out):
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (path.name, secret)
        for text in (EVENT_NOTE, END_NOTE, FAILURE, OTHER_EVENT, CONTACT_NOTE, CLOSED):
            assert text.encode() not in data, (path.name, text)
        if fmt != "sqlite":  # no time of day in CSV files
            assert not re.search(rb"T\d{2}:\d{2}:\d{2}", data), path.name
            assert not re.search(rb"\b\d{2}:\d{2}:\d{2}\b", data), path.name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("fmt", ["csv", "sqlite", "redcap"])
def test_identifiers_export_holds_them_and_warns(env: dict[str, Any], fmt: str) -> None:
    out = env["tmp"] / f"id-{fmt}"
    result = CliRunner().invoke(
        main,
        ["--db", str(env["db"]), "export", "--format", fmt, "--out", str(out), "--identifiers"],
    )
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "IDENTIFYING" in result.output
    blob = b"".join(p.read_bytes() for p in files_under(out))
    for text in (NAME, RECORD, BIRTH, END_NOTE, FAILURE, OTHER_EVENT.lstrip("-"), CLOSED):
        assert text.encode() in blob, text
    if fmt != "redcap":  # REDCap has no event or contact-attempt notes
        assert EVENT_NOTE.encode() in blob and CONTACT_NOTE.encode() in blob


def test_sqlite_copy_is_built_deidentified(env: dict[str, Any]) -> None:
    """Issue 11: the de-identified copy holds dates, not instants (no time of day),
    masked ids that still join, the minutes, and meta lists what was removed."""
    out = env["tmp"] / "copy.db"
    assert run(env, "--format", "sqlite", "--out", str(out)).exit_code == 0
    src = sqlite3.connect(env["db"])
    dst = sqlite3.connect(out)
    assert dst.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert dst.execute("SELECT count(*) FROM identifiers").fetchone()[0] == 0
    assert dst.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0
    meta = dict(dst.execute("SELECT key, value FROM meta"))
    assert meta["export_kind"] == "deidentified"
    assert "removed" in meta["export_audit_log"]
    manifest = json.loads(meta["export_deidentification"])
    assert manifest["removed_tables"] == ["identifiers", "audit_log"]
    assert "started_at" in manifest["instants_as_dates"]["procedures"]
    assert "id" in manifest["ids_masked"]["procedures"]
    # every instant is its local date (Rome), and the minutes are unchanged
    rome = ZoneInfo(ROME)
    local = {
        mask_id(i): LocalDates._utc(s).astimezone(rome).date().isoformat()
        for i, s in src.execute("SELECT id, started_at FROM procedures")
    }
    assert dict(dst.execute("SELECT id, started_at FROM procedures")) == local
    for table in ("procedures", "attempts", "events", "followups", "contact_attempts"):
        cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})")]
        for c in cols:
            if c == "at" or c.endswith("_at"):
                q = f"SELECT count(*) FROM {table} WHERE {c} IS NOT NULL AND length({c}) != 10"
                assert dst.execute(q).fetchone()[0] == 0, (table, c)
    q = "SELECT procedure_min FROM procedures WHERE procedure_min IS NOT NULL ORDER BY 1"
    assert dst.execute(q).fetchall() == src.execute(q).fetchall()
    # ids lose their time part but still join
    ids = {r[0] for r in src.execute("SELECT id FROM procedures")}
    assert {r[0] for r in dst.execute("SELECT id FROM procedures")} == {mask_id(i) for i in ids}
    assert (
        dst.execute(
            "SELECT count(*) FROM attempts a JOIN procedures p ON p.id = a.procedure_id"
        ).fetchone()[0]
        == 4
    )
    assert dst.execute("PRAGMA foreign_key_check").fetchall() == []
    assert (
        dst.execute("PRAGMA user_version").fetchone()
        == src.execute("PRAGMA user_version").fetchone()
    )


def test_sqlite_identified_copy_keeps_everything(env: dict[str, Any]) -> None:
    out = env["tmp"] / "full.db"
    assert run(env, "--format", "sqlite", "--out", str(out), "--identifiers").exit_code == 0
    src = sqlite3.connect(env["db"])
    dst = sqlite3.connect(out)
    for table in ("identifiers", "audit_tx", "audit_log", "procedures", "events"):
        q = f"SELECT * FROM {table} ORDER BY rowid"
        assert dst.execute(q).fetchall() == src.execute(q).fetchall(), table
    assert dst.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


# ------------------------------------------------------------------ redcap
def test_redcap_dictionary_and_import_match(env: dict[str, Any]) -> None:
    for extra in ((), ("--identifiers",)):
        out = env["tmp"] / f"rc{len(extra)}"
        result = run(env, "--format", "redcap", "--out", str(out), *extra)
        assert result.exit_code == 0, result.output
        with (out / "redcap_data_dictionary.csv").open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            dictionary = list(reader)
        assert tuple(header) == DICTIONARY_COLUMNS and len(header) == 18
        variables = [r[0] for r in dictionary]
        forms = {r[1] for r in dictionary}
        assert forms == {"patient", "procedure", "attempt", "followup", "timeout", "lab"}
        assert variables[0] == "record_id"
        assert len(set(variables)) == len(variables)
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v) and len(v) <= 26 for v in variables)
        for row in dictionary:
            for choice in filter(None, row[5].split(" | ")):
                code = choice.split(",", 1)[0]
                assert re.fullmatch(r"[A-Za-z0-9_]+", code), choice
        check_redcap(out)  # REDCap's own dictionary and import rules
        rows = read_csv(out / "redcap_import.csv")
        head = list(rows[0])
        assert head[:3] == ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance"]
        # REDCap adds each instrument's <form>_complete itself: not in the dictionary
        forms_all = ("patient", "procedure", "attempt", "followup", "timeout", "lab")
        statuses = [f"{form}_complete" for form in forms_all]
        assert set(head[3:]) - set(variables) == set(statuses)
        form_of = {r[0]: r[1] for r in dictionary} | {s: s[: -len("_complete")] for s in statuses}
        for row in rows:
            instrument = row["redcap_repeat_instrument"]
            filled = {k for k, v in row.items() if v and k not in head[:3]}
            assert {form_of[k] for k in filled} <= {instrument or "patient"}
        by = {}
        for row in rows:
            by.setdefault(row["redcap_repeat_instrument"], []).append(row)
        assert [r["record_id"] for r in by[""]] == ["SMA-001", "SMA-002"]
        assert sorted(r["redcap_repeat_instance"] for r in by["procedure"]) == ["1", "1", "2"]
        assert len(by["attempt"]) == 4
        levels = {r["proc_level_intended"] for r in by["procedure"]}
        assert levels == {"L3_L4"}


# ------------------------------------------------------------------ formula injection
def test_formula_injection_is_neutralised_in_csv_and_redcap(env: dict[str, Any]) -> None:
    out = env["tmp"] / "csv"
    assert run(env, "--format", "csv", "--out", str(out)).exit_code == 0
    rc = env["tmp"] / "rc"
    assert run(env, "--format", "redcap", "--out", str(rc)).exit_code == 0
    check_redcap(rc)
    procs = read_csv(out / "procedures.csv")
    assert {p["operator"] for p in procs} == {"'" + SETUP["operator"]}
    assert {p["assistant"] for p in procs} == {"'+Nurse Plus"}
    assert {p["sedation_agent"] for p in procs} == {"'@SUM(1+1)"}
    assert {p["cobb_angle"] for p in procs} == {"12.5"}
    analysis = read_csv(out / "procedures_analysis.csv")
    assert {a["operator"] for a in analysis} == {"'" + SETUP["operator"]}
    proc_rows = [
        r
        for r in read_csv(rc / "redcap_import.csv")
        if r["redcap_repeat_instrument"] == "procedure"
    ]
    assert {r["proc_operator"] for r in proc_rows} == {"'" + SETUP["operator"]}
    # no cell of any CSV starts a formula
    for path in [*files_under(out), *files_under(rc)]:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (path.name, cell)
    out_id = env["tmp"] / "csv-id"
    assert run(env, "--format", "csv", "--out", str(out_id), "--identifiers").exit_code == 0
    fus = read_csv(out_id / "followups.csv")
    assert "'" + OTHER_EVENT in {f["other_event"] for f in fus}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (-5, -5),
        (-2.5, -2.5),
        (None, None),
    ],
)
def test_formula_guard(value: Any, expected: Any) -> None:
    assert safe_cell(value) == expected


# ------------------------------------------------------------------ refusals
def _one_line_refusal(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("sma-log: error:")
    return lines[0]


@pytest.mark.parametrize("fmt", ["csv", "sqlite", "redcap"])
def test_existing_out_refused_without_force(env: dict[str, Any], fmt: str) -> None:
    out = env["tmp"] / "exists"
    out.write_text("keep me")
    line = _one_line_refusal(run(env, "--format", fmt, "--out", str(out)))
    assert "already exists" in line and "--force" in line
    assert out.read_text() == "keep me"
    assert not [p for p in env["tmp"].iterdir() if p.name.startswith(".")]  # no temp left


def test_force_replaces_an_earlier_export_but_not_a_foreign_folder(env: dict[str, Any]) -> None:
    out = env["tmp"] / "csv"
    assert run(env, "--format", "csv", "--out", str(out)).exit_code == 0
    first = (out / "patients.csv").read_bytes()
    assert run(env, "--format", "csv", "--out", str(out), "--force").exit_code == 0
    assert (out / "patients.csv").read_bytes() == first
    foreign = env["tmp"] / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.docx").write_text("precious")
    line = _one_line_refusal(run(env, "--format", "csv", "--out", str(foreign), "--force"))
    assert "other files" in line
    assert (foreign / "chapter1.docx").read_text() == "precious"
    db_line = _one_line_refusal(run(env, "--format", "sqlite", "--out", str(env["db"]), "--force"))
    assert "database itself" in db_line


@pytest.mark.parametrize("fmt", ["sqlite", "json", "redcap"])
def test_force_replaces_regular_files_only(env: dict[str, Any], fmt: str) -> None:
    """Issue 11: FIFOs and device nodes were replaced by regular files, and an
    ``-journal`` name was accepted (then deleted by the next read-only command)."""
    import os
    import stat

    fifo = env["tmp"] / f"pipe-{fmt}"
    os.mkfifo(fifo)
    line = _one_line_refusal(run(env, "--format", fmt, "--out", str(fifo), "--force"))
    assert "not a regular file" in line
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    device = env["tmp"] / f"null-{fmt}"
    os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # as /dev/null (root: CI)
    line = _one_line_refusal(run(env, "--format", fmt, "--out", str(device), "--force"))
    assert "not a regular file" in line and stat.S_ISCHR(device.lstat().st_mode)
    target = env["tmp"] / "elsewhere.txt"
    target.write_text("keep")
    link = env["tmp"] / f"link-{fmt}"
    link.symlink_to(target)
    line = _one_line_refusal(run(env, "--format", fmt, "--out", str(link), "--force"))
    assert "symbolic link" in line and link.is_symlink() and target.read_text() == "keep"
    for name in (f"{env['db'].name}-journal", "other.db-wal", "x-shm"):
        out = env["tmp"] / name
        line = _one_line_refusal(run(env, "--format", fmt, "--out", str(out), "--force"))
        assert "journal" in line or "database itself" in line, line
        assert not out.exists()
    regular = env["tmp"] / f"earlier.{fmt}"
    regular.write_text("an earlier export")
    assert run(env, "--format", fmt, "--out", str(regular), "--force").exit_code == 0
    if fmt == "redcap":  # a folder export: the file gave way to the folder
        assert regular.is_dir()
    else:
        assert regular.read_bytes() != b"an earlier export"
    assert not [p for p in env["tmp"].iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--format", "xlsx"), "xlsx"),
        (("--format", "csv", "--from", "27/03/2026"), "not a date"),
        (("--format", "csv", "--to", "2026-02-30"), "not a date"),
        (("--format", "csv", "--from", "2026-03-02", "--to", "2026-03-01"), "after"),
    ],
)
def test_bad_options_refused_on_one_line(
    env: dict[str, Any], args: tuple[str, ...], words: str
) -> None:
    out = env["tmp"] / "never"
    line = _one_line_refusal(run(env, *args, "--out", str(out)))
    assert words in line
    assert not out.exists()


def test_missing_database_is_not_created(env: dict[str, Any]) -> None:
    missing = env["tmp"] / "nope.db"
    result = CliRunner().invoke(
        main, ["--db", str(missing), "export", "--format", "csv", "--out", str(env["tmp"] / "o")]
    )
    _one_line_refusal(result)
    assert not missing.exists() and not (env["tmp"] / "o").exists()


def test_installed_command_runs(env: dict[str, Any]) -> None:
    out = env["tmp"] / "cli-csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sma_log",
            "--db",
            str(env["db"]),
            "export",
            "--format",
            "csv",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    assert "Wrote" in result.stdout and (out / "data_dictionary.csv").exists()
