"""``sma-log export --format sqlite``: a consistent copy of the live database.

The copy is taken with SQLite's online backup API in ONE step
(``Connection.backup(dst)``, pages = -1): it reads one snapshot, so it is consistent
even while another sma-log is writing. A file copy of a WAL database is not (measured:
11 corrupt copies of 20), and a backup in small steps restarts forever under load.

The copy is made beside ``--out`` (0600), changed there, checked with
``PRAGMA integrity_check`` and only then moved into place. The live file is never
written. What is changed in the copy:

* ``--from/--to``: procedures started outside the range are deleted with their
  attempts, events, follow-ups and contact attempts, and so are patients left with
  no procedure (and their identifiers);
* de-identified (the default):

  - ``identifiers`` emptied; free text set to NULL (the same columns the CSV export
    leaves out, and the text of ``note`` events); the boot id/boot clock anchor NULL;
  - ``audit_log`` emptied: its old/new values repeat the identifiers and notes, so it
    cannot be kept without them. The table (and its append-only triggers) stays, so
    the copy is still an sma-log database; ``meta`` says the log was removed;
  - times: every instant of a procedure — its milestones, attempts, events, follow-ups
    and contact attempts — is moved by one offset so that the procedure starts at
    12:00:00 local time (site time zone) on the date it started. Dates and every
    interval within a procedure (attempt times, procedure and puncture minutes, the
    72-hour due time) are kept; the time of day is not. Patients' created/updated
    times become 12:00 local on their date;
  - record ids lose their time part (:func:`sma_log.export.common.mask_id`), in every
    table and every reference, so joins still work;
  - ``PRAGMA secure_delete`` and a final ``VACUUM``: no removed value is left in free
    pages of the file.

Bad cells (values sma-log would not store, written by another tool) are reported and
copied as stored; de-identified, an instant that cannot be read is emptied (it cannot
be moved to 12:00 and its text may hold the time of day), and where its column is
NOT NULL the export is refused with one line.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..commands.common import CommandRefused
from ..storage import reportcache
from .common import (
    DEIDENTIFIED_TEXT,
    IDENTIFIED_TEXT,
    ExportOptions,
    LocalDates,
    find_bad_cells,
    identifying_columns,
    is_id_column,
    is_instant_column,
    mask_id,
)

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: How each table reaches the procedure whose time offset moves its instants.
_PROCEDURE_OF = {
    "procedures": "id",
    "attempts": "procedure_id",
    "events": "procedure_id",
    "followups": "procedure_id",
    "contact_attempts": "(SELECT f.procedure_id FROM followups f WHERE f.id = followup_id)",
}
_SKIP = ("meta", "audit_log", "identifiers")


def write_sqlite(store: Any, out: Path, opts: ExportOptions, force: bool) -> dict[str, int]:
    """Write the copy to ``out``; return the row count of each table in it."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    for suffix in ("-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{tmp}{suffix}").unlink()
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            store.conn.backup(dst)  # pages=-1: the whole database in one step
            dst.execute("PRAGMA journal_mode = DELETE")  # the copy is one self-contained file
            dst.execute("PRAGMA foreign_keys = OFF")
            dst.execute("PRAGMA secure_delete = ON")
            dst.execute("BEGIN IMMEDIATE")
            # The report caches follow the copy's rows: rebuilt once after the bulk
            # changes (their triggers lifted meanwhile), not updated row by row.
            with reportcache.suspended(dst):
                _filter_dates(dst, opts)
                _bad_cells(dst, opts)
                if not opts.identifiers:
                    try:
                        _deidentify(dst, opts)
                    except sqlite3.IntegrityError as exc:
                        raise CommandRefused(
                            "--format sqlite: the de-identified copy could not move an "
                            f"instant ({exc}); export with --identifiers, or as csv or json"
                        ) from None
            _note_export(dst, opts)
            dst.execute("COMMIT")
            dst.execute("VACUUM")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise CommandRefused(f"the copy failed its integrity check ({check}); not written")
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
                raise CommandRefused(
                    f"{out}: already exists; choose another path or use --force"
                ) from None
    finally:
        for p in (tmp, Path(f"{tmp}-journal")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return counts


def _bad_cells(conn: sqlite3.Connection, opts: ExportOptions) -> None:
    """Report the copy's bad cells to ``opts.bad``; de-identified, empty the instants
    that cannot be read (they cannot be moved to 12:00 and their text may hold the
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
                raise CommandRefused(
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
    for table in ("followups", "events", "attempts"):
        conn.execute(f"DELETE FROM {table} WHERE procedure_id IN (SELECT id FROM temp.gone)")
    conn.execute("DELETE FROM procedures WHERE id IN (SELECT id FROM temp.gone)")
    keep = "SELECT patient_id FROM procedures"
    conn.execute(f"DELETE FROM identifiers WHERE patient_id NOT IN ({keep})")
    conn.execute(f"DELETE FROM patients WHERE id NOT IN ({keep})")
    conn.execute("DROP TABLE temp.gone")
    # The audit trail of records no longer in the copy goes with them.
    alive = " UNION ALL ".join(
        f"SELECT id FROM {t}"
        for t in _tables(conn)
        if t not in ("meta", "audit_log") and "id" in _columns(conn, t)
    )
    with _audit_unlocked(conn):
        conn.execute(f"DELETE FROM audit_log WHERE record_id NOT IN ({alive})")


@contextlib.contextmanager
def _audit_unlocked(conn: sqlite3.Connection) -> Any:
    """The append-only triggers of audit_log lifted in the COPY, and put back."""
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
    ).fetchall()
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    yield
    for _, sql in triggers:
        conn.execute(sql)


class _Shifter:
    """Moves stored instants by whole microseconds; finds each procedure's offset."""

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self.dates = LocalDates(tz)

    # Each returns None for an instant it cannot move (the bad cells are emptied or
    # refused before, so only one at the very edge of the calendar): the copy's NOT
    # NULL constraint then refuses it (one line), instead of a traceback.
    def noon_offset_us(self, started_at: str) -> int | None:
        try:
            start = LocalDates._utc(started_at)
            local = start.astimezone(self.zone)
            noon = datetime(local.year, local.month, local.day, 12, tzinfo=self.zone)
            delta = noon.astimezone(UTC) - start
        except (TypeError, ValueError, OverflowError):
            return None
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def shift(self, text: Any, offset_us: Any) -> Any:
        if not isinstance(text, str) or len(text) < 19 or offset_us is None:
            return None
        try:
            moved = LocalDates._utc(text) + timedelta(microseconds=int(offset_us))
        except (ValueError, OverflowError):
            return None
        return moved.strftime(_FMT)

    def noon(self, text: Any) -> Any:
        if not isinstance(text, str) or len(text) < 19:
            return None
        try:
            local = LocalDates._utc(text).astimezone(self.zone)
            noon = datetime(local.year, local.month, local.day, 12, tzinfo=self.zone)
            return noon.astimezone(UTC).strftime(_FMT)
        except (ValueError, OverflowError):
            return None


def _deidentify(conn: sqlite3.Connection, opts: ExportOptions) -> None:
    shifter = _Shifter(opts.tz)
    conn.create_function("sma_shift", 2, shifter.shift, deterministic=True)
    conn.create_function("sma_noon", 1, shifter.noon, deterministic=True)
    conn.create_function("sma_mask_id", 1, mask_id, deterministic=True)
    tables = _tables(conn)
    conn.execute("DELETE FROM identifiers")
    with _audit_unlocked(conn):
        conn.execute("DELETE FROM audit_log")
    for table in tables:
        if table in _SKIP:
            continue
        cols = _columns(conn, table)
        free = [c for c in identifying_columns(table) if c in cols]
        if free:
            conn.execute(f"UPDATE {table} SET {', '.join(f'{c} = NULL' for c in free)}")
    conn.execute("UPDATE events SET value = NULL WHERE kind = 'note'")
    # One offset per procedure, computed once.
    conn.execute("CREATE TEMP TABLE shift (pid TEXT PRIMARY KEY, us INTEGER) WITHOUT ROWID")
    cur = conn.execute("SELECT id, started_at FROM procedures")
    while rows := cur.fetchmany(5000):
        conn.executemany(
            "INSERT INTO temp.shift VALUES (?, ?)",
            [(pid, shifter.noon_offset_us(start)) for pid, start in rows],
        )
    for table in tables:
        if table in _SKIP:
            continue
        cols = [c for c in _columns(conn, table) if is_instant_column(c)]
        if not cols:
            continue
        if table in _PROCEDURE_OF:
            offset = f"(SELECT us FROM temp.shift WHERE pid = {_PROCEDURE_OF[table]})"
            sets = ", ".join(f"{c} = sma_shift({c}, {offset})" for c in cols)
        else:
            sets = ", ".join(f"{c} = sma_noon({c})" for c in cols)
        conn.execute(f"UPDATE {table} SET {sets}")
    conn.execute("DROP TABLE temp.shift")
    for table in tables:
        if table == "meta":
            continue
        ids = [c for c in _columns(conn, table) if is_id_column(c)]
        if table == "audit_log" or not ids:
            continue
        conn.execute(f"UPDATE {table} SET {', '.join(f'{c} = sma_mask_id({c})' for c in ids)}")


def _note_export(conn: sqlite3.Connection, opts: ExportOptions) -> None:
    from .. import __version__

    if opts.identifiers:
        note = IDENTIFIED_TEXT
    else:
        note = (
            DEIDENTIFIED_TEXT
            + " In this SQLite copy each procedure was moved so that it starts at 12:00 "
            f"local time ({opts.tz}) on its date (intervals kept), and the audit_log was "
            "emptied because its values repeat the identifiers and notes."
        )
    rows = {
        "export_kind": "identified" if opts.identifiers else "deidentified",
        "export_note": note,
        "export_audit_log": "kept" if opts.identifiers else "removed (de-identified export)",
        "export_range": opts.range_text(),
        "exported_by": __version__,
        "exported_on": datetime.now(UTC).date().isoformat(),
    }
    for key, value in rows.items():
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
