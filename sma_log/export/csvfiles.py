"""``sma-log export --format csv``: one CSV file per table, the analysis file, the dictionary.

Each file is one query over the stored values and ``csv.writer``: a column's stored
value goes through its one cell function (the rules of every format, defined once:
:func:`~sma_log.domain.cells.formula_safe`, :func:`~sma_log.domain.cells.mask_id`,
:meth:`~sma_log.export.common.LocalDates.date` after
:func:`~sma_log.export.common.column_action`), and ``csv.writer`` does the quoting
(RFC 4180) and writes numbers as Python does. Rows are fetched a few thousand at a
time (constant memory). (Until issue 12 every line was built in SQL beside this
writer; at 100k procedures that was 1.2x faster, not worth two definitions of every
rule: benchmarks/export_csv.py.)

Files (UTF-8, with a byte-order mark with ``--excel``; comma-separated, RFC 4180
quoting, CRLF line ends like every CSV sma-log writes; header row; empty cell =
missing): ``patients.csv``, ``procedures.csv``, ``attempts.csv``,
``events.csv``, ``followups.csv``, ``contact_attempts.csv`` (and ``identifiers.csv``
with ``--identifiers``), ``procedures_analysis.csv`` (one row per procedure, from
:mod:`sma_log.storage.analysis`) and ``data_dictionary.csv``. Only the tables listed
in :data:`TABLES` are exported; tables the export does not know are ignored.

Bad cells (a value another tool wrote that sma-log would not store; found by
:func:`sma_log.export.common.find_bad_cells` before each file, and reported) are
written as stored, except a BLOB and, de-identified, an instant that cannot be read:
those cells are empty.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.cells import formula_safe, mask_id
from ..storage import analysis
from .common import (
    DATE,
    MASK_ID,
    NOTE_EVENT_KINDS,
    REMOVE,
    REMOVED_TABLES,
    BadCell,
    ExportOptions,
    LocalDates,
    Tally,
    column_action,
    deidentification_manifest,
    find_bad_cells,
    is_id_column,
    is_instant_column,
    open_private,
    staged_folder,
)

TABLES = (
    "patients",
    "procedures",
    "attempts",
    "events",
    "followups",
    "contact_attempts",
    "labs",
    "timeouts",
)
ANALYSIS_FILE = "procedures_analysis.csv"
DICTIONARY_FILE = "data_dictionary.csv"
ALL_FILES = (
    *(f"{t}.csv" for t in (*TABLES, "identifiers")),
    ANALYSIS_FILE,
    DICTIONARY_FILE,
)
#: Alias of the table itself in every query, and how each table reaches its procedure.
#: ``CROSS JOIN`` makes SQLite walk the procedures in start order (their index) and
#: fetch each one's rows by index, so only rows of equal start time are sorted.
_FROM: dict[str, str] = {
    "patients": "patients t",
    "identifiers": "identifiers t JOIN patients pt ON pt.id = t.patient_id",
    "procedures": "procedures t JOIN patients pt ON pt.id = t.patient_id",
    "attempts": "procedures p CROSS JOIN attempts t ON t.procedure_id = p.id",
    "events": "procedures p CROSS JOIN events t ON t.procedure_id = p.id",
    "followups": "procedures p CROSS JOIN followups t ON t.procedure_id = p.id",
    "contact_attempts": (
        "procedures p CROSS JOIN followups f ON f.procedure_id = p.id "
        "CROSS JOIN contact_attempts t ON t.followup_id = f.id"
    ),
    "labs": "labs t JOIN patients pt ON pt.id = t.patient_id",
    "timeouts": "procedures p CROSS JOIN timeouts t ON t.procedure_id = p.id",
}
_ORDER: dict[str, str] = {
    "patients": "t.study_code",
    "identifiers": "pt.study_code",
    "procedures": "t.started_at, t.id",
    "attempts": "p.started_at, t.procedure_id, t.at, t.id",
    "events": "p.started_at, t.procedure_id, t.seq",
    "followups": "p.started_at, t.procedure_id, t.kind",
    "contact_attempts": "p.started_at, t.followup_id, t.at, t.id",
    "labs": "pt.study_code, t.taken_on, t.test, t.id",
    "timeouts": "p.started_at, t.procedure_id",
}
MINUTES_FROM_START = "round((julianday(t.at) - julianday(p.started_at)) * 1440, 3)"
#: Rows fetched from SQLite per write.
CHUNK = 4096

#: How a column's value becomes its cell: as stored, formula-guarded text, a masked
#: record id, an instant as its local date.
PLAIN, GUARD = "plain", "guard"


@dataclass(frozen=True)
class Column:
    """One exported column: its name, the SQL of the value it is made from, and how
    that value becomes its cell (:data:`PLAIN`, :data:`GUARD`, ``mask_id`` or ``date``).
    ``stored``: the value is the table's own column (its bad cells are looked for)."""

    table: str
    name: str
    sql: str
    cell: str = PLAIN
    stored: bool = True


