"""What the report needs, kept in the database: ``report_facts`` and ``report_cells``.

Issue 4 asks for the case-series report over a million procedures in under a second.
Reading one row per procedure into Python cannot do that (≈ 1 s per million rows
before any statistics), and neither can one SQL pass (SQLite sorts for GROUP BY and
evaluates each aggregate per row: ≈ 1 s per million with the report's 30 figures).
So the database keeps the answer up to date as it is written:

* ``report_facts``: one narrow row per **ended** procedure with exactly the values
  the statistics read (the analysis columns of :data:`FACT_COLUMNS`: the group of
  every grouping, attempts, minutes, scores, the 72-hour outcome), copied from the
  view ``report_facts_source`` (procedures ⨝ patients ⟕ 72-hour follow-up);
* ``report_patients``: how many procedures each patient has in each group (a patient
  counts once per group);
* ``report_cells``: histograms of those values per grouping and group:
  ``(dim, grp, metric, value) → n`` procedures, for every grouping of
  :data:`sma_log.domain.stats.GROUPINGS` plus ``overall``; the rules are
  :data:`sma_log.domain.stats.CELL_RULES`. The whole-file report is a read of the
  cells of one grouping (a few thousand rows, whatever the number of procedures).

Both are maintained by **triggers**, inside the transaction that changes a procedure,
its patient or its 72-hour follow-up, so every writer (the app, ``import``, a
``sqlite3`` shell) keeps them right, and a crash can never leave them half-updated.
A procedure in progress has no fact row, so the attempt key fires no report work.
They are caches: not audited, not exported, rebuilt from the clinical tables by
:func:`rebuild` (the demo generator and the SQLite export rebuild them once after
bulk changes, with the triggers lifted, instead of paying per row) and checked by
:func:`check`. The ``value`` column has no declared type: a histogram value keeps
its own type (3 attempts, 9.5 minutes, 'none' for a sedation code).

Times are histogrammed exactly because procedure and puncture minutes are kept to
the whole second (:func:`sma_log.domain.timeline.whole_second_minutes`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
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
TABLES = ("report_facts", "report_patients", "report_cells")
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


def _groupings(row: str) -> list[tuple[str, str]]:
    """(dim, SQL of the group) of every grouping plus overall, over a fact row (``NEW``,
    ``OLD`` or a table alias)."""
    return [(stats.OVERALL, f"'{stats.OVERALL}'")] + [
        (by, stats.group_sql(f"{row}.{col}")) for by, (col, _) in stats.GROUPINGS.items()
    ]


def _rules(row: str) -> list[tuple[str, str, str]]:
    """:data:`stats.CELL_RULES` as SQL over a fact row: (metric, value, condition)."""
    cols = {c: f"{row}.{c}" for c in FACT_COLUMNS}
    return [(m, v.format(**cols), c.format(**cols)) for m, v, c in stats.CELL_RULES]


def _dims(row: str) -> str:
    """(dim, grp) of a fact row, one per grouping, as a subquery."""
    arms = [f"SELECT '{dim}' AS dim, {grp} AS grp" for dim, grp in _groupings(row)[:1]]
    arms += [f"SELECT '{dim}', {grp}" for dim, grp in _groupings(row)[1:]]
    return " UNION ALL ".join(arms)


def _metrics(row: str) -> str:
    """(metric, value) pairs a fact row contributes (:data:`stats.CELL_RULES`)."""
    arms = [
        f"SELECT '{metric}'{' AS metric' if i == 0 else ''}, {value}"
        f"{' AS value' if i == 0 else ''} WHERE {cond}"
        for i, (metric, value, cond) in enumerate(_rules(row))
    ]
    return " UNION ALL ".join(arms)


def _cells_upsert(row: str, sign: int) -> str:
    """Add (``sign`` 1) or take away (-1) a fact row's cells, and its patient's.

    A patient counts once in a group: ``report_patients`` holds how many of their
    procedures each group has, and the group's ``patients`` cell moves when that
    number goes from 0 to 1 or from 1 to 0. Rows and cells that reach 0 stay (they
    are read as absent): no scan to find them.
    """
    upsert = "ON CONFLICT(dim, grp, metric, value) DO UPDATE SET n = n + excluded.n"
    return (
        "INSERT INTO report_cells(dim, grp, metric, value, n) "
        f"SELECT d.dim, d.grp, m.metric, m.value, {sign} "
        f"FROM ({_dims(row)}) AS d, ({_metrics(row)}) AS m WHERE 1 {upsert}; "
        "INSERT INTO report_patients(dim, grp, patient_id, n) "
        f"SELECT d.dim, d.grp, {row}.patient_id, {sign} FROM ({_dims(row)}) AS d WHERE 1 "
        "ON CONFLICT(dim, grp, patient_id) DO UPDATE SET n = n + excluded.n; "
        "INSERT INTO report_cells(dim, grp, metric, value, n) "
        f"SELECT d.dim, d.grp, 'patients', '', {sign} FROM ({_dims(row)}) AS d "
        "JOIN report_patients rp ON rp.dim = d.dim AND rp.grp = d.grp "
        f"AND rp.patient_id = {row}.patient_id WHERE rp.n = {1 if sign > 0 else 0} {upsert}"
    )


def _refresh(proc_id: str, only_if: str = "") -> str:
    """Make the procedure's fact row what the tables say; a row that would not change
    is left alone (most writes during an end touch nothing the report reads, and
    replacing a fact costs two passes over its cells). ``only_if``: an extra SQL
    condition for both statements."""
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
    """CREATE TRIGGER statements that keep the facts and the cells up to date."""
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
        # facts → cells
        "CREATE TRIGGER report_fact_insert AFTER INSERT ON report_facts BEGIN "
        f"{_cells_upsert('NEW', 1)}; END",
        "CREATE TRIGGER report_fact_delete AFTER DELETE ON report_facts BEGIN "
        f"{_cells_upsert('OLD', -1)}; END",
    ]


#: The names of this module's triggers (only these are lifted and restored).
TRIGGER_NAMES: tuple[str, ...] = tuple(
    re.match(r"CREATE TRIGGER (\w+)", sql).group(1)  # type: ignore[union-attr]
    for sql in trigger_sql()
)


#: The ``meta`` key that holds :func:`definition_version` of the caches in the file.
META_KEY = "report_definitions"


@functools.cache
def definition_version() -> str:
    """A fingerprint of the SQL that builds the caches (view, triggers, cell rules).

    Stored in ``meta`` when the caches are built; a file whose caches were built by
    other definitions (an older or newer sma-log, a changed grouping or rule) has
    them rebuilt when it is next opened for writing (:func:`ensure`), so a report
    never reads cells made by rules the code no longer has.
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
    """Remove the caches, the view and every report trigger (of any version)."""
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
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _table_sql() -> str:
    cols = ", ".join(f"{c} {t}" for c, t in _fact_types().items())
    return (
        f"CREATE TABLE report_facts ({cols}, PRIMARY KEY (patient_id, procedure_id)) WITHOUT ROWID"
    )


