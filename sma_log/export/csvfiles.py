"""``sma-log export --format csv``: one CSV file per table, the analysis file, the dictionary.

Each file is one SQL query that yields whole CSV lines: every cell is de-identified,
guarded against formula injection and formatted (numbers as Python's ``repr``/``str``
wrote them) by SQL expressions, and ``printf`` joins the cells of a row. Python reads
the lines a few thousand at a time (constant memory) and checks each chunk with a few
C scans for a cell that needs RFC 4180 quotes; the rows that do are fetched again by
rowid from a query that quotes every cell in SQL. Local dates come from a binary
search over the site time zone's UTC-offset changes (computed once with zoneinfo for
the years the file holds), so no Python function runs per cell; the rare value SQL
cannot format exactly like ``csv.writer`` (a float needing 16-17 digits or outside
1e-4..1e15, an instant outside those years or in another form) is handed to a
registered Python function that does. The files are byte for byte what the former
``csv.writer`` path wrote (tests/test_export_csv_speedpath.py).

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
those cells are empty. Their rows are written by the Python functions (the reference
the SQL lines are byte-identical to on sound rows), so an odd value never reaches a
SQL formatting rule written for sound ones.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from ..domain.cells import formula_safe
from .common import (
    DATE,
    MASK_ID,
    NOTE_EVENT_KINDS,
    REMOVE,
    REMOVED_TABLES,
    BadCell,
    ExportOptions,
    ExportRefused,
    LocalDates,
    Tally,
    column_action,
    csv_cell,
    deidentification_manifest,
    find_bad_cells,
    is_id_column,
    is_instant_column,
    local_date_sql,
    mask_id,
    mask_id_sql,
    offset_transitions,
    open_private,
    open_private_binary,
    real_text_sql,
    register_functions,
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
SQL_LINES = __import__("os").environ.get("SMA_CSV_SQL", "1") == "1"  # temporary
#: Lines fetched from SQLite per write.
CHUNK = 4096
#: SQLite functions take at most 127 arguments: longer rows are several printf calls.
_PRINTF_ARGS = 100
#: Cells that must be quoted (RFC 4180) when written as text.
_QUOTE_GLOB = "'*[,\"\r\n]*'"
_FORMULA_GLOB = "'[-=+@\t\r]*'"


@dataclass(frozen=True)
class Column:
    """One exported column: its name, the SQL that yields it, the stored declared type.

    ``expr`` is the value as the export gives it (de-identified, formula guard applied),
    ``kind`` says how :func:`cell_sql` turns it into CSV text: ``text`` (guarded text),
    ``id`` (masked id), ``instant`` (local date), ``round`` (a number from round()) or
    ``plain`` (written as stored).
    """

    table: str
    name: str
    expr: str
    declared: str
    kind: str = "plain"
    value: str = ""  # the stored value the cell is made from (SQL), when it differs


def table_columns(conn: Any, table: str) -> list[tuple[str, str]]:
    return [(r[1], (r[2] or "").upper()) for r in conn.execute(f"PRAGMA table_info({table})")]


def column_plan(conn: Any, table: str, opts: ExportOptions) -> list[Column]:
    """What ``table``'s CSV holds, in order (the data dictionary reads the same plan)."""
    out: list[Column] = []
    for name, declared in table_columns(conn, table):
        # the one rule of every format (common.column_action), run here as SQL
        action = column_action(table, name, opts.identifiers)
        if action == REMOVE:
            continue
        col = f"t.{name}"
        if action == MASK_ID:
            out.append(Column(table, name, mask_id_sql(col), declared, "id", col))
        elif action == DATE:
            expr = f"sma_local_date({col})"
            out.append(Column(table, name, expr, declared, "instant", col))
        elif is_id_column(name) or is_instant_column(name):
            out.append(Column(table, name, col, declared, "plain", col))
        elif table == "events" and name == "value" and not opts.identifiers:
            expr = f"CASE WHEN t.kind = 'note' THEN NULL ELSE {safe_sql(col)} END"
            out.append(Column(table, name, expr, declared, "note_value", col))
        elif declared == "TEXT":
            out.append(Column(table, name, safe_sql(col), declared, "text", col))
        else:
            out.append(Column(table, name, col, declared, "plain", col))
        if table in ("procedures", "identifiers") and name == "patient_id":
            study = "pt.study_code"  # not guarded (as it always was)
            out.append(Column(table, "study_code", study, "TEXT", "plain", study))
    if table in ("attempts", "events"):
        out.append(
            Column(
                table, "minutes_from_start", MINUTES_FROM_START, "REAL", "round", MINUTES_FROM_START
            )
        )
    return out


