"""Import and merge: another sma-log database (SQLite file or JSON export) into this one.

How a unit merges the files of several bedside laptops, and a study pools its sites.
Records are matched by their ``id`` (ULIDs, unique across machines): patients with
their identifiers first, then each procedure together with its events, attempts,
follow-ups and contact attempts (a *family*), through the Store's own insert and
audit helpers:

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
  too), and a procedure whose events cannot all be merged is left as it is here with
  all of them: its derived columns (attempt counts, minutes) must add up to its events.
  A procedure that exists here and gains events or follow-ups is checked again as
  stored (the timeline rules, the follow-up rules) and its derived columns and attempts
  rebuilt from its events, or, if it would not add up, left as it was (a conflict).

**Every record is judged by the bedside's rules** (:mod:`sma_log.domain.records`): its
columns by the domain's field specs and vocabularies (a value the bedside would refuse
never enters by this door; one valid under the shipped JSON Schema but spelled
differently, such as ``5.0`` for ``5``, is stored in its stored form), a procedure's
events by the timeline rules replayed in order, a completed follow-up by the follow-up
rules. Derived columns (a procedure's attempt and redirection counts, first-attempt
success, milestone instants, minutes, sedation; its ``attempts`` rows; a follow-up's due
time and call count) are **recomputed from the events, never taken from the file**; a
record whose given values disagree is listed (``recomputed``: table, id, fields) and
stored with the recomputed ones.

**A refused record is left out with its children, not the whole file.** A refused
patient takes its identifiers and procedures with it; a refused procedure, event or
timeline takes the whole procedure (events, attempts, follow-ups, contact attempts); a
refused follow-up or call takes that follow-up with its calls. Everything else is
merged, and every refused record is listed (table, id, column, reason, with control
characters made visible by :func:`sma_log.domain.text.visible`); ``sma-log import``
then exits 3, as for conflicts. Why not refuse the whole file: merging laptops and
pooling sites is done again and again; one bad record should not hold back a site's
hundreds of good ones, and because identical records are skipped, importing the file
again once the bad records are put right brings in exactly what was left out.
Nothing half-valid is ever stored: a family is written whole or not at all.

**Batches: the bedside is never blocked.** The import commits in short ``BEGIN
IMMEDIATE`` transactions (:data:`TX_BUDGET` seconds of writing at most, whole
families only) and, between them, leaves the database alone for at least
:data:`TX_GAP` seconds (reading and checking the next records meanwhile), longer than
SQLite's busy handler sleeps between two tries: a key pressed at the bedside during an
import waits for one batch, a fraction of a second, never for the whole import. An
import that is stopped (killed, a power cut) keeps the whole families it committed;
run it again and it completes: what is already here is identical and skipped.

What merges cleanly is committed even when there are conflicts or refusals (the
report lists what was left); ``dry_run`` imports into a private copy of this database
(made with SQLite's backup API) and throws it away, so it writes nothing here and
locks nothing for longer than a batch.

Fields a de-identified JSON export removed are unknown, not empty: they are never
compared and never overwrite a value here (a new record gets them empty).

Provenance: an import that changes something adds two audit rows (``action='import'``,
``table_name='import'``, ``record_id`` the run's id): ``field='source'`` in its first
batch that changes something (``new_value`` a JSON note: source path, or the label the
caller gives instead (``sma-log pull``: the device and its replica), its kind, schema,
sha256 of a JSON file), and ``field='result'`` in its last batch (the counts, conflicts
and refusals). Both have the same ``at`` and ``user`` as the per-row audit rows of the
run, so a run stopped part-way shows as a ``source`` row without its ``result``.

The source's own ``audit_log`` is NOT merged. This file's audit log records what
happened to this file: the import is audited here, row by row, by whoever ran it. The
source's history stays in the source (never modified: a SQLite source is opened
read-only and read in one snapshot) and in its ``--identifiers`` JSON export. Copying
it in would put another machine's changes (some to records whose conflict kept this
file's values) into this log with nothing saying where they happened, and the log is
append-only: a wrong or tampered entry could never be corrected. The ``meta`` table is
not merged either (it describes the file, not the data).

Refused, with one line and nothing changed (:class:`ImportRefused`): a missing file,
this database itself, a foreign, damaged or newer SQLite file (the same messages as
opening a database, from :mod:`sma_log.storage.db`), a SQLite file of an older schema
(open it once with this sma-log to upgrade it, which keeps a backup, then import it:
the import never writes to its source), and a JSON file that is not an sma-log export
(not an object of tables of rows with known columns), is malformed, or comes from a
newer format or schema. A JSON export of an older schema is accepted: columns it lacks
take their defaults. A source found unreadable part-way through stops the import with
the same kind of line; the whole families already committed stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from .domain import records
from .domain.records import Recomputed, Refusal, id_text, same
from .domain.text import visible
from .storage.errors import StorageError

if TYPE_CHECKING:
    from .storage.store import Store

#: Tables whose rows carry columns derived from their children: when one is left in
#: conflict, its new children are held back.
DERIVED_PARENTS = ("procedures", "followups")
SQLITE_MAGIC = b"SQLite format 3\x00"
#: Longest a write transaction of the import runs (seconds; whole families).
TX_BUDGET = 0.25
#: Shortest pause between two write transactions (seconds): longer than the longest
#: sleep of SQLite's busy handler (100 ms), so a waiting writer always gets its turn.
TX_GAP = 0.12
#: Families read and checked ahead at most (memory bound).
MAX_PENDING = 2000
#: Families read and checked ahead at least (fewer only at the end of the source).
MIN_PENDING = 50
CHUNK = 200  # procedures read from a SQLite source at a time
COUNT_KEYS = ("inserted", "updated", "skipped", "conflicts", "refused")
#: Derived columns never compared with what is here (they follow the stored children).
_COMPARE_SKIP = {t: frozenset(records.DERIVED[t]) for t in ("procedures", "followups")}


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
        return visible(f"{self.table} {self.id}{what}: {self.reason}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "id": visible(self.id),
            "fields": [visible(f) for f in self.fields],
            "reason": visible(self.reason),
        }


@dataclass
class ImportResult:
    source: str
    kind: str  # "sqlite" or "json"
    schema_version: int
    tables: tuple[str, ...]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    conflicts: list[ConflictItem] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    recomputed: list[Recomputed] = field(default_factory=list)
    dry_run: bool = False
    prefer_incoming: bool = False
    run_id: str | None = None
    batches: int = 0

    def add(self, table: str, what: str, n: int = 1) -> None:
        self.counts.setdefault(table, dict.fromkeys(COUNT_KEYS, 0))[what] += n

    @property
    def changed(self) -> int:
        return sum(c["inserted"] + c["updated"] for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": visible(self.source),
            "kind": self.kind,
            "schema_version": self.schema_version,
            "dry_run": self.dry_run,
            "prefer_incoming": self.prefer_incoming,
            "counts": self.counts,
            "conflicts": [c.as_dict() for c in self.conflicts],
            "refused": [r.as_dict() for r in self.refused],
            "recomputed": [r.as_dict() for r in self.recomputed],
        }


# ---------------------------------------------------------------- sources
def _key(value: Any) -> Any:
    """A parent id as a dictionary key, whatever a file holds there."""
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    return ("unhashable", repr(value)[:80])


class Source:
    """Rows of another sma-log database, table by table.

    ``rows(table)`` is all a source must give; :meth:`grouped` and :meth:`orphans`
    (children by parent id, and children whose parent is not in the source) are built
    from it in memory unless a source has a faster way.
    """

    kind = ""
    path: Path
    schema_version: int
    note: dict[str, Any]
    #: (table, id) of records the source holds more than once (which one is right?)
    duplicates: frozenset[tuple[str, str]] = frozenset()

    def tables(self) -> tuple[str, ...]:
        raise NotImplementedError

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def count(self, table: str) -> int:
        """How many rows ``table`` has in the source (0 if it has none)."""
        return sum(1 for _ in self.rows(table)) if table in self.tables() else 0

    def _index(self, table: str, column: str) -> dict[str, list[dict[str, Any]]]:
        """Rows of ``table`` by their ``column`` when it is text (an id can only be text);
        the others under the key None (whose parent can never be found)."""
        cache = self.__dict__.setdefault("_indexes", {})
        if (table, column) not in cache:
            index: dict[Any, list[dict[str, Any]]] = {}
            if table in self.tables():
                for row in self.rows(table):
                    value = row.get(column)
                    index.setdefault(value if isinstance(value, str) else None, []).append(row)
            cache[(table, column)] = index
        return cache[(table, column)]

    def grouped(self, table: str, column: str, keys: Iterable[Any]) -> dict[Any, list[dict]]:
        """The rows of ``table`` whose ``column`` is one of ``keys`` (text ids), by key."""
        index = self._index(table, column)
        return {k: index[k] for k in keys if isinstance(k, str) and k in index}

    def orphans(self, table: str, column: str, parent: str) -> Iterator[dict[str, Any]]:
        """Rows of ``table`` whose ``column`` names no row of ``parent`` in the source
        (by a text id: a row without one is its own orphan)."""
        ids: set[str] = set()
        if parent in self.tables():
            ids = {r["id"] for r in self.rows(parent) if isinstance(r.get("id"), str)}
        for key, rows in self._index(table, column).items():
            if key is None or key not in ids:
                yield from rows

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
            # One snapshot for the whole import, whoever writes the source meanwhile.
            self.conn.execute("BEGIN")
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

    def _select(self, sql: str, args: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, tuple(args))
            cols = [c[0] for c in cur.description]
            for values in cur:
                yield dict(zip(cols, values, strict=True))
        except sqlite3.DatabaseError as exc:
            raise ImportRefused(
                f"{self.path}: the database is damaged or unreadable ({exc})"
            ) from None

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        return self._select(f"SELECT * FROM {table} ORDER BY id")

    def count(self, table: str) -> int:
        from .storage.db import row_count

        if table not in self.tables():
            return 0
        try:
            return row_count(self.conn, table)
        except sqlite3.DatabaseError:
            return 0  # the import itself reports a damaged file

    def grouped(self, table: str, column: str, keys: Iterable[Any]) -> dict[Any, list[dict]]:
        wanted = [k for k in dict.fromkeys(keys) if isinstance(k, str)]
        out: dict[Any, list[dict]] = {}
        if table not in self._tables:
            return out
        order = "seq" if table == "events" else "id"
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ", ".join("?" for _ in part)
            for row in self._select(
                f"SELECT * FROM {table} WHERE {column} IN ({marks}) ORDER BY {column}, {order}",
                part,
            ):
                out.setdefault(row[column], []).append(row)
        return out

    def orphans(self, table: str, column: str, parent: str) -> Iterator[dict[str, Any]]:
        if table not in self._tables:
            return iter(())
        if parent not in self._tables:
            return self.rows(table)
        return self._select(
            f"SELECT * FROM {table} WHERE typeof({column}) != 'text' OR {column} NOT IN "
            f"(SELECT id FROM {parent} WHERE typeof(id) = 'text') ORDER BY id"
        )

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
        except RecursionError:
            raise ImportRefused(f"{path}: nested too deeply, so not an sma-log export") from None
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
        if _masked(doc.get("deidentification")):
            raise ImportRefused(
                f"{path}: a de-identified export (record ids and times of day masked), "
                "which cannot be merged without inventing them: import an export made "
                "with --identifiers"
            )
        known = set(table_order())
        unknown = sorted(set(tables) - known, key=str)
        if unknown:
            raise ImportRefused(f"{path}: unknown table {visible(repr(unknown[0]))} in the export")
        self.schema_version = sv
        self.doc = doc
        self.note = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "exported_at": doc.get("exported_at"),
            "identifiers_included": doc.get("identifiers_included"),
        }
        self._check_rows(_declared_columns())

    def _check_rows(self, columns: dict[str, dict[str, tuple[str, bool]]]) -> None:
        """The document's shape: every table a list of objects with known columns.

        Values are judged record by record when merged (a bad value refuses its record,
        not the file: see the module docstring). Ids found more than once in a table
        are noted: every record holding one is refused.
        """
        seen: set[tuple[str, str]] = set()
        twice: set[tuple[str, str]] = set()
        for table, rows in self.doc["tables"].items():
            if table == "audit_log":
                continue  # never merged (see the module docstring)
            cols = columns.get(table, {})
            if not isinstance(rows, list):
                raise ImportRefused(f"{self.path}: table {table} is not a list of rows")
            for i, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise ImportRefused(f"{self.path}: {table} row {i + 1}: not an object")
                for name in row:
                    if name not in cols:
                        raise ImportRefused(
                            f"{self.path}: {table} row {i + 1}: unknown column "
                            f"{visible(repr(name))[:60]}"
                        )
                rid = row.get("id")
                if isinstance(rid, str):
                    (twice if (table, rid) in seen else seen).add((table, rid))
        self.duplicates = frozenset(twice)

    def tables(self) -> tuple[str, ...]:
        from .storage.schema import CLINICAL_TABLES

        return tuple(t for t in CLINICAL_TABLES if t in self.doc["tables"])

    def count(self, table: str) -> int:
        rows = self.doc["tables"].get(table) if table in self.tables() else None
        return len(rows) if isinstance(rows, list) else 0

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        rows = self.doc["tables"].get(table, [])
        if table == "procedures" and self.schema_version < 3:
            # Schema 3 keeps procedure and puncture minutes to the whole second (what
            # migration 3 did to this file's own rows); recomputed from the events anyway.
            from .storage.schema import whole_second_times

            for row in rows:
                if "procedure_min" in row or "puncture_min" in row:
                    with contextlib.suppress(ArithmeticError, TypeError, ValueError):
                        times = whole_second_times(row)  # an odd value: judged as it is
                        row = {**row, **{k: v for k, v in times.items() if k in row}}
                yield row
            return
        if table == "followups" and self.schema_version < 4:
            # What migration 4 judged of this file's own follow-ups, by the same rule:
            # when each was taken, early or not, "another event" when one is described.
            from .storage.schema import followup_v4_values

            procs = self.doc["tables"].get("procedures", [])
            ended = {_key(p.get("id")): p.get("ended_at") for p in procs}
            for row in rows:
                if "early" not in row:
                    with contextlib.suppress(ArithmeticError, TypeError, ValueError):
                        values = followup_v4_values(  # an odd value: judged as it is
                            row.get("kind"),
                            row.get("state"),
                            row.get("completed_at"),
                            ended.get(_key(row.get("procedure_id"))),
                            row.get("other_event"),
                        )
                        row = {**values, **row}
                yield row
            return
        yield from rows


def _masked(manifest: Any) -> bool:
    """Whether a JSON document's ``deidentification`` header says it masked record ids
    or instants (a de-identified export since issue 11). An older de-identified
    document, with exact instants and complete ids and only its free text removed, is
    still merged: a removed field is unknown, never a difference."""
    if not isinstance(manifest, dict) or manifest.get("applied") is not True:
        return False
    return bool(manifest.get("ids_masked") or manifest.get("instants_as_dates"))


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


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


# ---------------------------------------------------------------- units of work
@dataclass
class _PatientUnit:
    raw: dict[str, Any] | None  # None: identifiers whose patient is not in the file
    identifiers: list[dict[str, Any]]


@dataclass
class _FamilyUnit:
    raw: dict[str, Any]
    family: records.Family


@dataclass
class _OrphanUnit:
    """Children whose parent is not in the file (it may be here)."""

    parent_table: str  # "procedures" or "followups"
    parent_id: Any
    rows: dict[str, list[dict[str, Any]]]  # table -> raw rows


@dataclass
class _SimpleUnit:
    """One row of a table whose parent is merged before it (issue 14: a patient's lab
    result, a procedure's pre-dose time-out): merged alone, after every family."""

    table: str
    parent_column: str
    parent_table: str
    raw: dict[str, Any]


#: Tables merged row by row after the families: (table, parent column, parent table).
SIMPLE_TABLES: tuple[tuple[str, str, str], ...] = (
    ("labs", "patient_id", "patients"),
    ("timeouts", "procedure_id", "procedures"),
)


def _units(source: Source, progress: Callable[[str], Any] | None) -> Iterator[Any]:
    """Everything in the source, as units that merge whole, parents first."""
    tables = set(source.tables())
    if "patients" in tables:
        if progress is not None:
            progress("patients")
        for raw in source.rows("patients"):
            ids = source.grouped("identifiers", "patient_id", [raw.get("id")])
            yield _PatientUnit(raw, next(iter(ids.values()), []))
    if "identifiers" in tables:
        by_parent: dict[Any, list[dict[str, Any]]] = {}
        for row in source.orphans("identifiers", "patient_id", "patients"):
            by_parent.setdefault(_key(row.get("patient_id")), []).append(row)
        for rows in by_parent.values():
            yield _PatientUnit(None, rows)
    if "procedures" in tables:
        if progress is not None:
            progress("procedures")
        chunk: list[dict[str, Any]] = []
        procs = source.rows("procedures")
        while True:
            chunk = []
            for raw in procs:
                chunk.append(raw)
                if len(chunk) >= CHUNK:
                    break
            if not chunk:
                break
            yield from _families(source, chunk, tables)
    # Children whose procedure (or follow-up) is not in the file.
    by_proc: dict[Any, dict[str, list[dict[str, Any]]]] = {}
    for table in ("events", "attempts", "followups"):
        if table in tables:
            for row in source.orphans(table, "procedure_id", "procedures"):
                key = _key(row.get("procedure_id"))
                by_proc.setdefault(key, {}).setdefault(table, []).append(row)
    for key, family in by_proc.items():
        fus = [f["id"] for f in family.get("followups", []) if isinstance(f.get("id"), str)]
        calls = source.grouped("contact_attempts", "followup_id", fus) if fus else {}
        family["contact_attempts"] = [c for f in fus for c in calls.get(f, [])]
        yield _OrphanUnit("procedures", key, family)
    if "contact_attempts" in tables:
        by_fu: dict[Any, list[dict[str, Any]]] = {}
        for row in source.orphans("contact_attempts", "followup_id", "followups"):
            by_fu.setdefault(_key(row.get("followup_id")), []).append(row)
        for key, rows_ in by_fu.items():
            yield _OrphanUnit("followups", key, {"contact_attempts": rows_})
    for table, column, parent in SIMPLE_TABLES:
        if table in tables:
            if progress is not None:
                progress(table)
            for raw in source.rows(table):
                yield _SimpleUnit(table, column, parent, raw)


def _families(source: Source, chunk: list[dict[str, Any]], tables: set[str]) -> Iterator[Any]:
    ids = [raw.get("id") for raw in chunk]
    kids = {
        t: source.grouped(t, "procedure_id", ids) if t in tables else {}
        for t in ("events", "attempts", "followups")
    }
    fu_ids = [f.get("id") for rows in kids["followups"].values() for f in rows]
    calls = (
        source.grouped("contact_attempts", "followup_id", fu_ids)
        if "contact_attempts" in tables and fu_ids
        else {}
    )
    for raw in chunk:
        pid = raw.get("id")
        pid = pid if isinstance(pid, str) else None  # no text id: no children of it
        followups = kids["followups"].get(pid, []) if pid is not None else []
        contacts = [
            c for f in followups if isinstance(f.get("id"), str) for c in calls.get(f["id"], [])
        ]
        family = records.check_family(
            raw,
            kids["events"].get(pid, []) if pid is not None else [],
            kids["attempts"].get(pid, []) if pid is not None else [],
            followups,
            contacts,
        )
        yield _FamilyUnit(raw, family)


# ---------------------------------------------------------------- merging
class _FamilyConflict(Exception):
    """Raised inside a family's savepoint: the family is left as it is here."""

    def __init__(self, table: str, rid: str, fields: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.item = ConflictItem(table, rid, fields, reason)


class _Tally:
    """What one unit did, added to the result only if the unit is kept."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.conflicts: list[ConflictItem] = []

    def add(self, table: str, what: str, n: int = 1) -> None:
        self.counts[(table, what)] = self.counts.get((table, what), 0) + n


class _Merger:
    def __init__(
        self,
        store: Store,
        source: Source,
        result: ImportResult,
        prefer: bool,
        label: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        from .domain.clock import to_text

        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.source = source
        self.label = label  # what the provenance names instead of the source's path
        self.details = dict(details or {})
        self.result = result
        self.prefer = prefer
        self.at = to_text(store.now())  # one instant on every audit row of this import
        self.refused_ids: dict[str, set[Any]] = {"patients": set(), "procedures": set()}
        self.blocked: dict[str, set[str]] = {t: set() for t in DERIVED_PARENTS}
        self._columns: dict[str, list[str]] = {}
        self.known: set[tuple[str, Any]] = set()  # parents seen here (ids as the file has them)
        self.started = False

    # ------------------------------------------------------------ helpers
    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            self._columns[table] = [
                r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()
            ]
        return self._columns[table]

    def here(self, table: str, rid: Any) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (rid,))
        values = cur.fetchone()
        if values is None:
            return None
        return dict(zip([c[0] for c in cur.description], values, strict=True))

    def here_many(self, table: str, column: str, value: Any) -> dict[str, dict[str, Any]]:
        cur = self.conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (value,))
        cols = [c[0] for c in cur.description]
        return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}

    def exists(self, table: str, rid: Any) -> bool:
        return (
            self.conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (rid,)).fetchone() is not None
        )

    def audit(self, action: str, table: str, rid: str, name: str, old: Any, new: Any) -> None:
        self.store._audit(action, table, rid, name, old, new, at=self.at)

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        cols = self.columns(table)
        full = {c: row[c] for c in cols if c in row}
        self.conn.execute(
            f"INSERT INTO {table}({', '.join(full)}) VALUES ({', '.join('?' for _ in full)})",
            tuple(full.values()),
        )
        self.audit(
            "insert", table, full["id"], "*", None, {k: v for k, v in full.items() if k != "id"}
        )

    def insert_many(self, table: str, rows: list[dict[str, Any]]) -> None:
        """``insert`` for many rows at once (rows of one procedure: the same columns)."""
        from .storage.auditlog import CACHE_TABLES, insert_kept

        by_cols: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        cols = self.columns(table)
        for row in rows:
            by_cols.setdefault(tuple(c for c in cols if c in row), []).append(row)
        for names, group in by_cols.items():
            self.conn.executemany(
                f"INSERT INTO {table}({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                [tuple(r[c] for c in names) for r in group],
            )
            # as Store._audit writes an insert: no copy of the row, what replay cannot give
            if table in CACHE_TABLES:
                continue
            tx = self.store._audit_tx(self.at)
            self.conn.executemany(
                "INSERT INTO audit_log(tx, table_name, record_id, field, old_value, kept) "
                "VALUES (?, ?, ?, '*', NULL, ?)",
                [(tx, table, r["id"], insert_kept(table, {c: r[c] for c in names})) for r in group],
            )

    def update(
        self,
        table: str,
        rid: str,
        row: Mapping[str, Any],
        here: Mapping[str, Any],
        names: Iterable[str],
        audit: bool = True,
    ) -> None:
        names = tuple(names)
        if not names:
            return
        sets = ", ".join(f"{k} = ?" for k in names)
        self.conn.execute(
            f"UPDATE {table} SET {sets} WHERE id = ?", (*(row[k] for k in names), rid)
        )
        if audit:
            for k in names:
                self.audit("update", table, rid, k, here.get(k), row[k])

    @staticmethod
    def diff(row: Mapping[str, Any], here: Mapping[str, Any], table: str = "") -> tuple[str, ...]:
        """Columns of ``row`` that differ here. A procedure's or follow-up's derived
        columns are not compared: they follow the events and calls stored here (a record
        is the same record whatever subset of its children a file holds)."""
        skip = _COMPARE_SKIP.get(table, ())
        return tuple(
            k for k in row if k != "id" and k not in skip and not same(here.get(k), row[k])
        )

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self.conn.execute("SAVEPOINT import_unit")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO import_unit")
            self.conn.execute("RELEASE import_unit")
            raise
        self.conn.execute("RELEASE import_unit")

    def twice(self, table: str, rows: Iterable[Mapping[str, Any]]) -> list[Refusal]:
        """Refusals for rows whose id the source holds more than once."""
        dup = self.source.duplicates
        if not dup:
            return []
        return [
            Refusal(table, r["id"], "id", "in the file more than once (which one is right?)")
            for r in rows
            if (table, r.get("id")) in dup
        ]

    def refuse(self, items: Iterable[Refusal]) -> None:
        for r in items:
            self.result.refused.append(r)
            self.result.add(r.table, "refused")

    def keep(self, tally: _Tally) -> None:
        for (table, what), n in tally.counts.items():
            self.result.add(table, what, n)
        for item in tally.conflicts:
            self.result.conflicts.append(item)
            self.result.add(item.table, "conflicts")
            if item.table in self.blocked:
                self.blocked[item.table].add(item.id)

    # ------------------------------------------------------------ rules
    def clash(self, table: str, row: Mapping[str, Any]) -> tuple[tuple[str, ...], str] | None:
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
        if table == "timeouts" and row.get("procedure_id"):
            o = other(
                "SELECT id FROM timeouts WHERE procedure_id = ? AND id != ?",
                row["procedure_id"],
            )
            if o:
                return ("procedure_id",), f"its procedure already has a time-out here ({o})"
        if table == "followups" and row.get("kind"):
            o = other(
                "SELECT id FROM followups WHERE procedure_id = ? AND kind = ? AND id != ?",
                row.get("procedure_id"),
                row["kind"],
            )
            if o:
                return ("kind",), f"its procedure already has a {row['kind']} follow-up ({o})"
        return None

    def missing_parent(
        self, table: str, row: Mapping[str, Any], col: str, parent: str
    ) -> str | None:
        pid = row.get(col)
        if pid in self.blocked.get(parent, ()):
            return f"held back: its {parent[:-1]} {pid} is in conflict"
        if (parent, pid) in self.known:
            return None
        if not self.exists(parent, pid):
            return f"its {parent[:-1]} {pid} is not in this database"
        self.known.add((parent, pid))  # records are never deleted: it stays
        return None

    # ------------------------------------------------------------ one record
    def record(
        self, tally: _Tally, table: str, row: Mapping[str, Any], here: Mapping[str, Any] | None
    ) -> str:
        """Merge one clean row: inserted / updated / skipped / conflicts (in ``tally``)."""
        rid = row["id"]
        if here is None:
            clash = self.clash(table, row)
            if clash:
                tally.conflicts.append(ConflictItem(table, rid, *clash))
                return "conflicts"
            try:
                with self.savepoint():
                    self.insert(table, row)
            except sqlite3.IntegrityError as exc:
                tally.conflicts.append(
                    ConflictItem(table, rid, (), f"cannot be added here ({exc})")
                )
                return "conflicts"
            tally.add(table, "inserted")
            return "inserted"
        diff = self.diff(row, here, table)
        if not diff:
            tally.add(table, "skipped")
            return "skipped"
        if not self.prefer:
            tally.conflicts.append(
                ConflictItem(table, rid, diff, "differs here (kept this database's values)")
            )
            return "conflicts"
        clash = self.clash(table, row)
        if clash:
            tally.conflicts.append(ConflictItem(table, rid, diff, clash[1] + "; not overwritten"))
            return "conflicts"
        try:
            with self.savepoint():
                self.update(table, rid, row, here, diff)
        except sqlite3.IntegrityError as exc:
            tally.conflicts.append(
                ConflictItem(table, rid, diff, f"cannot be overwritten here ({exc})")
            )
            return "conflicts"
        tally.add(table, "updated")
        return "updated"

    # ------------------------------------------------------------ patients
    def merge_patient(self, unit: _PatientUnit) -> None:
        tally = _Tally()
        refused: list[Refusal] = []
        pid: Any = None
        if unit.raw is not None:
            row, problems = records.check_simple("patients", unit.raw)
            pid = unit.raw.get("id")
            problems += self.twice("patients", [unit.raw])
            if problems:
                self.refused_ids["patients"].add(_key(pid))
                refused += problems
                why = f"left out with its patient {id_text(pid)}"
                refused += [
                    Refusal("identifiers", id_text(i.get("id")), "", why, cascade=True)
                    for i in unit.identifiers
                ]
                self.refuse(refused)
                return
            self.record(tally, "patients", row, self.here("patients", row["id"]))
        for raw in unit.identifiers:
            row, problems = records.check_simple("identifiers", raw)
            problems += self.twice("identifiers", [raw])
            if problems:
                refused += problems
                continue
            if _key(row.get("patient_id")) in self.refused_ids["patients"]:
                refused.append(
                    Refusal(
                        "identifiers",
                        row["id"],
                        "patient_id",
                        "left out with its refused patient",
                        cascade=True,
                    )
                )
                continue
            here = self.here("identifiers", row["id"])
            if here is None:
                missing = self.missing_parent("identifiers", row, "patient_id", "patients")
                if missing:
                    tally.conflicts.append(
                        ConflictItem("identifiers", row["id"], ("patient_id",), missing)
                    )
                    continue
            self.record(tally, "identifiers", row, here)
        self.refuse(refused)
        self.keep(tally)

    # ------------------------------------------------------------ procedures
    def merge_family(self, unit: _FamilyUnit) -> None:
        fam = unit.family
        self.result.recomputed += fam.recomputed
        if fam.procedure is None:
            self.refused_ids["procedures"].add(_key(unit.raw.get("id")))
            self.refuse(fam.refused)
            return
        proc = fam.procedure
        pid = proc["id"]
        if _key(proc.get("patient_id")) in self.refused_ids["patients"]:
            why = f"left out with its refused patient {id_text(proc.get('patient_id'))}"
            self.refused_ids["procedures"].add(pid)
            self.refuse(fam.refused)
            self.refuse(self._everything(fam, why))
            return
        self.refuse(fam.refused)  # follow-ups or calls refused on their own
        twice = [
            r
            for table, rows in [("procedures", [proc]), *self._children(fam)]
            for r in self.twice(table, rows)
        ]
        if twice:
            why = f"left out with its procedure {pid} (a record of it is in the file twice)"
            self.refused_ids["procedures"].add(pid)
            self.refuse(twice)
            named = {(r.table, r.id) for r in twice}
            self.refuse([r for r in self._everything(fam, why) if (r.table, r.id) not in named])
            return
        tally = _Tally()
        try:
            with self.savepoint():
                self._merge_family(tally, fam)
        except _FamilyConflict as exc:
            tally = self._held_back(fam, exc.item)
        self.keep(tally)

    def _held_back(self, fam: records.Family, item: ConflictItem) -> _Tally:
        """After a family was rolled back: ``item``, and every other record of it either
        identical here (skipped) or held back with it."""
        tally = _Tally()
        tally.conflicts.append(item)
        assert fam.procedure is not None
        why = f"held back: {item.table[:-1]} {item.id} is in conflict"
        for table, rows in [("procedures", [fam.procedure]), *self._children(fam)]:
            for row in rows:
                if (table, row["id"]) == (item.table, item.id):
                    continue
                old = self.here(table, row["id"])
                if old is not None and not self.diff(row, old, table):
                    tally.add(table, "skipped")
                else:
                    tally.conflicts.append(ConflictItem(table, row["id"], (), why))
        return tally

    @staticmethod
    def _children(fam: records.Family) -> list[tuple[str, list[dict[str, Any]]]]:
        return [
            ("events", fam.events),
            ("attempts", fam.attempts),
            ("followups", fam.followups),
            ("contact_attempts", fam.contacts),
        ]

    def _everything(self, fam: records.Family, why: str) -> list[Refusal]:
        assert fam.procedure is not None
        out = [Refusal("procedures", fam.id, "patient_id", why, cascade=True)]
        for table, rows in self._children(fam):
            out += [Refusal(table, r["id"], "", why, cascade=True) for r in rows]
        return out

    def _merge_family(self, tally: _Tally, fam: records.Family) -> None:
        """Inside the family's savepoint; raises _FamilyConflict to leave it as it is here."""
        proc = fam.procedure
        assert proc is not None
        pid = proc["id"]
        here = self.here("procedures", pid)
        if here is None:  # a new procedure: in whole, or not at all
            why = self.missing_parent("procedures", proc, "patient_id", "patients")
            if why:
                raise _FamilyConflict("procedures", pid, ("patient_id",), why)
            clash = self.clash("procedures", proc)
            if clash:
                raise _FamilyConflict("procedures", pid, *clash)
            try:
                for table, rows in [("procedures", [proc]), *self._children(fam)]:
                    self.insert_many(table, rows)
                    tally.add(table, "inserted", len(rows))
            except sqlite3.IntegrityError as exc:
                raise _FamilyConflict(
                    "procedures", pid, (), f"cannot be added here ({exc})"
                ) from None
            return
        outcome = self.record(tally, "procedures", proc, here)
        if outcome == "conflicts":
            self.blocked["procedures"].add(pid)
            for table, rows in self._children(fam):
                have = (
                    self.here_many(table, "procedure_id", pid)
                    if table != "contact_attempts"
                    else {}
                )
                for row in rows:
                    old = (
                        have.get(row["id"])
                        if table != "contact_attempts"
                        else self.here(table, row["id"])
                    )
                    if old is not None and not self.diff(row, old, table):
                        tally.add(table, "skipped")
                    else:
                        tally.conflicts.append(
                            ConflictItem(
                                table,
                                row["id"],
                                (),
                                f"held back: its procedure {pid} is in conflict",
                            )
                        )
            return
        changed = outcome == "updated"
        have = self.here_many("events", "procedure_id", pid)
        for row in fam.events:
            got = self.record(tally, "events", row, have.get(row["id"]))
            if got == "conflicts":
                item = tally.conflicts.pop()
                raise _FamilyConflict(item.table, item.id, item.fields, item.reason)
            changed |= got in ("inserted", "updated")
        changed |= self._merge_followups(tally, fam)
        have_att = self.here_many("attempts", "procedure_id", pid)
        if changed or any(a["id"] not in have_att for a in fam.attempts):
            self._rebuild(tally, pid)  # attempt rows follow the events here
        else:
            tally.add("attempts", "skipped", len(fam.attempts))

    def _merge_followups(self, tally: _Tally, fam: records.Family) -> bool:
        """Follow-ups and their calls; True if anything was written."""
        changed = False
        calls: dict[str, list[dict[str, Any]]] = {}
        for c in fam.contacts:
            calls.setdefault(c["followup_id"], []).append(c)
        for fu in fam.followups:
            here = self.here("followups", fu["id"])
            got = self.record(tally, "followups", fu, here)
            mine = calls.get(fu["id"], [])
            if got == "conflicts":
                for c in mine:
                    old = self.here("contact_attempts", c["id"])
                    if old is not None and not self.diff(c, old):
                        tally.add("contact_attempts", "skipped")
                    else:
                        tally.conflicts.append(
                            ConflictItem(
                                "contact_attempts",
                                c["id"],
                                (),
                                f"held back: its follow-up {fu['id']} is in conflict",
                            )
                        )
                continue
            changed |= got in ("inserted", "updated")
            for c in mine:
                old = self.here("contact_attempts", c["id"]) if here is not None else None
                got_c = self.record(tally, "contact_attempts", c, old)
                changed |= got_c in ("inserted", "updated")
        return changed

    def _stored_family(
        self, pid: str
    ) -> tuple[dict[str, Any], list[Any], list[Any], list[Any], list[Any]]:
        proc = self.here("procedures", pid)
        assert proc is not None
        events = sorted(
            self.here_many("events", "procedure_id", pid).values(), key=lambda r: r["seq"] or 0
        )
        attempts = list(self.here_many("attempts", "procedure_id", pid).values())
        fus = list(self.here_many("followups", "procedure_id", pid).values())
        calls = [
            c
            for f in fus
            for c in self.here_many("contact_attempts", "followup_id", f["id"]).values()
        ]
        return proc, events, attempts, fus, calls

    def _rebuild(self, tally: _Tally, pid: str) -> None:
        """Check a procedure as now stored; write its derived columns and attempts rows
        from its events (as the Store does after an event), or raise _FamilyConflict."""
        proc, events, attempts, fus, calls = self._stored_family(pid)
        fam = records.check_family(proc, events, attempts, fus, calls)
        if not fam.ok:
            first = fam.refused[0]
            raise _FamilyConflict(
                "procedures",
                pid,
                (),
                "left as it is here: merged with what is here it would not add up "
                f"({first.line()})",
            )
        assert fam.procedure is not None
        names = [
            n for n in records.DERIVED["procedures"] if not same(proc.get(n), fam.procedure[n])
        ]
        self.update("procedures", pid, fam.procedure, proc, names, audit=False)
        have = {a["id"]: a for a in attempts}
        for att in fam.attempts:
            old = have.pop(att["id"], None)
            if old is None:
                self.insert("attempts", att)
                tally.add("attempts", "inserted")
                continue
            d = self.diff(att, old)
            self.update("attempts", att["id"], att, old, d)
            tally.add("attempts", "updated" if d else "skipped")
        for stray in have:  # an attempts row of no attempt event
            raise _FamilyConflict(
                "procedures",
                pid,
                (),
                f"left as it is here: attempts row {stray} is not on its timeline",
            )
        by_id = {f["id"]: f for f in fus}
        for fu in fam.followups:
            old = by_id[fu["id"]]
            self.update(
                "followups",
                fu["id"],
                fu,
                old,
                self.diff({k: fu[k] for k in records.DERIVED["followups"]} | {"id": fu["id"]}, old),
            )

    def merge_orphans(self, unit: _OrphanUnit) -> None:
        """Children whose parent is not in the file: merged into their parent here."""
        tally = _Tally()
        refused: list[Refusal] = []
        clean: dict[str, list[dict[str, Any]]] = {}
        for table, rows in unit.rows.items():
            for raw in rows:
                row, problems = records.clean_row(table, raw)
                problems += self.twice(table, [raw])
                if problems:
                    refused += problems
                else:
                    clean.setdefault(table, []).append(row)
        parent = id_text(unit.parent_id)
        what = unit.parent_table[:-1]
        if _key(unit.parent_id) in self.refused_ids.get(unit.parent_table, set()):
            refused += [
                Refusal(t, r["id"], "", f"left out with its {what} {parent}", cascade=True)
                for t, rows in clean.items()
                for r in rows
            ]
            self.refuse(refused)
            return
        if refused:  # one bad child: its siblings would not add up without it
            why = f"left out with a refused record of its {what} {parent}"
            refused += [
                Refusal(t, r["id"], "", why, cascade=True)
                for t, rows in clean.items()
                for r in rows
            ]
            self.refuse(refused)
            return
        pid: Any = unit.parent_id
        if unit.parent_table == "followups":
            fu = self.here("followups", unit.parent_id) if isinstance(unit.parent_id, str) else None
            pid = fu["procedure_id"] if fu else None
        if not isinstance(pid, str) or self.here("procedures", pid) is None:
            for table, rows in clean.items():
                for r in rows:
                    tally.conflicts.append(
                        ConflictItem(
                            table, r["id"], (), f"its {what} {parent} is not in this database"
                        )
                    )
            self.keep(tally)
            return
        try:
            with self.savepoint():
                changed = False
                if pid in self.blocked["procedures"]:
                    raise _FamilyConflict(
                        "procedures", pid, (), "in conflict: its children held back"
                    )
                for table in ("events", "followups", "contact_attempts"):
                    for row in clean.get(table, []):
                        old = self.here(table, row["id"])
                        got = self.record(tally, table, row, old)
                        if got == "conflicts":
                            item = tally.conflicts.pop()
                            raise _FamilyConflict(item.table, item.id, item.fields, item.reason)
                        changed |= got in ("inserted", "updated")
                if changed or clean.get("attempts"):
                    self._rebuild(tally, pid)
        except _FamilyConflict as exc:
            tally = _Tally()
            for table, rows in clean.items():
                for r in rows:
                    tally.conflicts.append(
                        ConflictItem(table, r["id"], (), f"held back: {exc.item.line()}")
                    )
        self.keep(tally)

    # ------------------------------------------------------------ labs, time-outs
    def merge_simple(self, unit: _SimpleUnit) -> None:
        """A lab result or a time-out: judged by the domain's rules, its parent here."""
        tally = _Tally()
        table = unit.table
        row, problems = records.check_simple(table, unit.raw)
        problems += self.twice(table, [unit.raw])
        if problems:
            self.refuse(problems)
            return
        parent = row.get(unit.parent_column)
        if _key(parent) in self.refused_ids.get(unit.parent_table, set()):
            self.refuse(
                [
                    Refusal(
                        table,
                        row["id"],
                        unit.parent_column,
                        f"left out with its refused {unit.parent_table[:-1]}",
                        cascade=True,
                    )
                ]
            )
            return
        here = self.here(table, row["id"])
        if here is None:
            missing = self.missing_parent(table, row, unit.parent_column, unit.parent_table)
            if missing:
                tally.conflicts.append(
                    ConflictItem(table, row["id"], (unit.parent_column,), missing)
                )
                self.keep(tally)
                return
        self.record(tally, table, row, here)
        self.keep(tally)

    def merge(self, unit: Any) -> None:
        if isinstance(unit, _PatientUnit):
            self.merge_patient(unit)
        elif isinstance(unit, _FamilyUnit):
            self.merge_family(unit)
        elif isinstance(unit, _SimpleUnit):
            self.merge_simple(unit)
        else:
            self.merge_orphans(unit)

    # ------------------------------------------------------------ provenance
    def note(self) -> dict[str, Any]:
        src = self.source
        return {
            # a name that is not UTF-8 is kept readable (\xe9), not refused
            "source": self.label
            if self.label is not None
            else os.fsencode(Path(src.path).resolve()).decode("utf-8", "backslashreplace"),
            "kind": src.kind,
            "schema_version": src.schema_version,
            **src.note,
            **self.details,
            "prefer_incoming": self.prefer,
        }

    def provenance(self, final: bool) -> None:
        from .domain.ids import new_id

        if not self.started and self.result.changed:
            self.started = True
            self.result.run_id = new_id()
            self.store._audit(
                "import", "import", self.result.run_id, "source", None, self.note(), at=self.at
            )
        if final and self.started:
            assert self.result.run_id is not None  # given when the run started
            result = {
                "counts": self.result.counts,
                "conflicts": len(self.result.conflicts),
                "refused": len(self.result.refused),
                "recomputed": len(self.result.recomputed),
            }
            self.store._audit(
                "import", "import", self.result.run_id, "result", None, result, at=self.at
            )

    # ------------------------------------------------------------ the run
    def run(
        self,
        units: Iterator[Any],
        budget: float = TX_BUDGET,
        gap: float = TX_GAP,
        pause: Callable[[float], Any] = time.sleep,
    ) -> None:
        pending: deque[Any] = deque()
        done = False
        first = True
        while True:
            t0 = time.monotonic()
            # Outside any transaction: read and check what comes next (for at least `gap`).
            while not done and len(pending) < MAX_PENDING:
                if len(pending) >= MIN_PENDING and time.monotonic() - t0 >= gap:
                    break
                try:
                    pending.append(next(units))
                except StopIteration:
                    done = True
            if not first:  # the database left alone for `gap` seconds at least
                pause(max(0.0, gap - (time.monotonic() - t0)))
            first = False
            with self.store.write():
                t1 = time.monotonic()
                while pending:
                    self.merge(pending.popleft())
                    self.provenance(final=False)
                    if time.monotonic() - t1 >= budget:
                        break
                if done and not pending:
                    self.provenance(final=True)
            self.result.batches += 1
            if done and not pending:
                return


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    *,
    prefer_incoming: bool = False,
    dry_run: bool = False,
    source: Source | None = None,
    source_label: str | None = None,
    source_details: Mapping[str, Any] | None = None,
    progress: Callable[[str], Any] | None = None,
    budget: float = TX_BUDGET,
    gap: float = TX_GAP,
    pause: Callable[[float], Any] = time.sleep,
) -> ImportResult:
    """Merge the file at ``path`` into ``store``'s database (see the module docstring).

    Raises :class:`ImportRefused` for a file that cannot be imported (nothing changed).
    ``budget``/``gap``: the longest write transaction and the shortest pause between
    two (seconds); ``pause(seconds)`` is called between two transactions, with no
    transaction open, for what remains of the gap (``time.sleep``).
    ``source_label``: the source as the result and the audit log's provenance name it,
    instead of the file's path (``sma-log pull`` imports a temporary restored copy: it
    names the device and its replica); ``source_details``: more keys of that note.
    """
    src = source or open_source(path, store.path)
    try:
        if dry_run:
            return _dry_run(store, src, prefer_incoming, progress, source_label, source_details)
        result = ImportResult(
            source=source_label if source_label is not None else str(src.path),
            kind=src.kind,
            schema_version=src.schema_version,
            tables=src.tables(),
            prefer_incoming=prefer_incoming,
        )
        merger = _Merger(store, src, result, prefer_incoming, source_label, source_details)
        merger.run(_units(src, progress), budget, gap, pause)
        for table in result.tables:
            result.counts.setdefault(table, dict.fromkeys(COUNT_KEYS, 0))
        result.counts = {t: result.counts[t] for t in _order(result.counts)}
        return result
    finally:
        src.close()


def _order(counts: Mapping[str, Any]) -> list[str]:
    from .storage.schema import CLINICAL_TABLES

    return [t for t in CLINICAL_TABLES if t in counts] + [
        t for t in counts if t not in CLINICAL_TABLES
    ]


def _dry_run(
    store: Store,
    src: Source,
    prefer: bool,
    progress: Callable[[str], Any] | None,
    label: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> ImportResult:
    """The import into a private copy of ``store``'s database, thrown away."""
    from .storage.store import Store

    folder = tempfile.mkdtemp(prefix="sma-log-dry-run-")
    try:
        copy = Path(folder) / "copy.db"
        dst = sqlite3.connect(copy)
        try:
            store.conn.backup(dst)
        finally:
            dst.close()
        with Store.open(copy, store.user, clock=store.clock) as scratch:
            scratch.windows = store.windows
            result = ImportResult(
                source=label if label is not None else str(src.path),
                kind=src.kind,
                schema_version=src.schema_version,
                tables=src.tables(),
                prefer_incoming=prefer,
                dry_run=True,
            )
            # nobody else writes to the copy: no pause, long transactions
            _Merger(scratch, src, result, prefer, label, details).run(
                _units(src, progress), 10.0, 0.0
            )
        for table in result.tables:
            result.counts.setdefault(table, dict.fromkeys(COUNT_KEYS, 0))
        result.counts = {t: result.counts[t] for t in _order(result.counts)}
        result.run_id = None
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- a lab export (issue 14)
@dataclass
class LabImport:
    """What ``sma-log labs import`` did: rows added, rows already here, rows refused
    (line number in the file, one sentence)."""

    added: int = 0
    already: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


#: Column names a lab export may use, for each field (case and spaces ignored).
LAB_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "study_code": ("study_code", "study code", "patient", "code"),
    "test": ("test", "analyte"),
    "value": ("value", "result"),
    "unit": ("unit", "units"),
    "taken_on": ("taken_on", "date", "collected", "collection_date", "taken"),
}


def import_lab_csv(
    store: Store,
    path: str | os.PathLike[str],
    rules: Any = None,
    tz: str = "UTC",
    *,
    dry_run: bool = False,
) -> LabImport:
    """Add the results of a lab export (CSV with a header: study code, test, value,
    unit (optional), date) through the same rules as a result typed at the bedside
    (:func:`sma_log.domain.predose.parse_lab`). Each row is added alone; a bad row is
    refused with its line number and why; a row identical to a stored result (same
    patient, test, date and value) is not added twice. Raises :class:`ImportRefused`
    when the file cannot be read as such a CSV (nothing added)."""
    import csv

    from .domain import fields, predose
    from .storage import predose as stored

    rules = rules or predose.Rules()
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ImportRefused(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ImportRefused(f"{path}: not UTF-8 text (save the lab export as CSV UTF-8)") from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text.splitlines(), dialect)
    header = next(reader, None)
    if not header:
        raise ImportRefused(f"{path}: empty file (a header line is needed)")
    names = [h.strip().lower().replace("-", "_") for h in header]
    where: dict[str, int] = {}
    for key, spellings in LAB_CSV_COLUMNS.items():
        for i, name in enumerate(names):
            if name in spellings or name.replace("_", " ") in spellings:
                where[key] = i
                break
    lacking = [k for k in ("study_code", "test", "value", "taken_on") if k not in where]
    if lacking:
        raise ImportRefused(
            f"{path}: no column for {', '.join(lacking)} in the header "
            f"(expected e.g. study_code,test,value,unit,date)"
        )
    result = LabImport()
    patients: dict[str, Any] = {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue

        def cell(key: str, cells: list[str] = cells) -> str | None:
            i = where.get(key)
            return cells[i].strip() if i is not None and i < len(cells) else None

        code = cell("study_code") or ""
        if code.upper() not in patients:
            patients[code.upper()] = store.find_patient(code) if code else None
        patient = patients[code.upper()]
        if patient is None:
            result.refused.append((line, f"no patient with study code {visible(code)!r}"))
            continue
        try:
            test, value, _, day = predose.parse_lab(
                cell("test"),
                cell("value"),
                cell("taken_on"),
                unit=cell("unit") or None,
                today=_dt_date(store, tz),
                rules=rules,
            )
        except fields.ValidationError as exc:
            result.refused.append((line, visible(exc.message)))
            continue
        if stored.lab_exists(store, patient["id"], test, day, value):
            result.already += 1
            continue
        if not dry_run:
            stored.add_lab(
                store, patient["id"], test, value, day, source="import", rules=rules, tz=tz
            )
        result.added += 1
    return result


def _dt_date(store: Store, tz: str) -> Any:
    import datetime as _dt

    return _dt.date.fromisoformat(store.now().in_timezone(tz).date().isoformat())
