"""What the report reads, kept in the database: ``report_facts``.

One narrow row per **ended** procedure with exactly the values the report reads (the
analysis columns of :data:`FACT_COLUMNS`: the group of every grouping, attempts,
minutes, scores, the follow-ups' outcomes and timing), copied from the view
``report_facts_source`` (procedures ⨝ patients ⟕ the 72-hour and 5-minute follow-ups,
the SQL of :mod:`sma_log.storage.analysis`). These are values, not rules: every figure
is computed from them by the one rule set, :func:`sma_log.domain.stats.summarise_table`,
for the CLI and the report screen alike (issue 10 dropped the histograms that SQL
triggers used to keep with a second copy of the rules).

The facts are maintained by **triggers**, inside the transaction that changes a
procedure, its patient or one of its follow-ups, so every writer (the app, ``import``,
a ``sqlite3`` shell) keeps them right and a crash can never leave them half-updated. A
procedure in progress has no fact row, so the attempt key does no report work. They
are a cache: not audited, not exported, rebuilt from the clinical tables by
:func:`rebuild` (the demo generator and the SQLite export rebuild once after bulk
changes, with the triggers lifted) and checked by :func:`check`. The file notes the
fingerprint of the definitions that built them (:func:`definition_version`); a file
built by other definitions is rebuilt when next opened for writing (:func:`ensure`), and
read straight from the tables until then.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from ..domain import stats
from . import analysis

#: The columns of ``report_facts`` (analysis-row names; ``started_at`` is the stored
#: UTC text, so date filters compare like for like).
GROUP_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(col for col, _ in stats.GROUPINGS.values()))
FACT_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            "procedure_id",
            "patient_id",
            "started_at",
            *GROUP_COLUMNS,
            *stats.NEEDED,
        ]
    )
)
_SQL_TYPES = {
    "text": "TEXT",
    "datetime": "TEXT",
    "integer": "INTEGER",
    "boolean": "INTEGER",
    "real": "REAL",
}


def _source_columns(alias: str, *always: str) -> tuple[str, ...]:
    """Columns of one source table (by its alias in the analysis SQL) the facts read.

    Read off the SQL itself, so a fact column added later also gets its trigger.
    """
    sql, _, _ = analysis.analysis_sql(FACT_COLUMNS, include_open=False, order=False)
    found = re.findall(rf"\b{alias}\.(\w+)", sql)
    return tuple(dict.fromkeys([*always, *found]))


#: Columns of ``procedures`` / ``followups`` / ``patients`` the facts are made from:
#: an UPDATE of any other column (``updated_at``, a note…) does no report work.
PROCEDURE_SOURCE = _source_columns("p", "id", "patient_id", "status", "started_at")
FOLLOWUP_SOURCE = tuple(
    dict.fromkeys([*_source_columns("f", "procedure_id", "kind"), *_source_columns("f5")])
)
PATIENT_SOURCE = _source_columns("pt", "id")
TABLES = ("report_facts",)
#: Tables earlier versions kept beside the facts (histograms); dropped on rebuild.
LEGACY_TABLES = ("report_patients", "report_cells")
_COLS = ", ".join(FACT_COLUMNS)


def source_sql() -> str:
    """The SELECT of ``report_facts_source``: one fact row per ended procedure."""
    sql, _, _ = analysis.analysis_sql(
        FACT_COLUMNS, include_open=False, order=False, exprs={"started_at": "p.started_at"}
    )
    return sql


def _fact_types() -> dict[str, str]:
    types = {c.name: _SQL_TYPES[c.type] for c in analysis.ANALYSIS_COLUMNS}
    types["started_at"] = "TEXT"
    return {c: types[c] for c in FACT_COLUMNS}


def _refresh(proc_id: str, only_if: str = "") -> str:
    """Make the procedure's fact row what the tables say; a row that would not change
    is left alone (most writes during an end touch nothing the report reads).
    ``only_if``: an extra SQL condition for both statements."""
    same = " AND ".join(f"f.{c} IS s.{c}" for c in FACT_COLUMNS)
    also = f" AND {only_if}" if only_if else ""
    return (
        f"DELETE FROM report_facts WHERE procedure_id = {proc_id}{also} AND NOT EXISTS ("
        f"SELECT 1 FROM report_facts f, report_facts_source s WHERE f.procedure_id = {proc_id} "
        f"AND s.procedure_id = {proc_id} AND {same}); "
        f"INSERT INTO report_facts({_COLS}) SELECT {_COLS} FROM report_facts_source "
        f"WHERE procedure_id = {proc_id}{also} AND NOT EXISTS "
        f"(SELECT 1 FROM report_facts WHERE procedure_id = {proc_id});"
    )


def _refresh_patient(old_id: str, new_id: str) -> str:
    """Rebuild every fact row of a patient (whose own values changed)."""
    return (
        f"DELETE FROM report_facts WHERE patient_id = {old_id}; "
        f"INSERT INTO report_facts({_COLS}) SELECT {_COLS} FROM report_facts_source "
        f"WHERE patient_id = {new_id};"
    )


def trigger_sql() -> list[str]:
    """CREATE TRIGGER statements that keep the facts up to date."""
    proc_cols = ", ".join(PROCEDURE_SOURCE)
    fu_cols = ", ".join(FOLLOWUP_SOURCE)
    kinds = "'day3', 'score_5min'"
    return [
        # procedures → facts (only ended procedures have facts). Inserts refresh
        # whatever the status: INSERT OR REPLACE deletes the old row without firing
        # delete triggers.
        "CREATE TRIGGER report_procedure_insert AFTER INSERT ON procedures "
        f"BEGIN {_refresh('NEW.id')} END",
        f"CREATE TRIGGER report_procedure_update AFTER UPDATE OF {proc_cols} ON procedures "
        "WHEN OLD.status = 'ended' OR NEW.status = 'ended' BEGIN "
        "DELETE FROM report_facts WHERE procedure_id = OLD.id AND OLD.id IS NOT NEW.id; "
        f"{_refresh('NEW.id')} END",
        "CREATE TRIGGER report_procedure_delete AFTER DELETE ON procedures "
        "WHEN OLD.status = 'ended' BEGIN "
        "DELETE FROM report_facts WHERE procedure_id = OLD.id; END",
        # the 72-hour follow-up and the 5-minute score's → their procedure's fact
        "CREATE TRIGGER report_followup_insert AFTER INSERT ON followups "
        f"BEGIN {_refresh('NEW.procedure_id')} END",
        f"CREATE TRIGGER report_followup_update AFTER UPDATE OF {fu_cols} ON followups "
        f"WHEN OLD.kind IN ({kinds}) OR NEW.kind IN ({kinds}) BEGIN "
        f"{_refresh('OLD.procedure_id', 'OLD.procedure_id IS NOT NEW.procedure_id')} "
        f"{_refresh('NEW.procedure_id')} END",
        "CREATE TRIGGER report_followup_delete AFTER DELETE ON followups "
        f"WHEN OLD.kind IN ({kinds}) BEGIN {_refresh('OLD.procedure_id')} END",
        # the patient (SMA type; a patient inserted, replaced or deleted) → their facts
        "CREATE TRIGGER report_patient_insert AFTER INSERT ON patients BEGIN "
        f"{_refresh_patient('NEW.id', 'NEW.id')} END",
        "CREATE TRIGGER report_patient_delete AFTER DELETE ON patients BEGIN "
        "DELETE FROM report_facts WHERE patient_id = OLD.id; END",
        f"CREATE TRIGGER report_patient_update AFTER UPDATE OF {', '.join(PATIENT_SOURCE)} "
        f"ON patients BEGIN {_refresh_patient('OLD.id', 'NEW.id')} END",
    ]


def _trigger_name(sql: str) -> str:
    found = re.match(r"CREATE TRIGGER (\w+)", sql)
    if found is None:
        raise ValueError(f"not a CREATE TRIGGER statement: {sql[:40]!r}")
    return found.group(1)


#: The names of this module's triggers (only these are lifted and restored).
TRIGGER_NAMES: tuple[str, ...] = tuple(_trigger_name(sql) for sql in trigger_sql())


#: The ``meta`` key that holds :func:`definition_version` of the caches in the file.
META_KEY = "report_definitions"


@functools.cache
def definition_version() -> str:
    """A fingerprint of the SQL that builds the facts (table, view, triggers).

    Stored in ``meta`` when the caches are built; a file whose caches were built by
    other definitions (an older or newer sma-log, a changed grouping or rule) has
    them rebuilt when it is next opened for writing (:func:`ensure`), so a report
    never reads values made by definitions the code no longer has (a moved Cobb
    boundary, say: the scoliosis class is one of the kept values).
    """
    digest = hashlib.sha256()
    for part in (_table_sql(), source_sql(), *trigger_sql()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def stored_version(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    return None if row is None else str(row[0])


def ensure(conn: sqlite3.Connection) -> bool:
    """Inside a write transaction: (re)build the caches unless this code built them.

    Returns True when they were rebuilt.
    """
    if _has_cache(conn) and stored_version(conn) == definition_version():
        return False
    drop(conn)
    create(conn)
    return True


def drop(conn: sqlite3.Connection) -> None:
    """Remove the facts, the view and every report trigger (of any version)."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE 'report\\_%' ESCAPE '\\'"
        )
    ]
    for name in names:
        conn.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    conn.execute("DROP VIEW IF EXISTS report_facts_source")
    for table in (*TABLES, *LEGACY_TABLES):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _table_sql() -> str:
    cols = ", ".join(f"{c} {t}" for c, t in _fact_types().items())
    return (
        f"CREATE TABLE report_facts ({cols}, PRIMARY KEY (patient_id, procedure_id)) WITHOUT ROWID"
    )