def table_columns(conn: Any, table: str) -> list[tuple[str, str]]:
    return [(r[1], (r[2] or "").upper()) for r in conn.execute(f"PRAGMA table_info({table})")]


def column_plan(conn: Any, table: str, opts: ExportOptions) -> list[Column]:
    """What ``table``'s CSV holds, in order (the data dictionary reads the same plan)."""
    out: list[Column] = []
    for name, declared in table_columns(conn, table):
        action = column_action(table, name, opts.identifiers)  # the rule of every format
        col = f"t.{name}"
        if action == REMOVE:
            continue
        if action in (MASK_ID, DATE):
            out.append(Column(table, name, col, action))
        elif is_id_column(name) or is_instant_column(name):  # kept as stored
            out.append(Column(table, name, col))
        elif table == "events" and name == "value" and not opts.identifiers:
            note = ", ".join(f"'{k}'" for k in NOTE_EVENT_KINDS)  # a note's text is left out
            value = f"CASE WHEN t.kind IN ({note}) THEN NULL ELSE {col} END"
            out.append(Column(table, name, value, GUARD))
        elif declared == "TEXT":
            out.append(Column(table, name, col, GUARD))
        else:
            out.append(Column(table, name, col))
        if table in ("procedures", "identifiers", "labs") and name == "patient_id":
            out.append(Column(table, "study_code", "pt.study_code", stored=False))  # unguarded
    if table in ("attempts", "events"):
        out.append(Column(table, "minutes_from_start", MINUTES_FROM_START, stored=False))
    return out


def _where(table: str, opts: ExportOptions) -> tuple[str, list[str]]:
    if table in ("patients", "identifiers", "labs"):
        key = "t.id" if table == "patients" else "t.patient_id"
        cond, params = opts.start_filter("x.started_at")
        where = (
            f"EXISTS (SELECT 1 FROM procedures x WHERE x.patient_id = {key} AND {cond})"
            if params
            else "1"
        )
        return where, params
    if table == "procedures":
        return opts.start_filter("t.started_at")
    return opts.start_filter("p.started_at")


def count_rows(conn: Any, table: str, opts: ExportOptions) -> int:
    where, params = _where(table, opts)
    sql = f"SELECT count(*) FROM {_FROM[table]} WHERE {where}"
    return int(conn.execute(sql, params).fetchone()[0])


def export_tables(opts: ExportOptions) -> tuple[str, ...]:
    return (*TABLES, "identifiers") if opts.identifiers else TABLES


