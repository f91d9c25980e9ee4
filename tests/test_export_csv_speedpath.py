"""The CSV export's SQL-built lines against the Python reference they replaced.

``csvfiles.write_csv`` builds every line in SQL (quoting, formula guard, number text,
id mask, local dates from the zone's offset changes). The reference is the former
path: the same rows through the registered Python functions (``LocalDates.date``,
``mask_id``, ``safe_cell``) and ``csv.writer``. Real SQLite files only; hostile values
are written into the file with plain SQL, as another tool could.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import SETUP

from sma_log.domain.clock import Clock
from sma_log.export import csvfiles
from sma_log.export.common import (
    ExportOptions,
    LocalDates,
    Tally,
    local_date_sql,
    offset_transitions,
    real_text_sql,
    register_functions,
)
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
    """The former writer: Python functions per value, csv.writer per row."""
    conn = store.conn
    register_functions(conn, opts.tz)
    out.mkdir()
    for table in csvfiles.export_tables(opts):
        plan = csvfiles.column_plan(conn, table, opts)
        sql, params = csvfiles.table_query(table, plan, opts)
        with (out / f"{table}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([c.name for c in plan])
            writer.writerows(conn.execute(sql, params))
    analysis = csvfiles._analysis_module()
    names = [c.name for c in csvfiles.analysis_columns(analysis, opts)]
    csvfiles._write_analysis_rows(store, analysis, out, opts, Tally(None), names)


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
    assert len(ref_files) == (8 if identifiers else 7)
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


def _sql_dates(path: Path, tz: str, instants: list[str], years: tuple[int, int]) -> list[Any]:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY, at TEXT)")
    conn.execute("DELETE FROM t")
    conn.executemany("INSERT INTO t (at) VALUES (?)", [(x,) for x in instants])
    conn.commit()
    dates = LocalDates(tz)
    conn.create_function("ref_date", 1, dates.date, deterministic=True)
    expr = local_date_sql("t.at", offset_transitions(tz, *years), "ref_date(t.at)")
    got = [r[0] for r in conn.execute(f"SELECT {expr} FROM t ORDER BY i")]
    conn.close()
    return got


@pytest.mark.parametrize("tz", ZONES)
def test_local_dates_in_sql_match_python_across_offset_changes(tmp_path: Path, tz: str) -> None:
    zone = ZoneInfo(tz)
    instants = []
    # every 10 minutes around each offset change of 2025-2027, plus 1 s either side
    start = datetime(2025, 1, 1, tzinfo=UTC)
    t = start
    prev = t.astimezone(zone).utcoffset()
    while t < datetime(2028, 1, 1, tzinfo=UTC):
        off = t.astimezone(zone).utcoffset()
        if off != prev:
            for k in range(-180, 180):
                instants.append(t + timedelta(minutes=10 * k))
            prev = off
        t += timedelta(hours=1)
    rnd = random.Random(7)
    for _ in range(3000):  # anywhere in the years, microseconds included
        instants.append(start + timedelta(seconds=rnd.uniform(0, 3 * 365 * 86400)))
    texts = [i.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for i in instants]
    texts += [i.strftime("%Y-%m-%dT%H:%M:%SZ") for i in instants[:500]]
    texts += [i.strftime("%Y-%m-%dT%H:%M:%S") for i in instants[:500]]
    # outside the years the SQL covers, and malformed: the Python fallback answers
    texts += ["2019-07-01T23:30:00.000000Z", "2031-12-31T23:30:00.000000Z", "2026-03-29"]
    texts += ["2026-03-29T01:30:00+05:00", "short", "2026-10-25T00:59:59.999999Z"]
    got = _sql_dates(tmp_path / "dates.db", tz, texts, (2025, 2027))
    dates = LocalDates(tz)
    expected = [dates.date(x) for x in texts]
    bad = [(x, g, e) for x, g, e in zip(texts, got, expected, strict=True) if g != e]
    assert bad == []
    # and against a plain conversion, not only against the cached one
    for x, g in zip(texts[:4000], got, strict=False):
        utc = datetime.fromisoformat(x.replace("Z", "+00:00")).replace(tzinfo=UTC)
        assert g == utc.astimezone(zone).date().isoformat(), x


def test_offset_transitions_of_zones_with_non_hour_offsets() -> None:
    assert offset_transitions("Asia/Kolkata", 2026, 2026) == [
        ("2026-01-01T00:00:00", 19800),
        ("2027-01-01T00:00:00", 0),
    ]
    # Lord Howe moves by 30 minutes: +11 in summer, +10:30 in winter
    assert offset_transitions("Australia/Lord_Howe", 2026, 2026) == [
        ("2026-01-01T00:00:00", 39600),
        ("2026-04-04T15:00:00", 37800),
        ("2026-10-03T15:30:00", 39600),
        ("2027-01-01T00:00:00", 0),
    ]


def test_real_text_in_sql_is_python_repr(tmp_path: Path) -> None:
    rnd = random.Random(11)
    values = list(REALS)
    values += [rnd.uniform(-1e6, 1e6) for _ in range(4000)]
    values += [k / 60 for k in range(1, 3000)]  # minutes from whole seconds
    values += [round(rnd.uniform(0, 300), rnd.randint(0, 6)) for _ in range(2000)]
    values += [rnd.uniform(0, 1) * 10 ** rnd.randint(-4, 14) for _ in range(2000)]
    conn = sqlite3.connect(tmp_path / "reals.db")
    conn.execute("CREATE TABLE r (i INTEGER PRIMARY KEY, x REAL)")
    conn.executemany("INSERT INTO r (x) VALUES (?)", [(v,) for v in values])
    conn.commit()
    sql = f"SELECT x, {real_text_sql('x')} FROM r ORDER BY i"
    python = []
    for v, g in conn.execute(sql):
        if g is None:  # left to Python: 16-17 digits, tiny, huge, infinite
            python.append(v)
        else:
            assert g == repr(v), v
    # short decimals (what is typed in: 12.0, 14.4, 0.5) never need Python
    assert not any(v in python for v in (12.0, 0.0, -2.5, 0.0001, 12345678901234.5))
    assert not any(
        len(repr(v).replace("-", "").replace(".", "")) <= 15
        for v in python
        if 1e-4 <= abs(v) < 1e15
    )
    assert conn.execute("SELECT count(*) FROM r WHERE typeof(x) = 'real'").fetchone()[0] == len(
        values
    )


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