def _text_cell(v: str, guard: bool) -> str:
    """A text value's cell; anything that is not text goes to Python (sma_csv_cell)."""
    fixed = f"CASE WHEN {v} GLOB {_FORMULA_GLOB} THEN '''' || {v} ELSE {v} END" if guard else v
    return (
        f"CASE WHEN {v} IS NULL THEN NULL "
        f"WHEN typeof({v}) != 'text' THEN sma_csv_cell({v}) "
        f"WHEN {v} GLOB {_QUOTE_GLOB} THEN '\"' || replace({fixed}, '\"', '\"\"') || '\"' "
        f"ELSE {fixed} END"
    )


def _number_cell(v: str, guard_text: bool) -> str:
    """A number's cell as ``str``/``repr`` write it; text goes to :func:`_text_cell`."""
    return (
        f"CASE typeof({v}) WHEN 'integer' THEN {v} WHEN 'null' THEN NULL "
        f"WHEN 'real' THEN {_real_cell(v)} "
        f"WHEN 'text' THEN {_text_cell(v, guard_text)} ELSE sma_csv_cell({v}) END"
    )


def _id_cell(v: str, unquoted_only: bool) -> str:
    """A record id with its time part masked in SQL (:func:`mask_id`); anything that is
    not a 26-character text id (or, with ``unquoted_only``, one that would need quotes)
    goes to the Python function."""
    plain = f" AND NOT {v} GLOB {_QUOTE_GLOB}" if unquoted_only else ""
    return (
        f"CASE WHEN {v} IS NULL THEN NULL "
        f"WHEN typeof({v}) = 'text' AND length({v}) = 26{plain} "
        f"THEN '0000000000' || substr({v}, 11) ELSE sma_csv_id({v}) END"
    )


def cell_sql(col: Column, transitions: list[tuple[str, int]]) -> str:
    """SQL giving ``col``'s CSV cell text (NULL for an empty cell)."""
    v = col.value or col.expr
    if col.kind == "id":
        return _id_cell(v, unquoted_only=True)
    if col.kind == "instant":
        return local_date_sql(v, transitions, f"sma_csv_date({v})")
    if col.kind == "text":
        return _text_cell(v, guard=True)
    if col.kind == "note_value":
        return f"CASE WHEN t.kind = 'note' THEN NULL ELSE {_text_cell(v, guard=True)} END"
    if col.kind == "round":
        # round(x, 3) of a time difference: at most 15 significant digits, which is
        # SQLite's own REAL-to-text form; NULL stays NULL.
        return f"({v}) || ''"
    if col.kind == "any":  # guarded if it is text, whatever the column holds
        return _number_cell(v, guard_text=True)
    return _number_cell(v, guard_text=False)


def _real_cell(v: str) -> str:
    """A REAL as ``repr`` writes it: from the lookup table when it is k/60 exactly (the
    procedure and puncture minutes, whole seconds / 60, which 15 digits rarely hold),
    else :func:`real_text_sql`, else Python."""
    lookup = (
        f"(SELECT txt FROM temp.sma_sixtieths WHERE k = CAST(round({v} * 60) AS INTEGER) "
        f"AND k / 60.0 = {v})"
    )
    return f"coalesce({lookup}, {real_text_sql(v)}, sma_csv_cell({v}))"


