"""Exports survive whatever the file holds (issue 10, item 6).

Another tool filled the file with plain sqlite3: month 13 and year 0 in instants,
Infinity in a REAL (as a number and as text), NaN (SQLite keeps it as NULL), text in
a number column, a BLOB, codes outside the vocabulary, a score of 99. Every format
(csv, json, sqlite, redcap) and ``followups --ics`` writes its file with one stderr
line per bad cell and exit code 3, or refuses with one line and exit code 2 where
the format cannot carry the cell; never a traceback. ``info --check`` lists the same
cells. The bad cells are found by one rule (:func:`sma_log.export.common.find_bad_cells`:
the shipped JSON Schema and the domain's reading of an instant), whose SQL pre-filter
is checked here against its Python judgement on generated values.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner
from factories import SETUP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.export.common import CellRule, cell_rules, find_bad_cells, mask_id
from sma_log.storage.store import Store

NOW = pendulum.datetime(2026, 5, 10, 12, 0, tz="UTC")
#: The odd cells written into the file: (table, column, value, what the line says).
ODD: list[tuple[str, str, Any, str]] = [
    ("procedures", "csf_at", "2026-13-01T09:00:00.000000Z", "month must be in 1..12"),
    ("procedures", "injection_end_at", "0000-03-01T09:30:00.000000Z", "year 0 is out of range"),
    ("procedures", "dose_mg", float("inf"), "not a finite number: inf"),
    ("procedures", "bmi", "Infinity", "text in a number column: 'Infinity'"),
    ("procedures", "needle_gauge", "twenty-two", "text in a number column"),
    ("procedures", "needle_length_mm", b"\x00\xff", "a BLOB (2 bytes), not a value: x'00ff'"),
    ("procedures", "approach", "banana", "not one of the codes"),
    ("patients", "sex", "X\x1b[2J", "not one of the codes"),
    ("followups", "satisfaction", 99, "above the maximum 5: 99"),
    ("followups", "contact_attempts_n", "lots", "text in a number column: 'lots'"),
]


def _ended(store: Store, code: str, end: pendulum.DateTime) -> str:
    pendulum.travel_to(end.subtract(minutes=10), freeze=True)
    pt = store.find_patient(code) or store.create_patient({"study_code": code})
    pid = store.start_procedure(pt["id"], SETUP)
    for kind in ("attempt", "csf", "injection_start", "injection_end"):
        store.record(pid, kind)
    pendulum.travel_to(end, freeze=True)
    store.end_procedure(pid, {"drug_delivered": "yes"})
    return pid


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Three ended procedures: SMA-001's score taken and its 72-hour call done;
    SMA-002's score and call open (in the queue); SMA-003 plain."""
    db = tmp_path / "odd.db"
    made: dict[str, Any] = {"db": db}
    with Store.open(db, "dr-rossi", clock=Clock(monotonic=False)) as s:
        made["p1"] = _ended(s, "SMA-001", NOW.subtract(days=9))
        pendulum.travel_to(NOW.subtract(days=9).add(minutes=6), freeze=True)
        s.set_score(made["p1"], 4)
        pendulum.travel_to(NOW.subtract(days=6), freeze=True)
        fu = s.one(
            "SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (made["p1"],)
        )
        assert fu is not None
        s.complete_followup(
            fu["id"],
            {
                "satisfaction": 5,
                "pdph": "no",
                "back_pain_nrs": 0,
                "radicular_pain": "no",
                "nausea_vomiting": "no",
                "other_event_any": "no",
                "contact_method": "phone",
                "assessor": "nurse",
            },
        )
        made["fu_done"] = fu["id"]
        made["p2"] = _ended(s, "SMA-002", NOW.subtract(hours=30))
        made["p3"] = _ended(s, "SMA-003", NOW.subtract(days=2))
    pendulum.travel_to(NOW, freeze=True)
    yield made
    pendulum.travel_back()


def _poke(db: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.fixture
def odd(clinic: dict[str, Any]) -> dict[str, Any]:
    """The clinic with every cell of :data:`ODD` written by another tool."""
    db, p1 = clinic["db"], clinic["p1"]
    for table, column, value, _ in ODD:
        if table == "procedures":
            _poke(db, f"UPDATE procedures SET {column} = ? WHERE id = ?", (value, p1))
        elif table == "patients":
            _poke(db, f"UPDATE patients SET {column} = ? WHERE study_code = 'SMA-003'", (value,))
        elif column == "satisfaction":
            _poke(
                db, "UPDATE followups SET satisfaction = ? WHERE id = ?", (value, clinic["fu_done"])
            )
        else:  # the open 72-hour call of SMA-002
            _poke(
                db,
                f"UPDATE followups SET {column} = ? WHERE procedure_id = ? AND kind = 'day3'",
                (value, clinic["p2"]),
            )
    # NaN: SQLite stores it as NULL, so no file can hold it (nothing to report)
    _poke(db, "UPDATE procedures SET cobb_angle = ? WHERE id = ?", (math.nan, p1))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT cobb_angle FROM procedures WHERE id = ?", (p1,)).fetchone() == (
        None,
    )
    assert conn.execute("SELECT typeof(bmi) FROM procedures WHERE id = ?", (p1,)).fetchone() == (
        "text",
    )
    conn.close()
    return clinic


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    config = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    Settings(timezone="Europe/Rome", locale="en").save(config)
    return CliRunner()


