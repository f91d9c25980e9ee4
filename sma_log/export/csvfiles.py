"""``sma-log export --format csv``: one CSV file per table, the analysis file, the dictionary.

Each file is one SQL query streamed through ``csv.writer`` (constant memory: a cursor
hands over one row at a time). De-identification and the formula-injection guard are
done inside the query (SQL expressions, plus two small registered functions for the
local date and the id mask), so the rows go from SQLite to the writer untouched by
Python in between.

Files (UTF-8, comma-separated, RFC 4180 quoting, header row, empty cell = missing):
``patients.csv``, ``procedures.csv``, ``attempts.csv``, ``events.csv``,
``followups.csv``, ``contact_attempts.csv`` (and ``identifiers.csv`` with
``--identifiers``), ``procedures_analysis.csv`` (one row per procedure, from
:mod:`sma_log.storage.analysis`) and ``data_dictionary.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    ExportOptions,
    Progress,
    identifying_columns,
    is_id_column,
    is_instant_column,
    mask_id,
    mask_id_sql,
    open_private,
    register_functions,
    safe_cell,
    safe_sql,
    staged_folder,
)

TABLES = ("patients", "procedures", "attempts", "events", "followups", "contact_attempts")
ANALYSIS_FILE = "procedures_analysis.csv"
DICTIONARY_FILE = "data_dictionary.csv"
ALL_FILES = (
    *(f"{t}.csv" for t in (*TABLES, "identifiers")),
    ANALYSIS_FILE,
    DICTIONARY_FILE,
)
#: Alias of the table itself in every query, and how each table reaches its procedure.
_FROM: dict[str, str] = {
    "patients": "patients t",
    "identifiers": "identifiers t JOIN patients pt ON pt.id = t.patient_id",
    "procedures": "procedures t JOIN patients pt ON pt.id = t.patient_id",
    "attempts": "attempts t JOIN procedures p ON p.id = t.procedure_id",
    "events": "events t JOIN procedures p ON p.id = t.procedure_id",
    "followups": "followups t JOIN procedures p ON p.id = t.procedure_id",
    "contact_attempts": (
        "contact_attempts t JOIN followups f ON f.id = t.followup_id "
        "JOIN procedures p ON p.id = f.procedure_id"
    ),
}
_ORDER: dict[str, str] = {
    "patients": "t.study_code",
    "identifiers": "pt.study_code",
    "procedures": "t.started_at, t.id",
    "attempts": "p.started_at, t.procedure_id, t.at, t.id",
    "events": "p.started_at, t.procedure_id, t.seq",
    "followups": "p.started_at, t.procedure_id, t.kind",
    "contact_attempts": "p.started_at, t.followup_id, t.at, t.id",
}
MINUTES_FROM_START = "round((julianday(t.at) - julianday(p.started_at)) * 1440, 3)"


@dataclass(frozen=True)
class Column:
    """One exported column: its name, the SQL that yields it, the stored declared type."""

    table: str
    name: str
    expr: str
    declared: str


def table_columns(conn: Any, table: str) -> list[tuple[str, str]]:
    return [(r[1], (r[2] or "").upper()) for r in conn.execute(f"PRAGMA table_info({table})")]


def column_plan(conn: Any, table: str, opts: ExportOptions) -> list[Column]:
    """What ``table``'s CSV holds, in order (the data dictionary reads the same plan)."""
    dropped = set() if opts.identifiers else set(identifying_columns(table))
    out: list[Column] = []
    for name, declared in table_columns(conn, table):
        if name in dropped:
            continue
        col = f"t.{name}"
        if is_id_column(name):
            expr = col if opts.identifiers else mask_id_sql(col)
        elif is_instant_column(name):
            expr = col if opts.identifiers else f"sma_local_date({col})"
        elif table == "events" and name == "value" and not opts.identifiers:
            expr = f"CASE WHEN t.kind = 'note' THEN NULL ELSE {safe_sql(col)} END"
        elif declared == "TEXT":
            expr = safe_sql(col)
        else:
            expr = col
        out.append(Column(table, name, expr, declared))
        if table == "procedures" and name == "patient_id":
            out.append(Column(table, "study_code", "pt.study_code", "TEXT"))
        if table == "identifiers" and name == "patient_id":
            out.append(Column(table, "study_code", "pt.study_code", "TEXT"))
    if table in ("attempts", "events"):
        out.append(Column(table, "minutes_from_start", MINUTES_FROM_START, "REAL"))
    return out


def table_query(table: str, plan: list[Column], opts: ExportOptions) -> tuple[str, list[str]]:
    select = ", ".join(f"{c.expr} AS {c.name}" for c in plan)
    if table in ("patients", "identifiers"):
        key = "t.id" if table == "patients" else "t.patient_id"
        cond, params = opts.start_filter("x.started_at")
        where = (
            f"EXISTS (SELECT 1 FROM procedures x WHERE x.patient_id = {key} AND {cond})"
            if params
            else "1"
        )
    elif table == "procedures":
        where, params = opts.start_filter("t.started_at")
    else:
        where, params = opts.start_filter("p.started_at")
    sql = f"SELECT {select} FROM {_FROM[table]} WHERE {where} ORDER BY {_ORDER[table]}"
    return sql, params