def create(conn: sqlite3.Connection) -> None:
    """Create the tables, the source view and the triggers, fill them, and note the
    definitions' version in ``meta``."""
    # Clustered by patient: the per-patient report reads each patient's procedures
    # together, in one pass, without sorting.
    conn.execute(_table_sql())
    conn.execute("CREATE UNIQUE INDEX report_facts_procedure ON report_facts(procedure_id)")
    conn.execute("CREATE INDEX report_facts_started ON report_facts(started_at)")
    conn.execute(
        "CREATE TABLE report_patients (dim TEXT NOT NULL, grp TEXT NOT NULL, "
        "patient_id TEXT NOT NULL, n INTEGER NOT NULL, "
        "PRIMARY KEY (dim, grp, patient_id)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE report_cells (dim TEXT NOT NULL, grp TEXT NOT NULL, "
        "metric TEXT NOT NULL, value NOT NULL, n INTEGER NOT NULL, "
        "PRIMARY KEY (dim, grp, metric, value)) WITHOUT ROWID"
    )
    conn.execute(f"CREATE VIEW report_facts_source AS {source_sql()}")
    rebuild(conn)
    for sql in trigger_sql():
        conn.execute(sql)
    _note_version(conn)


def _fill_cells(conn: sqlite3.Connection, target: str, facts: str, patients: str) -> None:
    """Histogram the rows of ``facts`` into the (empty) tables ``target`` and ``patients``."""
    for dim, grp in _groupings("f"):
        for metric, value, cond in _rules("f"):
            conn.execute(
                f"INSERT INTO {target}(dim, grp, metric, value, n) "
                f"SELECT '{dim}', {grp} AS g, '{metric}', {value} AS v, "
                f"count(*) FROM {facts} f WHERE {cond} GROUP BY g, v"
            )
        conn.execute(
            f"INSERT INTO {patients}(dim, grp, patient_id, n) "
            f"SELECT '{dim}', {grp} AS g, f.patient_id, count(*) FROM {facts} f "
            "GROUP BY g, f.patient_id"
        )
    conn.execute(
        f"INSERT INTO {target}(dim, grp, metric, value, n) "
        f"SELECT dim, grp, 'patients', '', count(*) FROM {patients} WHERE n > 0 GROUP BY dim, grp"
    )


