"""Import and merge: another sma-log database (SQLite file or JSON export) into this one.

How a unit merges the files of several bedside laptops, and a study pools its sites.
Records are matched by their ``id`` (ULIDs, unique across machines), table by table,
parents before children (patients, identifiers, procedures, attempts, events,
followups, contact_attempts), all in ONE ``BEGIN IMMEDIATE`` transaction on this
database, through the Store's own insert and audit helpers:

* **new id** → inserted as it is (its own ids and timestamps kept), audited as an
  ``insert`` by the importing user;
* **same id, same content** → skipped; nothing is written, not even to the audit log,
  so importing the same file twice changes nothing the second time;
* **same id, different content** → a *conflict*: reported (table, id, the differing
  fields) and left as it is here; with ``prefer_incoming`` the incoming values are
  written instead, each changed field audited as an ``update`` (old → new);
* **a new record that cannot live beside what is here** → a conflict too, never
  resolved by ``prefer_incoming`` (nothing is overwritten to make room): the same study
  code on a different patient id, a second identifiers record for a patient, a second
  procedure in progress for a patient (one open procedure per patient), an event
  number or follow-up kind already taken in the procedure, or a parent that is missing
  here;
* children of a procedure or follow-up left in conflict are held back (conflicts
  too): procedures and follow-ups keep derived columns (attempt counts, minutes,
  contact counts) computed from their children, and rows of two different versions
  would not add up.

Fields a de-identified JSON export removed are unknown, not empty: they are never
compared and never overwrite a value here (a new record gets them empty).

What merges cleanly is committed even when there are conflicts (the report lists
what was left); with ``dry_run`` everything is rolled back.

Provenance: each import that changes something adds one audit row
(``action='import'``, ``table_name='import'``, ``record_id`` a new id, ``field='source'``,
``new_value`` a JSON note: source path, its kind, schema, sha256 of a JSON file, the
counts), with the same ``at`` and ``user`` as the per-row audit rows it wrote.

The source's own ``audit_log`` is NOT merged. This file's audit log records what
happened to this file: the import is audited here, row by row, by whoever ran it. The
source's history stays in the source (never modified: a SQLite source is opened
read-only) and in its ``--identifiers`` JSON export. Copying it in would put another
machine's changes (some to records whose conflict kept this file's values) into this
log with nothing saying where they happened, and the log is append-only: a wrong or
tampered entry could never be corrected. The ``meta`` table is not merged either (it
describes the file, not the data).

Refused, with one line and nothing changed (:class:`ImportRefused`): a missing file,
this database itself, a foreign, damaged or newer SQLite file (the same messages as
opening a database, from :mod:`sma_log.storage.db`), a SQLite file of an older schema
(open it once with this sma-log to upgrade it, which keeps a backup, then import it:
the import never writes to its source), and a JSON file that is not an sma-log export,
is malformed, or comes from a newer format or schema. A JSON export of an older schema
is accepted: columns it lacks take their defaults.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .storage.errors import StorageError

#: Tables whose rows carry columns derived from their children: when one is left in
#: conflict, its new children are held back.
DERIVED_PARENTS = ("procedures", "followups")
SQLITE_MAGIC = b"SQLite format 3\x00"


class ImportRefused(StorageError):
    """The file cannot be imported; one line; nothing was changed."""


@dataclass(frozen=True)
class ConflictItem:
    table: str
    id: str
    fields: tuple[str, ...]
    reason: str

    def line(self) -> str:
        what = f" [{', '.join(self.fields)}]" if self.fields else ""
        return f"{self.table} {self.id}{what}: {self.reason}"


@dataclass
class ImportResult:
    source: str
    kind: str  # "sqlite" or "json"
    schema_version: int
    tables: tuple[str, ...]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    conflicts: list[ConflictItem] = field(default_factory=list)
    dry_run: bool = False
    prefer_incoming: bool = False
    run_id: str | None = None

    def add(self, table: str, what: str) -> None:
        self.counts.setdefault(table, {"inserted": 0, "updated": 0, "skipped": 0, "conflicts": 0})[
            what
        ] += 1

    @property
    def changed(self) -> int:
        return sum(c["inserted"] + c["updated"] for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "schema_version": self.schema_version,
            "dry_run": self.dry_run,
            "prefer_incoming": self.prefer_incoming,
            "counts": self.counts,
            "conflicts": [
                {"table": c.table, "id": c.id, "fields": list(c.fields), "reason": c.reason}
                for c in self.conflicts
            ],
        }


# ---------------------------------------------------------------- sources
class Source:
    """Rows of another sma-log database, table by table, in id order."""

    kind = ""
    path: Path
    schema_version: int
    note: dict[str, Any]

    def tables(self) -> tuple[str, ...]:
        raise NotImplementedError

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteSource(Source):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        from .storage.db import open_connection
        from .storage.schema import SCHEMA_VERSION

        self.path = path
        # Read-only: refuses foreign, empty, truncated, newer and unreadable files in the
        # words of sma_log.storage.db, and never writes a byte to the source.
        self.conn, _ = open_connection(path, create=False, readonly=True)
        try:
            self.schema_version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            if self.schema_version < SCHEMA_VERSION:
                raise ImportRefused(
                    f"{path}: written by an older sma-log (schema {self.schema_version}; "
                    f"this version writes {SCHEMA_VERSION}): open it once with this sma-log "
                    "to upgrade it (a backup is kept), then import it"
                )
            check = self.conn.execute("PRAGMA quick_check").fetchall()
            if [r[0] for r in check] != ["ok"]:
                raise ImportRefused(
                    f"{path}: the database is damaged ({check[0][0]}): restore it from a backup"
                )
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise ImportRefused(f"{path}: the database is damaged or unreadable ({exc})") from None
        except BaseException:
            self.conn.close()
            raise
        self.note = {
            "created_by": meta.get("created_by"),
            "created_at": meta.get("created_at"),
        }
        self._tables = {
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def tables(self) -> tuple[str, ...]:
        from .storage.schema import CLINICAL_TABLES

        return tuple(t for t in CLINICAL_TABLES if t in self._tables)

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        try:
            cur = self.conn.execute(f"SELECT * FROM {table} ORDER BY id")
            cols = [c[0] for c in cur.description]
            for values in cur:
                yield dict(zip(cols, values, strict=True))
        except sqlite3.DatabaseError as exc:
            raise ImportRefused(
                f"{self.path}: the database is damaged or unreadable ({exc})"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()


class JsonSource(Source):
    kind = "json"

    def __init__(self, path: Path, data: bytes) -> None:
        from .export.jsondoc import FORMAT, FORMAT_VERSION, table_order
        from .storage.schema import SCHEMA_VERSION

        self.path = path
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ImportRefused(f"{path}: not UTF-8 text, so not an sma-log JSON export") from None
        except json.JSONDecodeError as exc:
            raise ImportRefused(
                f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}), so not an sma-log export"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ImportRefused(f"{path}: a JSON file, but not an sma-log export")
        fv, sv = doc.get("format_version"), doc.get("schema_version")
        if not _is_int(fv) or not _is_int(sv) or fv < 1 or sv < 1:
            raise ImportRefused(f"{path}: an sma-log export without a valid format/schema version")
        if fv > FORMAT_VERSION:
            raise ImportRefused(
                f"{path}: written by a newer sma-log (JSON format {fv}; this version reads "
                f"up to {FORMAT_VERSION}): upgrade sma-log to import it"
            )
        if sv > SCHEMA_VERSION:
            raise ImportRefused(
                f"{path}: written by a newer sma-log (schema {sv}; this version reads "
                f"up to {SCHEMA_VERSION}): upgrade sma-log to import it"
            )
        tables = doc.get("tables")
        if not isinstance(tables, dict):
            raise ImportRefused(f"{path}: an sma-log export without its tables")
        known = set(table_order())
        unknown = sorted(set(tables) - known)
        if unknown:
            raise ImportRefused(f"{path}: unknown table {unknown[0]!r} in the export")
        self.schema_version = sv
        self.doc = doc
        self.note = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "exported_at": doc.get("exported_at"),
            "identifiers_included": doc.get("identifiers_included"),
        }
        self._check_rows(_declared_columns())

    def _check_rows(self, columns: dict[str, dict[str, tuple[str, bool]]]) -> None:
        """Every row an object with a text id, known columns, values of the column's type."""
        for table, rows in self.doc["tables"].items():
            if table == "audit_log":
                continue  # never merged (see the module docstring)
            cols = columns.get(table, {})
            if not isinstance(rows, list):
                raise ImportRefused(f"{self.path}: table {table} is not a list of rows")
            for i, row in enumerate(rows):
                where = f"{self.path}: {table} row {i + 1}"
                if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                    raise ImportRefused(f"{where}: not a row with a text id")
                for name, value in row.items():
                    if name not in cols:
                        raise ImportRefused(f"{where}: unknown column {name!r}")
                    sqltype, nullable = cols[name]
                    if value is None:
                        if not nullable:
                            raise ImportRefused(f"{where}: {name} is required")
                        continue
                    if not _fits(sqltype, value):
                        raise ImportRefused(
                            f"{where}: {name} = {json.dumps(value)[:40]} is not {sqltype.lower()}"
                        )

    def tables(self) -> tuple[str, ...]:
        from .storage.schema import CLINICAL_TABLES

        return tuple(t for t in CLINICAL_TABLES if t in self.doc["tables"])

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        rows = self.doc["tables"].get(table, [])
        if table == "procedures" and self.schema_version < 3:
            # Schema 3 keeps procedure and puncture minutes to the whole second (what
            # migration 3 did to this file's own rows): the same rule, or every
            # procedure of an older export would look changed.
            from .storage.schema import whole_second_times

            for row in rows:
                if "procedure_min" in row or "puncture_min" in row:
                    row = {**row, **{k: v for k, v in whole_second_times(row).items() if k in row}}
                yield row
            return
        if table == "followups" and self.schema_version < 4:
            # What migration 4 judged of this file's own follow-ups, by the same rule:
            # when each was taken, early or not, "another event" when one is described.
            from .storage.schema import followup_v4_values

            procs = self.doc["tables"].get("procedures", [])
            ended = {p.get("id"): p.get("ended_at") for p in procs if isinstance(p, dict)}
            for row in rows:
                if isinstance(row, dict) and "early" not in row:
                    row = {
                        **followup_v4_values(
                            row.get("kind"),
                            row.get("state"),
                            row.get("completed_at"),
                            ended.get(row.get("procedure_id")),
                            row.get("other_event"),
                        ),
                        **row,
                    }
                yield row
            return
        yield from rows


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits(sqltype: str, value: Any) -> bool:
    if sqltype == "TEXT":
        return isinstance(value, str)
    if sqltype == "INTEGER":
        return _is_int(value)
    if sqltype == "REAL":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, (str, int, float))


