"""``sma-log export --format sqlite``: a consistent copy of the live database.

Everything is written in a private (0700) staging folder beside ``--out``
(:func:`sma_log.export.common.staging_folder`), checked with ``PRAGMA
integrity_check``, ``VACUUM``ed and only then moved into place. The live file is never
written. What a killed export leaves (its staging folder) is removed by the next export
(:func:`sma_log.export.common.remove_stale_staging`).

* ``--identifiers``: SQLite's online backup API in ONE step (``Connection.backup(dst)``,
  pages = -1) reads one snapshot, consistent even while another sma-log is writing (a
  file copy of a WAL database is not: 11 corrupt copies of 20; a backup in small steps
  restarts forever under load); procedures started outside ``--from/--to`` are then
  deleted with their children, patients left with none, and their audit entries.
* de-identified (the default): the copy is BUILT FROM DE-IDENTIFIED ROWS, never a full
  copy scrubbed afterwards. An empty database of the same schema is created, and each
  row of the live file (read in one snapshot, filtered by ``--from/--to``) goes through
  :func:`sma_log.export.common.deidentify_row`, the rule every format uses: no
  ``identifiers`` or ``audit_log`` rows (the tables stay, empty), no free text, no
  boot id, record ids with their time part zeroed, and every instant column holding
  its local calendar date in the site time zone (no time of day). Procedure and
  puncture minutes are kept. ``meta`` lists what was removed or masked
  (``export_deidentification`` and one ``export_*`` line per kind of change). So
  neither the copy nor its journal ever holds an identifier, a note or a time of day.
  Such a copy is a file for analysis (sqlite3, Datasette): its instants are dates, so
  sma-log cannot replay its timelines.

Bad cells (values sma-log would not store, written by another tool) are reported and
copied as stored; de-identified, an instant that cannot be read is emptied (its text may
hold the time of day), and where its column is NOT NULL the export is refused with one
line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..storage import reportcache
from .common import (
    DEIDENTIFIED_TEXT,
    IDENTIFIED_TEXT,
    REMOVED_TABLES,
    ExportOptions,
    ExportRefused,
    LocalDates,
    Tally,
    deidentification_manifest,
    deidentify_row,
    find_bad_cells,
    identifying_columns,
    is_instant_column,
    manifest_lines,
    staging_folder,
)

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: An instant written inside a text (a meta value): its time of day is left out.
_INSTANT_IN_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z?")
_SKIP = ("meta", "audit_log", "identifiers")


def write_sqlite(store: Any, out: Path, opts: ExportOptions, force: bool) -> dict[str, int]:
    """Write the copy to ``out``; return the row count of each table in it.

    Everything is built in a private (0700) staging folder beside ``out``
    (:func:`~sma_log.export.common.staging_folder`) and moved into place only when
    complete and checked; a kill leaves that folder, which holds only what the export
    writes (de-identified rows, by default), for the next export to remove.
    """
    with staging_folder(out) as stage:
        tmp = stage / "copy.sqlite"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            dst.execute("PRAGMA foreign_keys = OFF")
            dst.execute("PRAGMA secure_delete = ON")
            if opts.identifiers:
                _identified_copy(store, dst, opts)
            else:
                _deidentified_copy(store, dst, opts)
            dst.execute("VACUUM")  # no free page holds anything removed or filtered out
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise ExportRefused(f"the copy failed its integrity check ({check}); not written")
            counts = {
                t: int(dst.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in _tables(dst)
                if t != "meta"
            }
        finally:
            dst.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise ExportRefused(
                    f"{out}: already exists; choose another path or use --force"
                ) from None
    with contextlib.suppress(OSError):
        dir_fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return counts


def _identified_copy(store: Any, dst: sqlite3.Connection, opts: ExportOptions) -> None:
    """``--identifiers``: the whole database (SQLite's backup: a consistent snapshot, in
    steps when progress is shown), then the procedures outside ``--from/--to`` deleted."""
    if opts.progress is None:
        store.conn.backup(dst)  # pages=-1: the whole database in one step
    else:  # in steps, to show them; a write by another process restarts the copy
        report = opts.progress
        store.conn.backup(
            dst, pages=4096, sleep=0, progress=lambda _s, left, total: report(total - left, total)
        )
    dst.execute("PRAGMA journal_mode = DELETE")
    dst.execute("BEGIN IMMEDIATE")
    # The report caches follow the copy's rows: rebuilt once after the bulk changes
    # (their triggers lifted meanwhile), not updated row by row.
    with reportcache.suspended(dst):
        _filter_dates(dst, opts)
        _bad_cells(dst, opts)
    _note_export(dst, opts, None)
    dst.execute("COMMIT")


def _deidentified_copy(store: Any, dst: sqlite3.Connection, opts: ExportOptions) -> None:
    """The default: an empty database of the same schema, filled with the rows of
    :func:`~sma_log.export.common.deidentify_row` read in one snapshot of the live
    file. No identifier, note or time of day is ever written to the copy's file or
    journal: there is nothing to scrub afterwards."""
    from .jsondoc import _filters

    src: sqlite3.Connection = store.conn
    dates = LocalDates(opts.tz)
    src.execute("BEGIN")  # one read snapshot for the whole copy
    try:
        version = int(src.execute("PRAGMA user_version").fetchone()[0])
        app_id = int(src.execute("PRAGMA application_id").fetchone()[0])
        schema = src.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ).fetchall()
        dst.execute("BEGIN IMMEDIATE")
        for kind, _, sql in schema:
            if kind == "table":
                dst.execute(sql)
        # audit_tx (who and when of the audit log's transactions) goes with the log
        tables = [
            t for t in _tables(dst) if t not in ("meta", "audit_tx") and t not in REMOVED_TABLES
        ]
        lo, hi = opts.utc_bounds
        filters = _filters(tuple(tables), lo, hi)
        stored = {t: _columns(dst, t) for t in _tables(dst)}
        _report_bad_cells(src, tables, filters, opts, dates)
        tally = Tally(opts.progress)
        if opts.progress is not None:
            tally.total = sum(
                int(src.execute(f"SELECT count(*) FROM {t} t WHERE {w}", a).fetchone()[0])
                for t, (w, a) in ((t, filters[t]) for t in tables)
            )
            tally.add(0)
        for table in tables:
            where, args = filters[table]
            cur = src.execute(f"SELECT * FROM {table} t WHERE {where}", args)
            cols = [c[0] for c in cur.description]
            while rows := cur.fetchmany(2000):
                tally.add(len(rows))
                for values in rows:
                    row = deidentify_row(table, dict(zip(cols, values, strict=True)), opts, dates)
                    if row is None:
                        continue
                    names = ", ".join(f'"{k}"' for k in row)
                    marks = ", ".join("?" * len(row))
                    try:
                        dst.execute(
                            f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values())
                        )
                    except sqlite3.IntegrityError as exc:
                        raise ExportRefused(
                            f"--format sqlite: a de-identified row of {table} cannot be "
                            f"stored ({exc}); sma-log info --check lists every bad cell; "
                            "export with --identifiers, or as csv or json"
                        ) from None
        for key, value in src.execute("SELECT key, value FROM meta"):
            if is_instant_column(key):
                value = dates.date(value) or ""
            elif isinstance(value, str):  # e.g. the demo generator's note of its "now"
                value = _INSTANT_IN_TEXT.sub(lambda m: dates.date(m[0]) or m[0][:10], value)
            dst.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, value))
    finally:
        if src.in_transaction:
            src.execute("COMMIT")
    for kind, _, sql in schema:
        if kind != "table":
            dst.execute(sql)
    made = {r[1] for r in schema if r[0] == "table"}
    if all(t in made for t in reportcache.TABLES):  # the report's cache, from the copy's rows
        reportcache.rebuild(dst)
    dst.execute(f"PRAGMA user_version = {version}")
    dst.execute(f"PRAGMA application_id = {app_id}")  # still an sma-log file
    _note_export(dst, opts, deidentification_manifest(False, stored, opts.tz))
    dst.execute("COMMIT")


def _report_bad_cells(
    src: sqlite3.Connection,
    tables: list[str],
    filters: dict[str, tuple[str, tuple[Any, ...]]],
    opts: ExportOptions,
    dates: LocalDates,
) -> None:
    """Report the bad cells of what the de-identified copy holds; refuse the export if
    an instant that cannot be read sits in a NOT NULL column (it cannot be empty)."""
    for table in tables:
        info = src.execute(f"PRAGMA table_info({table})").fetchall()
        free = set(identifying_columns(table))
        columns = [r[1] for r in info if r[1] not in free]
        required = {r[1] for r in info if r[3]}
        guards = {"value": "t.kind IS NOT 'note'"} if table == "events" else {}
        where, args = filters[table]
        for cell in find_bad_cells(src, table, columns, None, where, args, guards):
            if is_instant_column(cell.column):
                if dates.date(cell.value) is not None:
                    opts.bad.add(cell, "written as its date")
                    continue
                if cell.column in required:
                    raise ExportRefused(
                        "--format sqlite: a de-identified copy writes every instant as its "
                        f"date, and {cell.line()} has none and cannot be left empty; fix "
                        "it in the file, or export with --identifiers, or as csv or json "
                        "(sma-log info --check lists every bad cell)"
                    )
                opts.bad.add(cell, "written empty")
            else:
                opts.bad.add(cell, "copied as stored")


def _bad_cells(conn: sqlite3.Connection, opts: ExportOptions) -> None:
    """Report the copy's bad cells to ``opts.bad``; de-identified, empty the instants
    that cannot be read (they have no date to give and their text may hold the
    time of day), or refuse the export if such an instant cannot be empty."""
    from .jsondoc import table_order

    empty = not opts.identifiers
    found: list[Any] = []
    present = set(_tables(conn))
    for table in table_order():  # the data tables (not meta, not the report's caches)
        if table not in present or (empty and table in _SKIP):
            continue  # de-identified: the identifiers and the audit log are emptied
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        free = set(identifying_columns(table)) if empty else set()
        columns = [r[1] for r in info if r[1] not in free]
        required = {r[1] for r in info if r[3]}
        guards = {"value": "t.kind IS NOT 'note'"} if empty and table == "events" else {}
        cells = find_bad_cells(conn, table, columns, guards=guards)
        if empty:
            stuck = [c for c in cells if is_instant_column(c.column) and c.column in required]
            if stuck:
                more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
                raise ExportRefused(
                    "--format sqlite: a de-identified copy moves every instant to keep "
                    f"dates without the time of day, and {stuck[0].line()}{more} cannot "
                    "be moved or left empty; fix it in the file, or export with "
                    "--identifiers, or as csv or json (sma-log info --check lists every "
                    "bad cell)"
                )
        found += cells
    for cell in found:
        if empty and is_instant_column(cell.column):
            conn.execute(
                f'UPDATE {cell.table} SET "{cell.column}" = NULL WHERE rowid = ?', (cell.rowid,)
            )
            opts.bad.add(cell, "written empty")
        else:
            opts.bad.add(cell, "copied as stored")


def _tables(conn: sqlite3.Connection) -> list[str]:
    """The data tables (the report caches are rebuilt, not edited or counted)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
        if r[0] not in reportcache.TABLES
    ]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _filter_dates(conn: sqlite3.Connection, opts: ExportOptions) -> None:
    cond, params = opts.start_filter("started_at")
    if not params:
        return
    conn.execute(
        "CREATE TEMP TABLE gone AS SELECT id FROM procedures WHERE NOT (" + cond + ")", params
    )
    conn.execute(
        "DELETE FROM contact_attempts WHERE followup_id IN "
        "(SELECT id FROM followups WHERE procedure_id IN (SELECT id FROM temp.gone))"
    )
    for table in ("followups", "events", "attempts", "timeouts"):
        conn.execute(f"DELETE FROM {table} WHERE procedure_id IN (SELECT id FROM temp.gone)")
    conn.execute("DELETE FROM procedures WHERE id IN (SELECT id FROM temp.gone)")
    keep = "SELECT patient_id FROM procedures"
    conn.execute(f"DELETE FROM identifiers WHERE patient_id NOT IN ({keep})")
    conn.execute(f"DELETE FROM labs WHERE patient_id NOT IN ({keep})")
    conn.execute(f"DELETE FROM patients WHERE id NOT IN ({keep})")
    conn.execute("DROP TABLE temp.gone")
    # The audit trail of records no longer in the copy goes with them.
    alive = " UNION ALL ".join(
        f"SELECT id FROM {t}"
        for t in _tables(conn)
        if t not in ("meta", "audit_log", "audit_tx") and "id" in _columns(conn, t)
    )
    with _audit_unlocked(conn):
        conn.execute(f"DELETE FROM audit_log WHERE record_id NOT IN ({alive})")
        conn.execute("DELETE FROM audit_tx WHERE n NOT IN (SELECT tx FROM audit_log)")