def _fill(conn: sqlite3.Connection) -> None:
    for table in TABLES:
        conn.execute(f"DELETE FROM {table}")
    conn.execute(f"INSERT INTO report_facts({_COLS}) SELECT {_COLS} FROM report_facts_source")
    _fill_cells(conn, "report_cells", "report_facts", "report_patients")


def rebuild(conn: sqlite3.Connection, restore_triggers: bool = False) -> None:
    """Refill the facts and the cells from the clinical tables (set-based, no triggers).

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
        conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'report_cells'"
        ).fetchone()[0]
        == 1
    )


def check(conn: sqlite3.Connection) -> list[str]:
    """Differences between the kept facts/cells and what the tables say (none: ``[]``).

    Read-only: the expected cells are built in TEMP tables; a transaction this opens
    (a connection in Python's default mode starts one for the TEMP inserts) is ended.
    """
    began = not conn.in_transaction
    try:
        return _check(conn)
    finally:
        if began and conn.in_transaction:
            conn.rollback()


def _check(conn: sqlite3.Connection) -> list[str]:
    problems = []
    for a, b, what in (
        ("report_facts", "report_facts_source", "stale or extra fact"),
        ("report_facts_source", "report_facts", "missing fact"),
    ):
        n = conn.execute(
            f"SELECT count(*) FROM (SELECT {_COLS} FROM {a} EXCEPT SELECT {_COLS} FROM {b})"
        ).fetchone()[0]
        if n:
            problems.append(f"{n} {what} row(s)")
    conn.execute("DROP TABLE IF EXISTS temp.report_cells_expected")
    conn.execute("DROP TABLE IF EXISTS temp.report_patients_expected")
    conn.execute(
        "CREATE TEMP TABLE report_cells_expected (dim, grp, metric, value, n, "
        "PRIMARY KEY (dim, grp, metric, value)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TEMP TABLE report_patients_expected (dim, grp, patient_id, n, "
        "PRIMARY KEY (dim, grp, patient_id)) WITHOUT ROWID"
    )
    try:
        _fill_cells(
            conn,
            "temp.report_cells_expected",
            "report_facts_source",
            "temp.report_patients_expected",
        )
        for table, cols, what in (
            ("report_cells", "dim, grp, metric, value, n", "report cell(s)"),
            ("report_patients", "dim, grp, patient_id, n", "patient count(s)"),
        ):
            kept = f"SELECT {cols} FROM main.{table} WHERE n != 0"
            want = f"SELECT {cols} FROM temp.{table}_expected"
            for a, b, how in ((kept, want, "stale or extra"), (want, kept, "missing")):
                n = conn.execute(f"SELECT count(*) FROM ({a} EXCEPT {b})").fetchone()[0]
                if n:
                    problems.append(f"{n} {how} {what}")
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.report_cells_expected")
        conn.execute("DROP TABLE IF EXISTS temp.report_patients_expected")
    return problems


def read_cells(conn: sqlite3.Connection, by: str | None) -> list[tuple]:
    """The cells of the overall figures and of grouping ``by``."""
    dims = [stats.OVERALL] + ([by] if by else [])
    marks = ", ".join("?" for _ in dims)
    return conn.execute(
        f"SELECT dim, grp, metric, value, n FROM report_cells WHERE dim IN ({marks}) AND n > 0",
        dims,
    ).fetchall()


def iter_facts(
    conn: sqlite3.Connection,
    columns: Iterable[str],
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
    by_patient: bool = False,
) -> Iterator[dict[str, Any]]:
    """Fact rows (ended procedures), optionally of procedures started in a date range.

    The same values as :func:`sma_log.storage.analysis.iter_analysis_rows` gives for
    these columns, from the narrow table (and its index on the start). ``by_patient``:
    each patient's rows together (the table's own order: no sort).
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
    yield from analysis.iter_dicts(conn.execute(sql, params), names)