def _guard(v: str) -> str:
    """:func:`safe_sql` for a TEXT column (text or NULL), cheaper: text from ``A`` up
    (most text) cannot begin with a formula character, one comparison settles it."""
    return (
        f"CASE WHEN {v} >= 'A' THEN {v} WHEN {v} GLOB {_FORMULA_GLOB} THEN '''' || {v} ELSE {v} END"
    )


def fast_cell_sql(col: Column, transitions: list[tuple[str, int]]) -> str:
    """SQL of ``col``'s cell for the fast lines: text is guarded but not quoted.

    Whether a cell needs quotes is checked on whole chunks of lines in Python
    (:func:`write_lines`); a row that does is replaced by its :func:`cell_sql` line.
    Everything else is formatted exactly as :func:`cell_sql` does.
    """
    v = col.value or col.expr
    if col.kind == "id":
        return _id_cell(v, unquoted_only=False)
    if col.kind == "instant":
        return local_date_sql(v, transitions, f"sma_csv_date({v})")
    if col.kind == "note_value":
        return f"CASE WHEN t.kind = 'note' THEN NULL ELSE {_guard(v)} END"
    if col.kind == "round":
        return f"({v}) || ''"
    if col.kind == "text" or (col.kind == "any" and col.declared in ("text", "datetime")):
        return _guard(v)
    if col.declared == "TEXT":
        return v
    if col.kind == "any":  # a number column of the analysis file: guard only text
        return (
            f"CASE typeof({v}) WHEN 'real' THEN {_real_cell(v)} "
            f"WHEN 'text' THEN sma_csv_safe({v}) ELSE {v} END"
        )
    return f"CASE WHEN typeof({v}) = 'real' THEN {_real_cell(v)} ELSE {v} END"


def line_sql(cells: list[str]) -> str:
    """SQL of one CSV line (UTF-8 bytes, no line end) made of ``cells``."""
    parts = []
    for i in range(0, len(cells), _PRINTF_ARGS):
        chunk = cells[i : i + _PRINTF_ARGS]
        fmt = ",".join(["%s"] * len(chunk))
        parts.append(f"printf('{fmt}', {', '.join(chunk)})")
    return "CAST(" + " || ',' || ".join(parts) + " AS BLOB)"


def _where(table: str, opts: ExportOptions) -> tuple[str, list[str]]:
    if table in ("patients", "identifiers"):
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


def table_query(table: str, plan: list[Column], opts: ExportOptions) -> tuple[str, list[str]]:
    """The values of ``table``'s rows (one column each; the Python-function form)."""
    select = ", ".join(f"{c.expr} AS {c.name}" for c in plan)
    where, params = _where(table, opts)
    sql = f"SELECT {select} FROM {_FROM[table]} WHERE {where} ORDER BY {_ORDER[table]}"
    return sql, params


@dataclass
class LineQuery:
    """How one CSV file's lines come out of SQLite.

    ``fast`` yields ``(line, key)`` per row in file order (:func:`fast_cell_sql`
    cells); ``careful`` (with ``{keys}`` standing for a list of ``?``) yields
    ``(key, line)`` for the given keys with every cell made by :func:`cell_sql`.
    """

    fast: str
    params: list[Any]
    careful: str
    ncols: int
    careful_params: tuple[Any, ...] = ()  # before the keys
    #: The rows holding a bad cell (keys) and how their lines are made instead: by the
    #: Python functions and ``csv.writer`` (:func:`python_lines`), the reference path,
    #: which reads any value without error and writes the bad ones as the format says.
    bad_keys: frozenset[Any] = frozenset()
    python_lines: Callable[[list[Any]], dict[Any, bytes]] | None = None