@contextlib.contextmanager
def _audit_unlocked(conn: sqlite3.Connection) -> Any:
    """The append-only triggers of audit_log (and audit_tx) lifted in the COPY, and put back."""
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
        "AND tbl_name IN ('audit_log', 'audit_tx')"
    ).fetchall()
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    yield
    for _, sql in triggers:
        conn.execute(sql)


def _note_export(
    conn: sqlite3.Connection, opts: ExportOptions, manifest: dict[str, Any] | None
) -> None:
    from .. import __version__

    if opts.identifiers:
        note = IDENTIFIED_TEXT
    else:
        note = (
            DEIDENTIFIED_TEXT
            + f" In this SQLite copy every instant column holds its local date ({opts.tz}), "
            "not a UTC instant, so sma-log cannot replay its timelines: it is a file for "
            "analysis (sqlite3, Datasette); the identifiers and audit_log tables are empty "
            "(the audit log's values repeat the identifiers and notes)."
        )
    rows = {
        "export_kind": "identified" if opts.identifiers else "deidentified",
        "export_note": note,
        "export_audit_log": "kept" if opts.identifiers else "removed (de-identified export)",
        "export_range": opts.range_text(),
        "exported_by": __version__,
        "exported_on": datetime.now(UTC).date().isoformat(),
    }
    if manifest is not None:
        rows["export_deidentification"] = json.dumps(manifest, ensure_ascii=False)
        rows.update({f"export_{k}": v for k, v in manifest_lines(manifest)})
    for key, value in rows.items():
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