def load_report(
    conn: sqlite3.Connection,
    by: str | None = None,
    unit: stats.Unit = "procedure",
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
) -> stats.Report:
    """The case-series report, the fast way the question allows.

    Whole file, per procedure: from the cells (:func:`stats.summarise_cells`), a read of
    a few thousand rows at any size. A date range or ``unit="patient"`` (whose
    per-patient medians need each patient's procedures): the fact rows of the range,
    summarised by :func:`stats.summarise`. Both give the figures
    :func:`stats.summarise` gives over the analysis rows.
    """
    if by is not None and by not in stats.GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(stats.GROUPINGS)}")
    report = _load_report(conn, by, unit, date_from, date_to, tz)
    report.quality["cancelled"] = cancelled_count(conn, date_from, date_to, tz)
    return report


def cancelled_count(
    conn: sqlite3.Connection,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    tz: str = "UTC",
) -> int:
    """Procedures cancelled before the first puncture (in no figure; a data-quality line)."""
    where, params = ["status = 'cancelled'"], []
    if date_from is not None:
        where.append("started_at >= ?")
        params.append(analysis.day_bound(date_from, tz, end=False))
    if date_to is not None:
        where.append("started_at < ?")
        params.append(analysis.day_bound(date_to, tz, end=True))
    sql = f"SELECT count(*) FROM procedures WHERE {' AND '.join(where)}"
    return int(conn.execute(sql, params).fetchone()[0])


def _load_report(
    conn: sqlite3.Connection,
    by: str | None,
    unit: stats.Unit,
    date_from: date | str | None,
    date_to: date | str | None,
    tz: str,
) -> stats.Report:
    columns = [*stats.NEEDED] + ([stats.GROUPINGS[by][0]] if by else [])
    per_patient = unit == "patient"
    if not _has_cache(conn) or stored_version(conn) != definition_version():
        # Kept by other definitions (a file opened read-only since an upgrade): the
        # figures come from the tables themselves, by this code's rules.
        rows = analysis.iter_analysis_rows(
            _Conn(conn),
            date_from,
            date_to,
            columns=dict.fromkeys(columns),
            tz=tz,
            order=per_patient,
        )
        return stats.summarise(rows, by, unit, grouped_by_patient=False)
    if unit == "procedure" and date_from is None and date_to is None:
        own = not conn.in_transaction  # else the caller's transaction is the snapshot
        if own:
            conn.execute("BEGIN")  # one snapshot for both dimensions' cells
        try:
            return stats.summarise_cells(read_cells(conn, by), by)
        finally:
            if own:
                conn.execute("COMMIT")
    # Per patient: each patient's rows together (the table's order), so every patient
    # is summarised as soon as their rows end: constant memory at any size.
    rows = iter_facts(conn, dict.fromkeys(columns), date_from, date_to, tz, per_patient)
    return stats.summarise(rows, by, unit, grouped_by_patient=per_patient)


class _Conn:
    """A connection where :func:`analysis.iter_analysis_rows` expects a store."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