def table_line_query(
    table: str, plan: list[Column], opts: ExportOptions, transitions: list[tuple[str, int]]
) -> LineQuery:
    """The CSV lines of ``table``'s rows (see :class:`LineQuery`)."""
    where, params = _where(table, opts)
    fast = line_sql([fast_cell_sql(c, transitions) for c in plan])
    careful = line_sql([cell_sql(c, transitions) for c in plan])
    return LineQuery(
        fast=f"SELECT {fast}, t.rowid FROM {_FROM[table]} WHERE {where} ORDER BY {_ORDER[table]}",
        params=params,
        careful=(
            # a plain JOIN: SQLite starts from the few rows asked for
            f"SELECT t.rowid, {careful} FROM {_FROM[table].replace('CROSS JOIN', 'JOIN')} "
            "WHERE t.rowid IN ({keys})"
        ),
        ncols=len(plan),
    )


def count_rows(conn: Any, table: str, opts: ExportOptions) -> int:
    where, params = _where(table, opts)
    sql = f"SELECT count(*) FROM {_FROM[table]} WHERE {where}"
    return int(conn.execute(sql, params).fetchone()[0])


def export_tables(opts: ExportOptions) -> tuple[str, ...]:
    return (*TABLES, "identifiers") if opts.identifiers else TABLES


def register_csv_functions(conn: Any, tz: str) -> LocalDates:
    """The Python functions the line queries fall back to for unusual values."""
    dates = register_functions(conn, tz)
    conn.create_function("sma_csv_cell", 1, csv_cell, deterministic=True)
    conn.create_function("sma_csv_safe", 1, lambda v: csv_cell(formula_safe(v)), deterministic=True)
    conn.create_function("sma_csv_id", 1, lambda v: csv_cell(mask_id(v)), deterministic=True)
    conn.create_function("sma_csv_date", 1, lambda v: csv_cell(dates.date(v)), deterministic=True)
    _fill_sixtieths(conn)
    return dates


def _fill_sixtieths(conn: Any) -> None:
    """``temp.sma_sixtieths``: ``repr(k / 60)`` for every whole-second time in the file.

    The distinct minutes are read from the report's kept facts (the narrow table, not
    the procedures); a value missing from it (none, if the facts are right) is still
    written correctly by the fallbacks.
    """
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sma_sixtieths (k INTEGER PRIMARY KEY, txt TEXT NOT NULL)"
    )
    try:
        values = conn.execute(
            "SELECT procedure_min FROM report_facts WHERE typeof(procedure_min) = 'real' "
            "UNION SELECT puncture_min FROM report_facts WHERE typeof(puncture_min) = 'real'"
        ).fetchall()
    except sqlite3.OperationalError:  # not a schema-3 file: only the fallbacks
        values = []
    ks = {round(v * 60) for (v,) in values if 0 <= v < 1e9}
    conn.executemany(
        "INSERT OR IGNORE INTO temp.sma_sixtieths VALUES (?, ?)", ((k, repr(k / 60)) for k in ks)
    )


def date_transitions(conn: Any, tz: str) -> list[tuple[str, int]]:
    """The offset changes of ``tz`` around the procedures' years (one indexed query).

    Instants outside them (none in practice) still get the right date, from Python;
    so do the years of a bad cell (year 0, a number, a BLOB), which are not looked at:
    only starts from 1900 to 2199 set the range.
    """
    lo, hi = conn.execute(
        "SELECT min(started_at), max(started_at) FROM procedures "
        "WHERE started_at >= '1900' AND started_at < '2200'"
    ).fetchone()
    try:
        first, last = int(str(lo)[:4]) - 1, int(str(hi)[:4]) + 2
    except ValueError:
        return []
    if not 1 <= first <= last <= 9998:
        return []
    return offset_transitions(tz, first, min(last, 9998))