def create(conn: sqlite3.Connection) -> None:
    """Create the table, the source view and the triggers, fill them, and note the
    definitions' version in ``meta``."""
    # Clustered by patient: the per-patient report reads each patient's procedures
    # together, in one pass, without sorting.
    conn.execute(_table_sql())
    conn.execute("CREATE UNIQUE INDEX report_facts_procedure ON report_facts(procedure_id)")
    conn.execute("CREATE INDEX report_facts_started ON report_facts(started_at)")
    conn.execute(f"CREATE VIEW report_facts_source AS {source_sql()}")
    rebuild(conn)
    for sql in trigger_sql():
        conn.execute(sql)
    _note_version(conn)


def _fill(conn: sqlite3.Connection) -> None:
    for table in TABLES:
        conn.execute(f"DELETE FROM {table}")
    conn.execute(f"INSERT INTO report_facts({_COLS}) SELECT {_COLS} FROM report_facts_source")


def rebuild(conn: sqlite3.Connection, restore_triggers: bool = False) -> None:
    """Refill the facts from the clinical tables (set-based, no triggers).

    Call inside a transaction. The report triggers are lifted while it runs (see
    :func:`suspended`). ``restore_triggers``: afterwards put back this version's view
    and triggers even if someone dropped them (``sma-log info --rebuild-report``).
    """
    with suspended(conn, rebuild_after=False):
        _fill(conn)
    if restore_triggers:
        for name in TRIGGER_NAMES:
            conn.execute(f'DROP TRIGGER IF EXISTS "{name}"')
        conn.execute("DROP VIEW IF EXISTS report_facts_source")
        conn.execute(f"CREATE VIEW report_facts_source AS {source_sql()}")
        for sql in trigger_sql():
            conn.execute(sql)
        _note_version(conn)