def write_csv(store: Any, out: Path, opts: ExportOptions, force: bool) -> dict[str, int]:
    """Write the CSV folder at ``out``; returns rows written per file.

    Bad cells (see :func:`~sma_log.export.common.find_bad_cells`) are reported to
    ``opts.bad`` and written as stored, except a BLOB (CSV is text) and, de-identified,
    an instant that cannot be read (its date is not known and its text may hold the
    time of day): those cells are empty.
    """
    from . import dictionary

    conn = store.conn
    tables = export_tables(opts)
    counts: dict[str, int] = {}
    progress = Tally(opts.progress)
    conn.execute("BEGIN")  # one read snapshot: every file sees the same database
    try:
        if opts.progress is not None:
            progress.total = sum(count_rows(conn, t, opts) for t in (*tables, "procedures"))
        dates = LocalDates(opts.tz)
        with staged_folder(out, force, ALL_FILES) as folder:
            plans = {}
            touched: set[Any] = set()  # procedures whose analysis row has a bad cell
            for table in tables:
                plan = column_plan(conn, table, opts)
                plans[table] = plan
                bad = bad_rows(conn, table, plan, opts, dates)
                touched |= _procedures_of(conn, table, bad)
                counts[f"{table}.csv"] = write_table(
                    conn, folder / f"{table}.csv", table, plan, opts, progress, frozenset(bad)
                )
            columns, counts[ANALYSIS_FILE] = _write_analysis(
                conn, folder, opts, progress, frozenset(touched)
            )
            with open_private(folder / DICTIONARY_FILE, opts.excel) as fh:
                writer = csv.writer(fh)
                stored = {t: [n for n, _ in table_columns(conn, t)] for t in tables}
                for t in REMOVED_TABLES:  # what a de-identified export leaves out whole
                    stored.setdefault(t, [])
                manifest = deidentification_manifest(opts.identifiers, stored, opts.tz)
                rows = dictionary.csv_dictionary(plans, columns, opts, manifest)
                writer.writerow(dictionary.CSV_HEADER)
                writer.writerows([formula_safe(v) for v in r] for r in rows)
                counts[DICTIONARY_FILE] = len(rows)
        if opts.progress is not None:  # the open procedures have no analysis row
            opts.progress(progress.done, progress.done)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    return counts


def bad_rows(
    conn: Any, table: str, plan: list[Column], opts: ExportOptions, dates: LocalDates
) -> dict[int, list[BadCell]]:
    """The bad cells of ``table``'s file, reported to ``opts.bad``, by rowid."""
    stored = [c.name for c in plan if c.stored]
    guards = {}
    if table == "events" and not opts.identifiers:  # a note's text is not exported
        guards["value"] = "t.kind IS NOT 'note'"
    where, params = _where(table, opts)
    found = find_bad_cells(conn, table, stored, _FROM[table], where, params, guards)
    cells = {c.name: c.cell for c in plan}
    out: dict[int, list[BadCell]] = {}
    for cell in found:
        out.setdefault(cell.rowid, []).append(cell)
        opts.bad.add(cell, csv_action(cell.value, cells.get(cell.column, PLAIN), dates))
    return out


def csv_action(value: Any, cell: str, dates: LocalDates) -> str:
    """What the CSV files hold for a bad cell."""
    if isinstance(value, bytes):
        return "written empty"
    if cell == DATE:
        return "written empty" if dates.date(value) is None else "written as its local date"
    return "written as stored"


def _procedures_of(conn: Any, table: str, bad: dict[int, list[BadCell]]) -> set[Any]:
    """The procedures whose analysis row reads a row of ``table`` that has a bad cell."""
    if not bad:
        return set()
    if table == "procedures":
        return {cells[0].row_id for cells in bad.values()}
    column = {"patients": "patient_id", "followups": "id"}.get(table)
    if column is None:
        return set()
    ids = [cells[0].row_id for cells in bad.values()]
    sql = {
        "patients": "SELECT id FROM procedures WHERE patient_id IN ({keys})",
        "followups": "SELECT procedure_id FROM followups WHERE id IN ({keys})",
    }[table]
    out: set[Any] = set()
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        out.update(
            r[0] for r in conn.execute(sql.replace("{keys}", ", ".join("?" * len(part))), part)
        )
    return out