def header_line(names: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow(names)
    return buf.getvalue().encode("utf-8")


def write_lines(fh: Any, conn: Any, q: LineQuery, progress: Tally) -> int:
    """Write the lines of ``q`` to ``fh``, a chunk at a time; returns how many.

    The fast lines of a chunk are the exact CSV unless a cell needs quotes: joined by
    commas, they then hold no quote, CR or LF and exactly ``ncols * n - 1`` commas
    (each test one C scan of the chunk). Otherwise the rows that need quotes are
    replaced by their careful lines. Rows with a bad cell (``q.bad_keys``, none in a
    sound file) take their Python line whatever the fast one says.
    """
    n = 0
    first = itemgetter(0)
    cur = conn.execute(q.fast, q.params)
    while True:
        rows = cur.fetchmany(CHUNK)
        if not rows:
            return n
        lines = list(map(first, rows))
        done: set[int] = set()
        if q.bad_keys and q.python_lines is not None:
            done = {i for i, r in enumerate(rows) if r[1] in q.bad_keys}
            if done:
                made = q.python_lines([rows[i][1] for i in sorted(done)])
                for i in done:
                    lines[i] = made[rows[i][1]]
        rest = lines if not done else [x for i, x in enumerate(lines) if i not in done]
        flat = b",".join(rest)
        if rest and (
            b'"' in flat
            or b"\n" in flat
            or b"\r" in flat
            or flat.count(b",") != q.ncols * len(rest) - 1
        ):
            lines = _repaired(conn, q, rows, lines, flat, done)
        if not flat.isascii():
            _check_utf8(lines, rows)
        fh.write(b"\r\n".join(lines))
        fh.write(b"\r\n")
        n += len(rows)
        progress.add(len(rows))


def _check_utf8(lines: list[bytes], rows: list[Any]) -> None:
    """SQLite does not check that text is UTF-8, and the lines are built from its
    bytes: a text cell another tool wrote in another encoding refuses the export (one
    line), as Python's sqlite3 refuses to read it for every other format."""
    try:
        b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        bad = next(i for i, line in enumerate(lines) if not _is_utf8(line))
        raise UnreadableText(
            f"a text cell of the file is not UTF-8 (row key {rows[bad][1]!r}); no format "
            "can carry it: fix it in the file with sqlite3"
        ) from None


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class UnreadableText(ExportRefused):
    """A text cell that is not UTF-8."""


def _repaired(
    conn: Any, q: LineQuery, rows: list[Any], lines: list[bytes], flat: bytes, done: set[int]
) -> list[bytes]:
    """The lines of a chunk, each row that needs quotes made by :func:`cell_sql`
    (rows in ``done`` already have their final line)."""
    commas = list(map(bytes.count, lines, repeat(b",")))
    bad = {i for i, c in enumerate(commas) if c != q.ncols - 1}
    for c in (b'"', b"\r", b"\n"):
        if c in flat:
            bad.update(i for i, line in enumerate(lines) if c in line)
    bad -= done
    if not bad:
        return lines
    keys = [rows[i][1] for i in sorted(bad)]
    sql = q.careful.replace("{keys}", ", ".join("?" * len(keys)))
    careful = dict(conn.execute(sql, [*q.careful_params, *keys]).fetchall())
    for i in bad:
        lines[i] = careful[rows[i][1]]
    return lines


def csv_line(values: Iterable[Any]) -> bytes:
    """One CSV line (UTF-8, no line end) of Python values, written by ``csv.writer``;
    a BLOB (a bad cell: CSV is text) is an empty cell."""
    buf = io.StringIO()  # the default line end: its CR and LF make a cell need quotes
    csv.writer(buf).writerow([None if isinstance(v, bytes) else v for v in values])
    return buf.getvalue().removesuffix("\r\n").encode("utf-8")


def _python_lines(
    conn: Any, sql: str, params: tuple[Any, ...], cells: Callable[[tuple[Any, ...]], list[Any]]
) -> Callable[[list[Any]], dict[Any, bytes]]:
    """Lines of the rows with the given keys: ``sql`` (``{keys}`` for a list of ``?``)
    yields ``(key, *values)``; ``cells`` turns the values into the row's cells."""

    def lines(keys: list[Any]) -> dict[Any, bytes]:
        out = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            query = sql.replace("{keys}", ", ".join("?" * len(part)))
            for key, *values in conn.execute(query, [*params, *part]):
                out[key] = csv_line(cells(tuple(values)))
        return out

    return lines


def write_csv(store: Any, out: Path, opts: ExportOptions, force: bool) -> dict[str, int]:
    """Write the CSV folder at ``out``; returns rows written per file.

    Bad cells (see :func:`~sma_log.export.common.find_bad_cells`) are reported to
    ``opts.bad`` and written as stored, except a BLOB (CSV is text) and, de-identified,
    an instant that cannot be read (its date is not known and its text may hold the
    time of day): those cells are empty.
    """
    from . import dictionary

    conn = store.conn
    register_csv_functions(conn, opts.tz)
    tables = export_tables(opts)
    analysis = _analysis_module()
    counts: dict[str, int] = {}
    progress = Tally(opts.progress)
    if opts.progress is not None:
        progress.total = sum(count_rows(conn, t, opts) for t in tables)
        if analysis is not None:
            progress.total += count_rows(conn, "procedures", opts)
    conn.execute("BEGIN")  # one read snapshot: every file sees the same database
    try:
        transitions = [] if opts.identifiers else date_transitions(conn, opts.tz)
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
                    conn,
                    folder / f"{table}.csv",
                    table,
                    plan,
                    opts,
                    transitions,
                    progress,
                    frozenset(bad),
                )
            analysis_columns: list[Any] | None = None
            if analysis is not None:
                analysis_columns, n = _write_analysis(
                    store, analysis, folder, opts, progress, transitions, frozenset(touched)
                )
                counts[ANALYSIS_FILE] = n
            with open_private(folder / DICTIONARY_FILE, opts.excel) as fh:
                writer = csv.writer(fh)
                stored = {t: [n for n, _ in table_columns(conn, t)] for t in tables}
                for t in REMOVED_TABLES:  # what a de-identified export leaves out whole
                    stored.setdefault(t, [])
                manifest = deidentification_manifest(opts.identifiers, stored, opts.tz)
                rows = dictionary.csv_dictionary(plans, analysis_columns, opts, manifest)
                writer.writerow(dictionary.CSV_HEADER)
                writer.writerows([formula_safe(v) for v in r] for r in rows)
                counts[DICTIONARY_FILE] = len(rows)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    return counts


