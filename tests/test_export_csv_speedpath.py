"""The CSV export on hostile values, against an independent reference writer.

``csvfiles.write_csv`` runs one query per file and a cell function per column. The
reference reads every stored row as a dict, applies ``deidentify_row`` (the rule of
every format) and the formula guard, and lets ``csv.writer`` do the rest. Real SQLite
files only; hostile values are written into the file with plain SQL, as another tool
could. (Until issue 12 the export built its lines in SQL and these tests held it to
the Python path; tests/test_export_csv_digests.py pins the bytes it wrote.)
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import SETUP

from sma_log.domain.cells import formula_safe, mask_id
from sma_log.domain.clock import Clock
from sma_log.export import csvfiles
from sma_log.export.common import ExportOptions, LocalDates, deidentify_row
from sma_log.storage import analysis
from sma_log.storage.store import Store

#: Text a spreadsheet or a CSV reader could trip on.
HOSTILE = (
    "a,b",
    'say "hi"',
    "two\nlines",
    "cr\rin the middle",
    "crlf\r\nend",
    "=1+1",
    "-5",
    "+39 06 1234",
    "@SUM(A1)",
    "\tTabbed",
    "\rreturn first",
    "'quoted'",
    "",
    "Ünïcödé, ☃",
    "unit\x1fsep",
    '=HYPERLINK("http://x","y"), then more',
    "0",
    "-",
)
#: REAL values whose text form is tricky (shortest repr needs 16 or 17 digits, or
#: lies outside the range SQL formats itself, or is a whole number).
REALS = (
    0.1 + 0.2,
    1 / 3,
    583 / 60,
    9.716666666666667,
    12.0,
    0.0,
    -2.5,
    1e-05,
    0.0001,
    123456789012345.6,
    12345678901234.5,
    1e15,
    1e16,
    2.5e-300,
    float("inf"),
    -float("inf"),
    5e-324,
    1.7976931348623157e308,
)
ZONES = ("Europe/Rome", "Asia/Kolkata", "Australia/Lord_Howe", "America/St_Johns", "UTC")


def _database(path: Path) -> Path:
    """Procedures across Rome's 2026 DST changes, then hostile values put in by SQL."""
    with Store.open(path, "tester", clock=Clock(monotonic=False)) as store:
        pts = [
            store.create_patient({"study_code": f"SMA-{i:03d}", "sma_type": "2"}) for i in range(3)
        ]
        procs = []
        for i in range(12):
            p = store.start_procedure(pts[i % 3]["id"], SETUP)
            store.record(p, "attempt")
            store.record(p, "redirect")
            store.record(p, "note", f"note {i}, with a comma")
            store.record(p, "csf")
            store.record(p, "injection_start")
            store.record(p, "injection_end")
            store.end_procedure(p, {"drug_delivered": "yes"})
            procs.append(p)
    conn = sqlite3.connect(path)
    # Start times around the spring and autumn changes of 2026 (Rome: 29 March and
    # 25 October, 01:00 UTC) and around local midnight.
    starts = [
        "2026-03-28T22:59:59.999999Z",
        "2026-03-28T23:00:00.000000Z",
        "2026-03-29T00:59:59.000000Z",
        "2026-03-29T01:00:00.000000Z",
        "2026-03-29T21:59:59.000000Z",
        "2026-03-29T22:00:00.000000Z",
        "2026-10-24T21:59:59.000000Z",
        "2026-10-24T22:00:00.000000Z",
        "2026-10-25T00:59:59.999999Z",
        "2026-10-25T01:00:00.000000Z",
        "2026-10-25T22:59:59.000000Z",
        "2026-10-25T23:00:00.000000Z",
    ]
    for p, start in zip(procs, starts, strict=True):
        base = datetime.fromisoformat(start.replace("Z", "+00:00"))
        conn.execute(
            "UPDATE procedures SET started_at = ?, ended_at = ? WHERE id = ?",
            (start, (base + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), p),
        )
        for n, (eid,) in enumerate(
            conn.execute("SELECT id FROM events WHERE procedure_id = ? ORDER BY seq", (p,))
        ):
            at = (base + timedelta(minutes=7 * n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute("UPDATE events SET at = ? WHERE id = ?", (at, eid))
            conn.execute("UPDATE attempts SET at = ? WHERE id = ?", (at, eid))
    rows = [r[0] for r in conn.execute("SELECT id FROM procedures ORDER BY started_at")]
    for i, (p, text) in enumerate(zip(rows, HOSTILE[6:] + HOSTILE[:6], strict=False)):
        real = REALS[i % len(REALS)]
        conn.execute(
            "UPDATE procedures SET operator = ?, assistant = ?, fallback = ?, bmi = ?, "
            "cobb_angle = ?, procedure_min = ? WHERE id = ?",
            (text, HOSTILE[i], text, real, REALS[-1 - i], REALS[(i + 5) % len(REALS)], p),
        )
        conn.execute(
            "UPDATE events SET value = ?, recorded_by = ? WHERE procedure_id = ? AND kind = 'csf'",
            (text, HOSTILE[(i + 3) % len(HOSTILE)], p),
        )
    # a few values of the wrong kind: text in a number column, a number in a text
    # column, malformed instants, an id that is not a ULID
    conn.execute(f"UPDATE procedures SET needle_gauge = 'twenty, two' WHERE id = '{rows[0]}'")
    conn.execute(f"UPDATE procedures SET dose_mg = '=12' WHERE id = '{rows[1]}'")
    conn.execute(f"UPDATE procedures SET csf_at = 'not a time, at all' WHERE id = '{rows[2]}'")
    conn.execute(f"UPDATE procedures SET csf_at = '2026-03-29T01:30:00' WHERE id = '{rows[3]}'")
    conn.execute(f"UPDATE procedures SET csf_at = '2026-03-29 23:30:00Z' WHERE id = '{rows[4]}'")
    conn.execute(f"UPDATE procedures SET csf_at = 1774746000 WHERE id = '{rows[5]}'")
    conn.execute(f"UPDATE procedures SET csf_at = '2031-06-01T23:30:00Z' WHERE id = '{rows[6]}'")
    conn.execute(
        f"UPDATE procedures SET csf_at = '2026-03-29T01:30:00+05:00' WHERE id = '{rows[7]}'"
    )
    conn.execute("UPDATE patients SET sex = '-x, y' WHERE study_code = 'SMA-001'")
    conn.execute("CREATE TABLE zz_not_exported (id TEXT, secret TEXT)")
    conn.execute("INSERT INTO zz_not_exported VALUES ('x', 'Zebedee')")
    conn.commit()
    conn.close()
    return path


def _reference(store: Any, opts: ExportOptions, out: Path) -> None:
    """An independent writer: every stored row as a dict through ``deidentify_row``
    (the rule of every format), text cells of TEXT columns through ``formula_safe``,
    ``csv.writer`` for the rest; the analysis rows from ``iter_analysis_rows``."""
    conn = store.conn
    dates = LocalDates(opts.tz)
    out.mkdir()
    for table in csvfiles.export_tables(opts):
        declared = {r[1]: (r[2] or "").upper() for r in conn.execute(f"PRAGMA table_info({table})")}
        extra = (
            ", pt.study_code AS study_code"
            if table in ("procedures", "identifiers", "labs")
            else ""
        )
        if table in ("attempts", "events"):
            extra += f", {csvfiles.MINUTES_FROM_START} AS minutes_from_start"
        where, params = csvfiles._where(table, opts)
        cur = conn.execute(
            f"SELECT t.*{extra} FROM {csvfiles._FROM[table]} WHERE {where} "
            f"ORDER BY {csvfiles._ORDER[table]}",
            params,
        )
        names = [d[0] for d in cur.description]
        cols = list(deidentify_row(table, dict.fromkeys(names), opts, dates) or names)
        if extra.startswith(", pt.study_code"):  # right after patient_id
            cols.remove("study_code")
            cols.insert(cols.index("patient_id") + 1, "study_code")
        with (out / f"{table}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for values in cur:
                row = dict(zip(names, values, strict=True))
                kept = deidentify_row(table, row, opts, dates)
                assert kept is not None
                cells = []
                for n in cols:
                    v = kept.get(n)  # a note's text: an empty cell
                    if isinstance(v, bytes):
                        v = None
                    elif declared.get(n) == "TEXT" and not (
                        n.endswith(("_id", "_at")) or n in ("id", "at")
                    ):
                        v = formula_safe(v)
                    cells.append(v)
                writer.writerow(cells)
    names = [c.name for c in csvfiles.analysis_columns(opts)]
    with (out / csvfiles.ANALYSIS_FILE).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        rows = analysis.iter_analysis_rows(
            store, opts.date_from, opts.date_to, columns=names, tz=opts.tz
        )
        for row in rows:
            cells = []
            for n in names:
                v = row[n]
                if isinstance(v, bytes) or v is None:
                    v = None
                elif not opts.identifiers and n in analysis.DATETIME_COLUMNS:
                    v = dates.date(v)
                elif not opts.identifiers and (n == "id" or n.endswith("_id")):
                    v = mask_id(v)
                else:
                    v = formula_safe(v)
                cells.append(v)
            writer.writerow(cells)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _database(tmp_path_factory.mktemp("speedpath") / "hostile.db")


@pytest.mark.parametrize("identifiers", [False, True])
@pytest.mark.parametrize("tz", ["Europe/Rome", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_csv_folder_is_byte_identical_to_the_python_reference(
    hostile_db: Path, tmp_path: Path, tz: str, identifiers: bool
) -> None:
    opts = ExportOptions(identifiers=identifiers, tz=tz)
    with Store.open(hostile_db, "t", readonly=True) as store:
        counts = csvfiles.write_csv(store, tmp_path / "new", opts, force=False)
    with Store.open(hostile_db, "t", readonly=True) as store:
        _reference(store, opts, tmp_path / "ref")
    ref_files = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert len(ref_files) == (10 if identifiers else 9)  # 9: labs, timeouts (issue 14)
    for name in ref_files:
        new = (tmp_path / "new" / name).read_bytes()
        ref = (tmp_path / "ref" / name).read_bytes()
        assert new == ref, name
        with (tmp_path / "new" / name).open(encoding="utf-8", newline="") as fh:
            assert len(list(csv.reader(fh))) - 1 == counts[name]
    # only the tables the export knows: report_facts, zz_not_exported … are not files
    written = {p.name for p in (tmp_path / "new").iterdir()}
    assert written <= set(csvfiles.ALL_FILES)
    assert not any("zz_" in n or "report" in n for n in written)
    assert b"Zebedee" not in b"".join(p.read_bytes() for p in (tmp_path / "new").iterdir())


def test_hostile_cells_read_back_quoted_and_guarded(hostile_db: Path, tmp_path: Path) -> None:
    opts = ExportOptions(identifiers=False, tz="Europe/Rome")
    with Store.open(hostile_db, "t", readonly=True) as store:
        csvfiles.write_csv(store, tmp_path / "out", opts, force=False)
    raw = (tmp_path / "out" / "procedures.csv").read_bytes()
    assert raw.endswith(b"\r\n")
    with (tmp_path / "out" / "procedures.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    operators = {r["operator"] for r in rows} | {r["assistant"] for r in rows}
    assert {"a,b", 'say "hi"', "two\nlines", "crlf\r\nend", "Ünïcödé, ☃"} <= operators
    assert {"'=1+1", "'-5", "'+39 06 1234", "'@SUM(A1)", "'\tTabbed", "'\rreturn first"} <= (
        operators
    )
    assert "'quoted'" in operators and "0" in operators and "'-" in operators
    assert b'"say ""hi"""' in raw and b'"a,b"' in raw
    # numbers are never guarded; text in a number column is quoted but not guarded
    assert {"twenty, two"} <= {r["needle_gauge"] for r in rows}
    assert "=12" in {r["dose_mg"] for r in rows}
    reals = {r["bmi"] for r in rows} | {r["cobb_angle"] for r in rows}
    assert {"-2.5", "12.0", "0.0", "0.30000000000000004", "1e-05", "1e+16", "inf"} <= reals
    # local dates across the spring change: 22:59:59.999999 UTC is still the 28th in
    # Rome (+1), 23:00 is the 29th; after 01:00 UTC the offset is +2
    starts = [r["started_at"] for r in rows]
    assert starts[:6] == [
        "2026-03-28",
        "2026-03-29",
        "2026-03-29",
        "2026-03-29",
        "2026-03-29",
        "2026-03-30",
    ]
    assert starts[6:] == [
        "2026-10-24",
        "2026-10-25",
        "2026-10-25",
        "2026-10-25",
        "2026-10-25",
        "2026-10-26",
    ]


@pytest.fixture(scope="module")
def plain_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plain") / "plain.db"
    with Store.open(path, "tester", clock=Clock(monotonic=False)) as store:
        pt = store.create_patient({"study_code": "SMA-001", "sma_type": "2"})
        for _ in range(3):
            p = store.start_procedure(pt["id"], SETUP)
            for kind in ("attempt", "csf", "injection_start", "injection_end"):
                store.record(p, kind)
            store.end_procedure(p, {"drug_delivered": "yes"})
    return path


@pytest.mark.parametrize("value", HOSTILE)
def test_one_hostile_value_alone_in_a_chunk(plain_db: Path, tmp_path: Path, value: str) -> None:
    """Each value as the only odd cell of its file: the chunk test alone must catch it."""
    db = tmp_path / "one.db"
    db.write_bytes(plain_db.read_bytes())
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE procedures SET assistant = ? WHERE rowid = (SELECT min(rowid) FROM procedures)",
        (value,),
    )
    conn.commit()
    conn.close()
    opts = ExportOptions(identifiers=False, tz="Europe/Rome")
    with Store.open(db, "t", readonly=True) as store:
        csvfiles.write_csv(store, tmp_path / "new", opts, force=False)
    with Store.open(db, "t", readonly=True) as store:
        _reference(store, opts, tmp_path / "ref")
    for name in ("procedures.csv", "procedures_analysis.csv"):
        new = (tmp_path / "new" / name).read_bytes()
        assert new == (tmp_path / "ref" / name).read_bytes(), name
    with (tmp_path / "new" / "procedures.csv").open(encoding="utf-8", newline="") as fh:
        cells = {r["assistant"] for r in csv.DictReader(fh)}
    assert ("'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value) in cells


def test_date_range_export_matches_the_reference(hostile_db: Path, tmp_path: Path) -> None:
    """--from/--to: the parameters reach the line queries and the careful lines."""
    from datetime import date

    for identifiers in (False, True):
        opts = ExportOptions(
            identifiers=identifiers,
            tz="Europe/Rome",
            date_from=date(2026, 3, 29),
            date_to=date(2026, 10, 25),
        )
        new, ref = tmp_path / f"new{identifiers}", tmp_path / f"ref{identifiers}"
        with Store.open(hostile_db, "t", readonly=True) as store:
            counts = csvfiles.write_csv(store, new, opts, force=False)
        with Store.open(hostile_db, "t", readonly=True) as store:
            _reference(store, opts, ref)
        assert 0 < counts["procedures.csv"] < 12
        for p in ref.iterdir():
            assert (new / p.name).read_bytes() == p.read_bytes(), p.name