def bad_lines(stderr: str) -> list[str]:
    """The bad-cell lines; everything else on stderr is the one summary line (and the
    --identifiers warning)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    cells = [x for x in lines if x.startswith("sma-log: bad cell: ")]
    rest = [x for x in lines if x not in cells and "WARNING: --identifiers" not in x]
    assert len(rest) == 1 and "bad cell(s)" in rest[0], stderr
    return cells


def export(runner: CliRunner, db: Path, out: Path, fmt: str, *extra: str) -> Any:
    return runner.invoke(
        main, ["--db", str(db), "export", "--format", fmt, "--out", str(out), *extra]
    )


# ---------------------------------------------------------------- every format
@pytest.mark.parametrize(
    ("fmt", "extra", "expected"),
    [
        ("csv", (), {c for _, c, _, _ in ODD}),
        ("csv", ("--identifiers",), {c for _, c, _, _ in ODD}),
        ("json", (), {c for _, c, _, _ in ODD}),
        ("json", ("--identifiers",), {c for _, c, _, _ in ODD}),
        ("sqlite", (), {c for _, c, _, _ in ODD}),
        ("sqlite", ("--identifiers",), {c for _, c, _, _ in ODD}),
        # REDCap has no field for the CSF and injection times (only the dates of the
        # start and the end)
        ("redcap", (), {c for _, c, _, _ in ODD} - {"csf_at", "injection_end_at"}),
    ],
)
def test_every_format_exports_with_one_line_per_bad_cell(
    odd: dict[str, Any],
    runner: CliRunner,
    tmp_path: Path,
    fmt: str,
    extra: tuple[str, ...],
    expected: set[str],
) -> None:
    result = export(runner, odd["db"], tmp_path / "out", fmt, *extra)
    assert result.exit_code == 3, result.output
    lines = bad_lines(result.stderr)
    columns = [line.split(": ", 3)[2].split()[-1] for line in lines]
    assert sorted(columns) == sorted(expected), lines  # each cell once
    for table, column, _, says in ODD:
        if column in expected:
            line = next(x for x in lines if f" {column}: " in x)
            assert f"bad cell: {table} " in line and says in line, line
    assert "\x1b" not in result.stderr  # the value made visible
    assert result.stdout.startswith("Wrote ")


def test_csv_cells_of_bad_values(odd: dict[str, Any], runner: CliRunner, tmp_path: Path) -> None:
    result = export(runner, odd["db"], tmp_path / "d", "csv")
    assert result.exit_code == 3
    with (tmp_path / "d" / "procedures.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if r["id"].endswith(odd["p1"][10:]))
    # de-identified: an instant that cannot be read is empty (its date is not known,
    # and its text could hold the time of day); what CSV can carry is as stored; a
    # BLOB is empty
    assert row["csf_at"] == "" and row["injection_end_at"] == ""
    assert row["dose_mg"] == "inf" and row["bmi"] == "Infinity"
    assert row["needle_gauge"] == "twenty-two" and row["needle_length_mm"] == ""
    assert row["approach"] == "banana" and row["cobb_angle"] == ""
    with (tmp_path / "d" / "procedures_analysis.csv").open(encoding="utf-8", newline="") as fh:
        analysis = list(csv.DictReader(fh))
    assert len(analysis) == 3
    text = (tmp_path / "d" / "procedures_analysis.csv").read_text()
    assert "T09:" not in text and "0000-" not in text  # no time of day leaks
    identified = export(runner, odd["db"], tmp_path / "i", "csv", "--identifiers")
    assert identified.exit_code == 3
    with (tmp_path / "i" / "procedures.csv").open(encoding="utf-8", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["id"] == odd["p1"])
    assert row["csf_at"] == "2026-13-01T09:00:00.000000Z"  # as stored


def test_json_document_is_json_and_keeps_what_json_can_hold(
    odd: dict[str, Any], runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "doc.json"
    result = export(runner, odd["db"], out, "json")
    assert result.exit_code == 3
    text = out.read_text(encoding="utf-8")
    assert "Infinity" not in text.replace('"Infinity"', "") and "NaN" not in text
    doc = json.loads(text)
    row = next(r for r in doc["tables"]["procedures"] if r["id"] == mask_id(odd["p1"]))
    assert row["dose_mg"] is None and row["needle_length_mm"] is None  # JSON cannot hold them
    assert row["bmi"] == "Infinity" and row["approach"] == "banana"  # as stored
    assert row["csf_at"] is None  # an instant that cannot be read: its date is unknown
    identified = tmp_path / "identified.json"
    assert export(runner, odd["db"], identified, "json", "--identifiers").exit_code == 3
    doc = json.loads(identified.read_text(encoding="utf-8"))
    row = next(r for r in doc["tables"]["procedures"] if r["id"] == odd["p1"])
    assert row["csf_at"] == "2026-13-01T09:00:00.000000Z"  # as stored


def test_sqlite_copies_as_stored_and_deidentified_empties_unreadable_instants(
    odd: dict[str, Any], runner: CliRunner, tmp_path: Path
) -> None:
    assert export(runner, odd["db"], tmp_path / "i.db", "sqlite", "--identifiers").exit_code == 3
    conn = sqlite3.connect(tmp_path / "i.db")
    row = conn.execute(
        "SELECT csf_at, dose_mg, needle_length_mm FROM procedures WHERE id = ?", (odd["p1"],)
    ).fetchone()
    assert row == ("2026-13-01T09:00:00.000000Z", float("inf"), b"\x00\xff")
    conn.close()
    assert export(runner, odd["db"], tmp_path / "d.db", "sqlite").exit_code == 3
    conn = sqlite3.connect(tmp_path / "d.db")
    rows = conn.execute("SELECT csf_at, injection_end_at, started_at FROM procedures").fetchall()
    conn.close()
    assert all(r[0] is None or len(r[0]) == 10 for r in rows)  # dates, no time of day
    assert sum(1 for r in rows if r[0] is None and r[1] is None) == 1  # the odd row, emptied


def test_redcap_leaves_bad_cells_empty(
    odd: dict[str, Any], runner: CliRunner, tmp_path: Path
) -> None:
    assert export(runner, odd["db"], tmp_path / "r", "redcap").exit_code == 3
    with (tmp_path / "r" / "redcap_import.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    proc = next(
        r
        for r in rows
        if r["record_id"] == "SMA-001" and r["redcap_repeat_instrument"] == "procedure"
    )
    assert proc["proc_approach"] == "" and proc["proc_dose_mg"] == "" and proc["proc_bmi"] == ""
    assert proc["proc_needle_gauge"] == "" and proc["proc_needle_length_mm"] == ""
    assert proc["proc_guidance"] == "us_marking"  # the good cells are there
    patient = next(
        r for r in rows if r["record_id"] == "SMA-003" and not r["redcap_repeat_instrument"]
    )
    assert patient["sex"] == ""


def test_followups_calendar_exports_with_its_bad_cells_reported(
    odd: dict[str, Any], runner: CliRunner, tmp_path: Path
) -> None:
    ics = tmp_path / "q.ics"
    result = runner.invoke(main, ["--db", str(odd["db"]), "followups", "--ics", str(ics)])
    assert result.exit_code == 3, result.output
    lines = bad_lines(result.stderr)
    assert len(lines) == 1 and "contact_attempts_n: text in a number column" in lines[0]
    assert "Calls without answer so far: ?" in ics.read_bytes().decode().replace("\r\n ", "")
    text = runner.invoke(main, ["--db", str(odd["db"]), "followups", "--format", "json"])
    assert text.exit_code == 3
    calls = {
        r["procedure_id"]: r["contact_attempts"]
        for r in json.loads(text.stdout)
        if r["kind"] == "day3"
    }
    assert calls[odd["p2"]] is None  # unknown, not 0
    assert calls[odd["p3"]] == 0


def test_info_and_info_check_list_one_line_per_bad_cell(
    odd: dict[str, Any], runner: CliRunner
) -> None:
    plain = runner.invoke(main, ["--db", str(odd["db"]), "info"])
    assert plain.exit_code == 0 and "Traceback" not in plain.output
    check = runner.invoke(main, ["--db", str(odd["db"]), "info", "--check"])
    assert check.exit_code == 1 and "Traceback" not in check.output
    lines = [x for x in check.stderr.splitlines() if x.startswith("  bad cell: ")]
    assert len(lines) == len(ODD), check.stderr
    assert f"{len(ODD)} bad cell(s)" in check.stderr
    assert "check:" in check.stdout and "problem(s)" in check.stdout


# ---------------------------------------------------------------- refusals
def test_formats_that_cannot_carry_a_cell_refuse_with_one_line(
    clinic: dict[str, Any], runner: CliRunner, tmp_path: Path
) -> None:
    db = clinic["db"]
    # an attempt at year 0: a de-identified copy moves every instant and this one can
    # neither be moved nor left empty (NOT NULL)
    _poke(db, "UPDATE attempts SET at = '0000-01-01T00:00:00.000000Z' WHERE rowid = 1")
    refused = export(runner, db, tmp_path / "d.db", "sqlite")
    assert refused.exit_code == 2
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "attempts" in refused.stderr and "year 0 is out of range" in refused.stderr
    assert not (tmp_path / "d.db").exists()
    assert export(runner, db, tmp_path / "i.db", "sqlite", "--identifiers").exit_code == 3
    # a study code that is a BLOB: REDCap's record id
    _poke(db, "UPDATE patients SET study_code = x'01ff' WHERE study_code = 'SMA-003'")
    refused = export(runner, db, tmp_path / "r", "redcap")
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "x'01ff'" in refused.stderr and not (tmp_path / "r").exists()
    # an open follow-up due in month 13: the queue cannot place the reminder
    _poke(
        db,
        "UPDATE followups SET due_at = '2026-13-02T10:00:00.000000Z' "
        "WHERE procedure_id = ? AND kind = 'day3'",
        (clinic["p2"],),
    )
    for args in ([], ["--format", "json"], ["--ics", str(tmp_path / "q.ics")]):
        result = runner.invoke(main, ["--db", str(db), "followups", *args])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert "due_at: not an instant (month must be in 1..12)" in result.stderr
    assert not (tmp_path / "q.ics").exists()


def test_text_that_is_not_utf8_refuses_with_one_line(
    clinic: dict[str, Any], runner: CliRunner, tmp_path: Path
) -> None:
    _poke(clinic["db"], "UPDATE procedures SET operator = CAST(x'ff41' AS TEXT)")
    for fmt in ("csv", "json", "redcap"):
        result = export(runner, clinic["db"], tmp_path / fmt, fmt)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "UTF-8" in result.stderr


# ---------------------------------------------------------------- the one rule
_INSTANTISH = st.builds(
    lambda y, mo, d, h, mi, s, tail: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{tail}",
    st.integers(0, 9999),
    st.integers(0, 19),
    st.integers(0, 39),
    st.integers(0, 29),
    st.integers(0, 69),
    st.integers(0, 69),
    st.sampled_from([".000000Z", ".123456Z", "Z", "", ".000000", ".00000Z", "+01:00"]),
)
_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=8),
    _INSTANTISH,
    st.sampled_from(["paramedian", "banana", "SMA-001", "-x", "A" * 33, "0", "1", "Infinity"]),
    st.sampled_from(["2026-03-27T09:00:00.000000Z\x00x", "SMA\x00", "2026-02-29T10:00:00.000000Z"]),
)
_RULES = [
    *cell_rules("procedures", ["started_at", "ended_at", "dose_mg", "approach", "bmi"]).values(),
    *cell_rules("procedures", ["needle_gauge", "first_attempt_success", "note"]).values(),
    *cell_rules("patients", ["study_code", "sma_type", "id"]).values(),
    *cell_rules("events", ["seq", "value"]).values(),
    CellRule("x", "anything"),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_VALUES, min_size=1, max_size=30))
def test_sql_picks_every_cell_python_refuses(values: list[Any]) -> None:
    """The SQL pre-filter may pick too much, never too little: the bad cells found
    through SQL are exactly those the Python rule refuses, for every column kind and
    every declared type a file may give the column (SQLite converts what is stored by
    it, and the SQL leaves out the checks for values the column cannot hold)."""
    conn = sqlite3.connect(":memory:")
    for i, rule in enumerate(_RULES):
        for declared in ("TEXT", "INTEGER", "REAL", "NUMERIC", ""):
            table = f"t{i}_{declared or 'none'}"
            conn.execute(f'CREATE TABLE "{table}" (v {declared})')
            conn.executemany(f'INSERT INTO "{table}" VALUES (?)', [(v,) for v in values])
            stored = [r[0] for r in conn.execute(f'SELECT v FROM "{table}" ORDER BY rowid')]
            want = {n for n, v in enumerate(stored) if rule.problem(v) is not None}
            suspect = rule.suspect_sql("t.v", declared, False)
            got: set[int] = set()
            if suspect is not None:
                for rowid, v in conn.execute(
                    f'SELECT t.rowid, t.v FROM "{table}" t WHERE {suspect}'
                ):
                    if rule.problem(v) is not None:
                        got.add(rowid - 1)
            assert got == want, (rule, declared, [stored[n] for n in want - got])
    conn.close()


def test_find_bad_cells_on_a_sound_file_finds_nothing(clinic: dict[str, Any]) -> None:
    conn = sqlite3.connect(clinic["db"])
    for table in ("patients", "procedures", "attempts", "events", "followups", "audit_log"):
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        assert find_bad_cells(conn, table, columns) == [], table
    conn.close()