def _note_version(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (META_KEY, definition_version()),
    )


@contextlib.contextmanager
def suspended(conn: sqlite3.Connection, rebuild_after: bool = True) -> Iterator[None]:
    """Lift the report triggers for a bulk change, then rebuild and put them back.

    Inside a transaction: whoever sees the file afterwards sees the triggers in place
    and the caches matching the tables.
    """
    ours = set(TRIGGER_NAMES)
    triggers = [
        (name, sql)
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        if name in ours
    ]
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    yield
    if rebuild_after and _has_cache(conn):
        _fill(conn)
    for _, sql in triggers:
        conn.execute(sql)


def _has_cache(conn: sqlite3.Connection) -> bool:
    return (
        int(
            conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'report_facts'"
            ).fetchone()[0]
        )
        == 1
    )


def check(conn: sqlite3.Connection) -> list[str]:
    """Differences between the kept facts and what the tables say (none: ``[]``)."""
    began = not conn.in_transaction
    try:
        problems = []
        if stored_version(conn) != definition_version():
            problems.append("built by other definitions (sma-log info --rebuild-report)")
        # One pass: each source row finds its fact by the unique procedure_id (two
        # EXCEPTs sorted every wide row into a temporary index: 3.3 s -> 1.0 s at 100k).
        same = " AND ".join(f"s.{c} IS f.{c}" for c in FACT_COLUMNS)
        n_src, n_same = conn.execute(
            f"SELECT count(*), coalesce(sum(CASE WHEN {same} THEN 1 ELSE 0 END), 0) "
            "FROM report_facts_source s "
            "LEFT JOIN report_facts f ON f.procedure_id = s.procedure_id"
        ).fetchone()
        n_facts = conn.execute("SELECT count(*) FROM report_facts").fetchone()[0]
        for n, what in (
            (n_facts - n_same, "stale or extra fact"),
            (n_src - n_same, "missing fact"),
        ):
            if n:
                problems.append(f"{n} {what} row(s)")
        return problems
    finally:
        if began and conn.in_transaction:
            conn.rollback()