def _declared_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    from .export.jsondoc import _table_columns

    return {
        t: {name: (sqltype, nullable) for name, sqltype, nullable in cols}
        for t, cols in _table_columns().items()
    }


def open_source(path: str | os.PathLike[str], target: Path | None = None) -> Source:
    """The file to import, judged before anything else is opened; raises ImportRefused."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ImportRefused(f"{path}: no such file")
    if path.is_dir():
        raise ImportRefused(f"{path}: is a folder, not an sma-log database or JSON export")
    if target is not None and target.exists():
        with contextlib.suppress(OSError):
            if os.path.samefile(path, target):
                raise ImportRefused(f"{path}: is the database being imported into")
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise ImportRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head.lstrip()[:1] == b"{" or head.startswith(b"\xef\xbb\xbf{"):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImportRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
        return JsonSource(path, data.removeprefix(b"\xef\xbb\xbf"))
    if head and not head.startswith(SQLITE_MAGIC) and b"\x00" not in head:
        raise ImportRefused(
            f"{path}: neither an SQLite database nor a JSON export, so not an sma-log file"
        )
    return SqliteSource(path)  # the database checks give their own one-line refusals


# ---------------------------------------------------------------- merging
class _Rollback(Exception):
    """Raised inside the transaction of a dry run, to roll it back."""


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(a == b)
    return type(a) is type(b) and a == b


class _Merger:
    def __init__(self, store: Any, source: Source, result: ImportResult, prefer: bool) -> None:
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.source = source
        self.result = result
        self.prefer = prefer
        self.blocked: dict[str, set[str]] = {t: set() for t in DERIVED_PARENTS}
        self._sp = 0
        self.at: str | None = None  # one instant on every audit row of this import

    def conflict(self, table: str, rid: str, fields: tuple[str, ...], reason: str) -> None:
        self.result.conflicts.append(ConflictItem(table, rid, fields, reason))
        self.result.add(table, "conflicts")
        if table in self.blocked:
            self.blocked[table].add(rid)

    def parents(self, table: str) -> list[tuple[str, str]]:
        """(column, parent table) for each foreign key of ``table``."""
        return [
            (r[3], r[2]) for r in self.conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
        ]

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()]

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._sp += 1
        name = f"import_row_{self._sp}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        self.conn.execute(f"RELEASE {name}")

    # ------------------------------------------------------------ rules
    def _clash(self, table: str, row: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
        """A rule a row would break here (unique study code, one open procedure, ...)."""
        rid = row["id"]

        def other(sql: str, *args: Any) -> str | None:
            found = self.conn.execute(sql, (*args, rid)).fetchone()
            return None if found is None else str(found[0])

        if table == "patients" and row.get("study_code"):
            o = other(
                "SELECT id FROM patients WHERE study_code = ? COLLATE NOCASE AND id != ?",
                row["study_code"],
            )
            if o:
                return ("study_code",), (
                    f"study code {row['study_code']} belongs to another patient here ({o})"
                )
        if table == "identifiers" and row.get("patient_id"):
            o = other(
                "SELECT id FROM identifiers WHERE patient_id = ? AND id != ?", row["patient_id"]
            )
            if o:
                return ("patient_id",), f"the patient already has identifiers here ({o})"
        if table == "procedures" and row.get("status") == "open" and row.get("patient_id"):
            o = other(
                "SELECT id FROM procedures WHERE patient_id = ? AND status = 'open' AND id != ?",
                row["patient_id"],
            )
            if o:
                return ("status",), (
                    f"the patient already has a procedure in progress here ({o}): "
                    "one open procedure per patient"
                )
        if table == "events" and row.get("seq") is not None:
            o = other(
                "SELECT id FROM events WHERE procedure_id = ? AND seq = ? AND id != ?",
                row.get("procedure_id"),
                row["seq"],
            )
            if o:
                return ("seq",), f"event number {row['seq']} of its procedure is {o} here"
        if table == "followups" and row.get("kind"):
            o = other(
                "SELECT id FROM followups WHERE procedure_id = ? AND kind = ? AND id != ?",
                row.get("procedure_id"),
                row["kind"],
            )
            if o:
                return ("kind",), f"its procedure already has a {row['kind']} follow-up ({o})"
        return None

    # ------------------------------------------------------------ one table
    def merge_table(self, table: str) -> None:
        cols = self.columns(table)
        colset = set(cols)
        parents = self.parents(table)
        self.result.counts.setdefault(
            table, {"inserted": 0, "updated": 0, "skipped": 0, "conflicts": 0}
        )
        for incoming in self.source.rows(table):
            row = {k: v for k, v in incoming.items() if k in colset}
            rid = str(row["id"])
            cur = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (rid,))
            values = cur.fetchone()
            if values is None:
                self._new(table, cols, parents, row)
                continue
            here = dict(zip([c[0] for c in cur.description], values, strict=True))
            diff = tuple(k for k in row if k != "id" and not _same(here.get(k), row[k]))
            if not diff:
                self.result.add(table, "skipped")
                continue
            if not self.prefer:
                self.conflict(table, rid, diff, "differs here (kept this database's values)")
                continue
            self._overwrite(table, rid, row, here, diff)

    def _new(
        self,
        table: str,
        cols: list[str],
        parents: list[tuple[str, str]],
        row: dict[str, Any],
    ) -> None:
        rid = str(row["id"])
        for col, parent in parents:
            pid = row.get(col)
            if pid is None:
                continue
            if parent in self.blocked and pid in self.blocked[parent]:
                self.conflict(
                    table, rid, (col,), f"held back: its {parent[:-1]} {pid} is in conflict"
                )
                return
            if self.conn.execute(f"SELECT 1 FROM {parent} WHERE id = ?", (pid,)).fetchone() is None:
                self.conflict(
                    table, rid, (col,), f"its {parent[:-1]} {pid} is not in this database"
                )
                return
        clash = self._clash(table, row)
        if clash:
            self.conflict(table, rid, *clash)
            return
        full = {c: row[c] for c in cols if c in row}
        try:
            with self.savepoint():
                self.conn.execute(
                    f"INSERT INTO {table}({', '.join(full)}) "
                    f"VALUES ({', '.join('?' for _ in full)})",
                    tuple(full.values()),
                )
                audit = {k: v for k, v in full.items() if k != "id"}
                self.store._audit("insert", table, rid, "*", None, audit, at=self.at)
        except sqlite3.IntegrityError as exc:
            self.conflict(table, rid, (), f"cannot be added here ({exc})")
            return
        self.result.add(table, "inserted")

    def _overwrite(
        self,
        table: str,
        rid: str,
        row: dict[str, Any],
        here: dict[str, Any],
        diff: tuple[str, ...],
    ) -> None:
        clash = self._clash(table, row)
        if clash:
            self.conflict(table, rid, diff, clash[1] + "; not overwritten")
            return
        sets = ", ".join(f"{k} = ?" for k in diff)
        try:
            with self.savepoint():
                self.conn.execute(
                    f"UPDATE {table} SET {sets} WHERE id = ?", (*(row[k] for k in diff), rid)
                )
                for k in diff:
                    self.store._audit("update", table, rid, k, here.get(k), row[k], at=self.at)
        except sqlite3.IntegrityError as exc:
            self.conflict(table, rid, diff, f"cannot be overwritten here ({exc})")
            return
        self.result.add(table, "updated")


def import_file(
    store: Any,
    path: str | os.PathLike[str],
    *,
    prefer_incoming: bool = False,
    dry_run: bool = False,
    source: Source | None = None,
    progress: Callable[[str], Any] | None = None,
) -> ImportResult:
    """Merge the file at ``path`` into ``store``'s database (see the module docstring).

    Raises :class:`ImportRefused` for a file that cannot be imported (nothing changed).
    """
    from .domain.clock import to_text
    from .domain.ids import new_id

    src = source or open_source(path, store.path)
    try:
        result = ImportResult(
            source=str(src.path),
            kind=src.kind,
            schema_version=src.schema_version,
            tables=src.tables(),
            dry_run=dry_run,
            prefer_incoming=prefer_incoming,
        )
        merger = _Merger(store, src, result, prefer_incoming)
        try:
            with store.write():
                at = merger.at = to_text(store.now())
                for table in result.tables:
                    if progress is not None:
                        progress(table)
                    merger.merge_table(table)
                if result.changed:
                    result.run_id = new_id()
                    note = {
                        # a name that is not UTF-8 is kept readable (\xe9), not refused
                        "source": os.fsencode(Path(src.path).resolve()).decode(
                            "utf-8", "backslashreplace"
                        ),
                        "kind": src.kind,
                        "schema_version": src.schema_version,
                        **src.note,
                        "prefer_incoming": prefer_incoming,
                        "counts": result.counts,
                        "conflicts": len(result.conflicts),
                    }
                    store._audit("import", "import", result.run_id, "source", None, note, at=at)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            result.run_id = None
        return result
    finally:
        src.close()