def bad_rows(
    conn: Any, table: str, plan: list[Column], opts: ExportOptions, dates: LocalDates
) -> dict[int, list[BadCell]]:
    """The bad cells of ``table``'s file, reported to ``opts.bad``, by rowid."""
    stored = [c.name for c in plan if c.value == f"t.{c.name}"]
    guards = {}
    if table == "events" and not opts.identifiers:  # a note's text is not exported
        guards["value"] = "t.kind IS NOT 'note'"
    where, params = _where(table, opts)
    found = find_bad_cells(conn, table, stored, _FROM[table], where, params, guards)
    kinds = {c.name: c.kind for c in plan}
    out: dict[int, list[BadCell]] = {}
    for cell in found:
        out.setdefault(cell.rowid, []).append(cell)
        opts.bad.add(cell, csv_action(cell.value, kinds.get(cell.column, "plain"), dates))
    return out


def csv_action(value: Any, kind: str, dates: LocalDates) -> str:
    """What the CSV files hold for a bad cell."""
    if isinstance(value, bytes):
        return "written empty"
    if kind == "instant":
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


def write_table(
    conn: Any,
    path: Path,
    table: str,
    plan: list[Column],
    opts: ExportOptions,
    transitions: list[tuple[str, int]],
    progress: Tally,
    bad_keys: frozenset[int] = frozenset(),
) -> int:
    """One table's CSV file (needs :func:`register_csv_functions` on ``conn``); the rows
    whose rowid is in ``bad_keys`` are written by the Python functions."""
    if not SQL_LINES:
        sql, params = _python_select(table, plan, opts)
        with open_private(path, opts.excel) as fh:
            csv.writer(fh).writerow([c.name for c in plan])
            cells = _row_cells(plan, LocalDates(opts.tz))
            return _write_rows(fh, conn.execute(sql, params), cells, progress, bad_keys)
    q = table_line_query(table, plan, opts, transitions)
    if bad_keys:
        select = ", ".join(c.expr for c in plan)
        sql = f"SELECT t.rowid, {select} FROM {_FROM[table]} WHERE t.rowid IN ({{keys}})"
        q = replace(q, bad_keys=bad_keys, python_lines=_python_lines(conn, sql, (), list))
    with open_private_binary(path, opts.excel) as fh:
        fh.write(header_line([c.name for c in plan]))
        return write_lines(fh, conn, q, progress)


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