def iter_facts(
    conn: sqlite3.Connection,
    columns: Iterable[str],
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    by_patient: bool = False,
    by_start: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """Fact rows (ended procedures) as tuples in the order of ``columns``, optionally of
    procedures started in a date range.

    The same values as :func:`sma_log.storage.analysis.iter_analysis_rows` gives for
    these columns, from the narrow table (and its index on the start). ``by_patient``:
    each patient's rows together (the table's own order: no sort); ``by_start``: in
    start order, as the analysis rows come.
    """
    names = list(columns)
    where, params = [], []
    if date_from is not None:
        where.append("started_at >= ?")
        params.append(analysis.day_bound(date_from, tz, end=False))
    if date_to is not None:
        where.append("started_at < ?")
        params.append(analysis.day_bound(date_to, tz, end=True))
    sql = f"SELECT {', '.join(names)} FROM report_facts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if by_patient:
        sql += " ORDER BY patient_id"
    elif by_start:
        sql += " ORDER BY started_at, procedure_id"
    cur = conn.execute(sql, params)
    cur.arraysize = 2000
    while chunk := cur.fetchmany():
        yield from chunk


def report_columns(by: str | Sequence[str] | None, where: Mapping[str, Any] | None) -> list[str]:
    """The columns a report reads: the statistics' and those of its groupings and filters."""
    dims = [*stats.parse_by(by), *(where or {})]
    return list(dict.fromkeys([*stats.NEEDED, *(stats.GROUPINGS[d][0] for d in dims)]))


def load_report(
    conn: sqlite3.Connection,
    by: str | Sequence[str] | None = None,
    unit: stats.Unit = "procedure",
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
) -> stats.Report:
    """The case-series report: the kept fact rows (of a date range, if given) summarised
    by the one rule set, :func:`stats.summarise_table` — the figures the analysis rows
    give, read from the narrow table. On a file whose facts were built by other
    definitions (opened read-only since an upgrade) the rows come from the tables.
    Also counts the starts cancelled before the first puncture (a data-quality line).
    """
    stats.parse_by(by)
    stats.parse_where(where)
    columns = report_columns(by, where)
    per_patient = unit == "patient"
    own = not conn.in_transaction  # else the caller's transaction is the snapshot
    if own:
        conn.execute("BEGIN")  # one snapshot for the rows and the data-quality count
    try:
        if _has_cache(conn) and stored_version(conn) == definition_version():
            rows: Iterable[Sequence[Any]] = iter_facts(
                conn, columns, date_from, date_to, tz, per_patient
            )
        else:
            sql, _, params = analysis.analysis_sql(columns, date_from, date_to, tz, order=False)
            rows = conn.execute(sql + (" ORDER BY p.patient_id" if per_patient else ""), params)
        report = stats.summarise_table(
            columns, rows, by, unit, where=where, grouped_by_patient=per_patient
        )
        report.quality["cancelled"] = cancelled_count(conn, date_from, date_to, tz, where)
        report.quality.update(analysis.timeout_quality(conn, date_from, date_to, tz, where))
    finally:
        if own:
            conn.execute("COMMIT")
    return report


def iter_rows_by_start(
    store: analysis.Connected,
    columns: Sequence[str],
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    where: Mapping[str, str | Sequence[str]] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The report's rows (ended procedures of the dates, kept by ``where`` as the
    report keeps them), in start order, as tuples in the order of ``columns``: the kept
    facts, or the tables on a file whose facts were built by other definitions (as
    :func:`load_report` reads). What the report screen's plots are drawn from.
    """
    filters = stats.parse_where(where)
    names = list(dict.fromkeys([*columns, *(stats.GROUPINGS[d][0] for d in filters)]))
    conn = store.conn
    rows: Iterable[Sequence[Any]]
    if _has_cache(conn) and stored_version(conn) == definition_version():
        rows = iter_facts(conn, names, date_from, date_to, tz, by_start=True)
    else:
        sql, _, params = analysis.analysis_sql(names, date_from, date_to, tz, order=True)
        rows = conn.execute(sql, params)
    keep = stats.row_filter(names, filters)
    n = len(columns)
    for r in rows:
        if keep(r):
            yield tuple(r[:n])


def cancelled_count(
    conn: sqlite3.Connection,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    where: Mapping[str, str | Sequence[str]] | None = None,
) -> int:
    """Procedures cancelled before the first puncture, of the report's dates and
    filters (in no figure; a data-quality line)."""
    filters = stats.parse_where(where)
    if not filters:
        clauses, params = ["status = 'cancelled'"], []
        if date_from is not None:
            clauses.append("started_at >= ?")
            params.append(analysis.day_bound(date_from, tz, end=False))
        if date_to is not None:
            clauses.append("started_at < ?")
            params.append(analysis.day_bound(date_to, tz, end=True))
        sql = f"SELECT count(*) FROM procedures WHERE {' AND '.join(clauses)}"
        return int(conn.execute(sql, params).fetchone()[0])
    # the groups of a cancelled procedure, from the same analysis SQL as every figure
    columns = list(dict.fromkeys(["procedure_id", *(stats.GROUPINGS[d][0] for d in filters)]))
    sql, names, params = analysis.analysis_sql(
        columns, date_from, date_to, tz, include_open=True, order=False
    )
    sql = (
        f"SELECT a.* FROM ({sql}) a JOIN procedures pp ON pp.id = a.procedure_id "
        "WHERE pp.status = 'cancelled'"
    )
    return sum(
        1
        for row in analysis.iter_dicts(conn.execute(sql, params), names)
        if all(stats.group_key(row, d) in codes for d, codes in filters.items())
    )