def _cell_function(cell: str, dates: LocalDates) -> Callable[[Any], Any] | None:
    """The function that makes a cell from its value (None: the value itself)."""
    return {GUARD: formula_safe, MASK_ID: mask_id, DATE: dates.date}.get(cell)


def write_table(
    conn: Any,
    path: Path,
    table: str,
    plan: list[Column],
    opts: ExportOptions,
    progress: Tally,
    bad_keys: frozenset[int] = frozenset(),
) -> int:
    """One table's CSV file; ``bad_keys``: the rowids of the rows with a bad cell."""
    where, params = _where(table, opts)
    select = ", ".join([*(c.sql for c in plan), "t.rowid"])
    sql = f"SELECT {select} FROM {_FROM[table]} WHERE {where} ORDER BY {_ORDER[table]}"
    dates = LocalDates(opts.tz)
    funcs = [(i, f) for i, c in enumerate(plan) if (f := _cell_function(c.cell, dates))]
    with open_private(path, opts.excel) as fh:
        csv.writer(fh).writerow([c.name for c in plan])
        return _write_rows(fh, conn.execute(sql, params), funcs, progress, bad_keys)


def analysis_dropped(name: str, opts: ExportOptions) -> bool:
    """Free-text columns of the analysis file that a de-identified export leaves out."""
    return not opts.identifiers and name in analysis.IDENTIFYING_COLUMNS


def analysis_columns(opts: ExportOptions) -> list[Any]:
    return [c for c in analysis.ANALYSIS_COLUMNS if not analysis_dropped(c.name, opts)]


def analysis_cell(name: str, opts: ExportOptions) -> str:
    """How an analysis value becomes its cell (the rule of every format's columns)."""
    if opts.identifiers:
        return GUARD
    if name in analysis.DATETIME_COLUMNS:
        return DATE
    if is_id_column(name):
        return MASK_ID
    return GUARD


def _write_analysis(
    conn: Any, folder: Path, opts: ExportOptions, progress: Tally, bad_keys: frozenset[Any]
) -> tuple[list[Any], int]:
    """procedures_analysis.csv from :mod:`sma_log.storage.analysis`, de-identified like
    the rest; ``bad_keys``: the procedures whose row holds a bad cell."""
    columns = analysis_columns(opts)
    names = [c.name for c in columns]
    inner, _, params = analysis.analysis_sql(names, opts.date_from, opts.date_to, opts.tz)
    dates = LocalDates(opts.tz)
    funcs = [
        (i, f) for i, n in enumerate(names) if (f := _cell_function(analysis_cell(n, opts), dates))
    ]
    key = "a.procedure_id" if "procedure_id" in names else "NULL"
    cur = conn.execute(f"SELECT a.*, {key} FROM ({inner}) a", params)
    with open_private(folder / ANALYSIS_FILE, opts.excel) as fh:
        csv.writer(fh).writerow(names)
        return columns, _write_rows(fh, cur, funcs, progress, bad_keys)


def _write_rows(
    fh: Any,
    cur: Any,
    funcs: list[tuple[int, Callable[[Any], Any]]],
    progress: Tally,
    bad_keys: frozenset[Any],
) -> int:
    """Rows of ``cur`` (its last value is the row's key) through their cell functions
    (``(index, function)``; NULL stays an empty cell); a BLOB (only in a row of
    ``bad_keys``: every BLOB is a bad cell) is an empty cell."""
    writer = csv.writer(fh)
    n = 0
    while rows := cur.fetchmany(CHUNK):
        out = []
        for row in rows:
            line = list(row)
            key = line.pop()
            for i, f in funcs:
                v = line[i]
                if v is not None:
                    line[i] = f(v)
            if bad_keys and key in bad_keys:
                line = [None if isinstance(v, bytes) else v for v in line]
            out.append(line)
        writer.writerows(out)
        n += len(rows)
        progress.add(len(rows))
    return n