def analysis_plan(analysis: Any, opts: ExportOptions) -> list[Column]:
    """How each analysis column becomes a cell (the rules of the Python writer)."""
    out = []
    for c in analysis_columns(analysis, opts):
        v = f"a.{c.name}"
        if opts.identifiers:
            kind = "any"
        elif c.name in analysis.DATETIME_COLUMNS:
            kind = "instant"
        elif is_id_column(c.name):
            kind = "id"
        else:
            kind = "any"
        out.append(Column("procedures_analysis", c.name, v, c.type, kind, v))
    return out


def _write_analysis(
    store: Any,
    analysis: Any,
    folder: Path,
    opts: ExportOptions,
    progress: Tally,
    transitions: list[tuple[str, int]],
    bad_keys: frozenset[Any] = frozenset(),
) -> tuple[list[Any], int]:
    """procedures_analysis.csv from sma_log.storage.analysis, de-identified like the rest.

    The rows of the procedures in ``bad_keys`` (a bad cell in their procedure, patient
    or follow-up row) are written by the Python functions of :func:`_write_analysis_rows`.
    """
    columns = analysis_columns(analysis, opts)
    names = [c.name for c in columns]
    if not hasattr(analysis, "analysis_sql"):
        return columns, _write_analysis_rows(store, analysis, folder, opts, progress, names)
    inner, _, params = analysis.analysis_sql(names, opts.date_from, opts.date_to, opts.tz)
    if not SQL_LINES:
        funcs = _analysis_funcs(analysis, names, opts, LocalDates(opts.tz))
        key = "a.procedure_id" if "procedure_id" in names else "NULL"
        cur = store.conn.execute(f"SELECT a.*, {key} FROM ({inner}) a", params)
        with open_private(folder / ANALYSIS_FILE, opts.excel) as fh:
            csv.writer(fh).writerow(names)
            n = _write_rows(fh, cur, list(enumerate(funcs)), progress, bad_keys)
        return columns, n
    plan = analysis_plan(analysis, opts)
    fast = line_sql([fast_cell_sql(c, transitions) for c in plan])
    careful = line_sql([cell_sql(c, transitions) for c in plan])
    q = LineQuery(
        # OFFSET 0 keeps the row query a subquery (a co-routine): each value is
        # computed once per row, not once for every place the cell's SQL names it.
        fast=f"SELECT {fast}, a.procedure_id FROM ({inner} LIMIT -1 OFFSET 0) a",
        params=params,
        careful=(
            f"SELECT a.procedure_id, {careful} FROM ({inner}) a WHERE a.procedure_id IN ({{keys}})"
        ),
        ncols=len(plan),
        careful_params=tuple(params),
    )
    if bad_keys:
        funcs = _analysis_funcs(analysis, names, opts, LocalDates(opts.tz))
        q = replace(
            q,
            bad_keys=bad_keys,
            python_lines=_python_lines(
                store.conn,
                f"SELECT a.procedure_id, a.* FROM ({inner}) a WHERE a.procedure_id IN ({{keys}})",
                tuple(params),
                lambda values: [
                    None if v is None else f(v) for v, f in zip(values, funcs, strict=True)
                ],
            ),
        )
    if "procedure_id" not in names:  # the key of the careful lines
        return columns, _write_analysis_rows(store, analysis, folder, opts, progress, names)
    with open_private_binary(folder / ANALYSIS_FILE, opts.excel) as fh:
        fh.write(header_line(names))
        n = write_lines(fh, store.conn, q, progress)
    return columns, n