def count_rows(conn: Any, table: str, opts: ExportOptions) -> int:
    sql, params = table_query(table, [Column(table, "one", "1", "")], opts)
    sql = sql.split(" ORDER BY ")[0].replace("SELECT 1 AS one", "SELECT count(*)", 1)
    return int(conn.execute(sql, params).fetchone()[0])


def export_tables(opts: ExportOptions) -> tuple[str, ...]:
    return (*TABLES, "identifiers") if opts.identifiers else TABLES


def write_csv(store: Any, out: Path, opts: ExportOptions, force: bool) -> dict[str, int]:
    """Write the CSV folder at ``out``; returns rows written per file."""
    from . import dictionary

    conn = store.conn
    register_functions(conn, opts.tz)
    tables = export_tables(opts)
    analysis = _analysis_module()
    counts: dict[str, int] = {}
    progress = Progress(0, "", False)
    if opts.show_progress:
        total = sum(count_rows(conn, t, opts) for t in tables)
        if analysis is not None:
            total += count_rows(conn, "procedures", opts)
        progress = Progress(total, "Exporting CSV", True)
    conn.execute("BEGIN")  # one read snapshot: every file sees the same database
    try:
        with staged_folder(out, force, ALL_FILES) as folder:
            plans = {}
            for table in tables:
                plan = column_plan(conn, table, opts)
                plans[table] = plan
                sql, params = table_query(table, plan, opts)
                with open_private(folder / f"{table}.csv") as fh:
                    writer = csv.writer(fh)
                    writer.writerow([c.name for c in plan])
                    cur = conn.execute(sql, params)
                    counts[f"{table}.csv"] = _write_rows(writer, cur, progress)
            analysis_columns: list[Any] | None = None
            if analysis is not None:
                analysis_columns, n = _write_analysis(store, analysis, folder, opts, progress)
                counts[ANALYSIS_FILE] = n
            with open_private(folder / DICTIONARY_FILE) as fh:
                writer = csv.writer(fh)
                rows = dictionary.csv_dictionary(plans, analysis_columns, opts)
                writer.writerow(dictionary.CSV_HEADER)
                writer.writerows([safe_cell(v) for v in r] for r in rows)
                counts[DICTIONARY_FILE] = len(rows)
    finally:
        progress.close()
        if conn.in_transaction:
            conn.execute("COMMIT")
    return counts


def _write_rows(writer: Any, cur: Any, progress: Progress) -> int:
    if progress.bar is None:
        # The fast path: the C writer pulls rows from the C cursor.
        n = 0
        while True:
            rows = cur.fetchmany(5000)
            if not rows:
                return n
            writer.writerows(rows)
            n += len(rows)
    n = 0
    for row in progress.wrap(cur):
        writer.writerow(row)
        n += 1
    return n


def _analysis_module() -> Any:
    try:
        from ..storage import analysis
    except ImportError:
        return None
    if not hasattr(analysis, "iter_analysis_rows"):
        return None
    return analysis


def analysis_dropped(analysis: Any, name: str, opts: ExportOptions) -> bool:
    """Free-text columns of the analysis file that a de-identified export leaves out."""
    if opts.identifiers:
        return False
    return name in analysis.IDENTIFYING_COLUMNS


def analysis_columns(analysis: Any, opts: ExportOptions) -> list[Any]:
    return [c for c in analysis.ANALYSIS_COLUMNS if not analysis_dropped(analysis, c.name, opts)]


def _write_analysis(
    store: Any, analysis: Any, folder: Path, opts: ExportOptions, progress: Progress
) -> tuple[list[Any], int]:
    """procedures_analysis.csv from sma_log.storage.analysis, de-identified like the rest."""
    from .common import LocalDates

    dates = LocalDates(opts.tz)
    columns = analysis_columns(analysis, opts)
    names = [c.name for c in columns]
    funcs: list[Any] = []
    for name in names:
        if opts.identifiers:
            funcs.append(safe_cell)
        elif name in analysis.DATETIME_COLUMNS:
            funcs.append(dates.date)
        elif is_id_column(name):
            funcs.append(mask_id)
        else:
            funcs.append(safe_cell)
    n = 0
    rows = analysis.iter_analysis_rows(
        store, opts.date_from, opts.date_to, columns=names, tz=opts.tz
    )
    with open_private(folder / ANALYSIS_FILE) as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in progress.wrap(rows):
            writer.writerow(
                [None if (v := row[k]) is None else f(v) for k, f in zip(names, funcs, strict=True)]
            )
            n += 1
    return columns, n