def _write_analysis_rows(
    store: Any,
    analysis: Any,
    folder: Path,
    opts: ExportOptions,
    progress: Tally,
    names: list[str],
) -> int:
    """The analysis file from Python rows (when the module has no ``analysis_sql``)."""
    funcs = _analysis_funcs(analysis, names, opts, LocalDates(opts.tz))
    n = 0
    rows = analysis.iter_analysis_rows(
        store, opts.date_from, opts.date_to, columns=names, tz=opts.tz
    )
    with open_private(folder / ANALYSIS_FILE, opts.excel) as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in progress.wrap(rows):
            writer.writerow(
                [None if (v := row[k]) is None else f(v) for k, f in zip(names, funcs, strict=True)]
            )
            n += 1
    return n


def _analysis_funcs(
    analysis: Any, names: list[str], opts: ExportOptions, dates: LocalDates
) -> list[Any]:
    """How the Python writer turns each analysis value into its cell."""
    funcs: list[Any] = []
    for name in names:
        if opts.identifiers:
            funcs.append(formula_safe)
        elif name in analysis.DATETIME_COLUMNS:
            funcs.append(dates.date)
        elif is_id_column(name):
            funcs.append(mask_id)
        else:
            funcs.append(formula_safe)
    return funcs


# ---------------------------------------------------------------- the Python writer
def _row_cells(plan: list[Column], dates: LocalDates) -> list[tuple[int, Callable[[Any], Any]]]:
    """``(index, cell function)`` of every column whose stored value is not its cell."""
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, c in enumerate(plan):
        if c.kind == "id":
            out.append((i, mask_id))
        elif c.kind == "instant":
            out.append((i, dates.date))
        elif c.kind in ("text", "note_value"):
            out.append((i, formula_safe))
    return out


def _python_select(table: str, plan: list[Column], opts: ExportOptions) -> tuple[str, list[str]]:
    def stored(c: Column) -> str:
        if c.kind == "note_value":
            kinds = ", ".join(f"'{k}'" for k in NOTE_EVENT_KINDS)
            return f"CASE WHEN t.kind IN ({kinds}) THEN NULL ELSE t.{c.name} END"
        return c.value or c.expr

    where, params = _where(table, opts)
    select = ", ".join([*(stored(c) for c in plan), "t.rowid"])
    sql = f"SELECT {select} FROM {_FROM[table]} WHERE {where} ORDER BY {_ORDER[table]}"
    return sql, params


def _write_rows(
    fh: Any,
    cur: Any,
    cells: list[tuple[int, Callable[[Any], Any]]],
    progress: Tally,
    bad_keys: frozenset[Any],
) -> int:
    """Rows of ``cur`` (its last value is the row's key) through their cell functions;
    a BLOB (only in a row of ``bad_keys``: every BLOB is a bad cell) is an empty cell."""
    writer = csv.writer(fh)
    n = 0
    while rows := cur.fetchmany(CHUNK):
        out = []
        for row in rows:
            line = list(row)
            key = line.pop()
            for i, f in cells:
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
