"""What every export format shares: the de-identification rules, dates, private files.

De-identification (the default; ``--identifiers`` turns all of it off):

* the ``identifiers`` table (name, record number, birth date) is left out;
* free text is left out: every field marked ``identifying`` in the field specs (notes,
  the other adverse event) plus :data:`FREE_TEXT` (failure reason, closed reason,
  contact-attempt notes) and the text of ``note`` events;
* instants lose their time of day: in CSV and REDCap files every instant becomes the
  calendar date in the site's time zone, and what the analysis needs from the times
  is exported as elapsed minutes (``procedure_min``, ``puncture_min``,
  ``minutes_from_start``); the SQLite copy moves each procedure as a block (see
  :mod:`sma_log.export.sqlitecopy`);
* record ids are ULIDs whose first 10 characters encode their creation time to the
  millisecond: that part is replaced by zeros (:func:`mask_id`), so ids still join
  across files (and are the same from one export to the next) but carry no time;
* the machine's boot id and boot-clock anchor of the live timer are left out;
* study codes, staff names (operator, assistant, assessor) and birth years are kept.

Formula injection (OWASP "CSV injection"): a text cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading single quote in every CSV
file, so a spreadsheet shows it as text instead of running it. Numbers are never
changed (a negative number stays a number).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..domain.cells import mask_id, number_text
from ..domain.clock import instant_fields
from ..storage.errors import StorageError
from ..storage.store import instant_ok_sql

if TYPE_CHECKING:
    from ..storage.store import Store


class ExportRefused(StorageError):
    """An export refused: one line (the CLI shows it and exits with code 2), nothing
    written at ``--out``."""


#: How a writer reports its work: ``progress(done, total)``, rows written so far of all
#: it will write (the command passes a terminal bar's ``update_to``; None: nothing).
ProgressCallback = Callable[[int, int], Any]


class Tally:
    """Rows written so far of ``total``, reported to ``progress(done, total)`` (if any)."""

    def __init__(self, progress: ProgressCallback | None, total: int = 0) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def wrap(self, rows: Iterable[Any], step: int = 2000) -> Iterator[Any]:
        """``rows`` unchanged, counted ``step`` at a time."""
        if self.progress is None:
            yield from rows
            return
        n = 0
        for row in rows:
            yield row
            n += 1
            if n == step:
                self.add(n)
                n = 0
        if n:
            self.add(n)


#: Free text that is not a field spec marked ``identifying`` but is left out too.
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "procedures": ("failure_reason", "cancel_reason"),
    "followups": ("closed_reason",),
    "contact_attempts": ("note",),
}
#: Technical columns that identify the machine, left out of de-identified exports.
MACHINE_COLUMNS: dict[str, tuple[str, ...]] = {
    "procedures": ("anchor_boot_id", "anchor_boottime"),
}

DEIDENTIFIED_TEXT = (
    "De-identified export: no identifiers table (names, record numbers, birth dates), no "
    "free text (notes, failure and cancel reasons, other adverse events, closed reasons, "
    "contact notes, time-out reasons), no times of day (instants become dates in the site "
    "time zone; elapsed times are given in minutes), record ids with their time part "
    "zeroed; study codes, staff names and birth years kept."
)
IDENTIFIED_TEXT = (
    "IDENTIFIED export (--identifiers): includes names, record numbers, birth dates, "
    "free-text notes, exact times and the audit log. Store it encrypted and share it "
    "only under your data-protection agreement."
)
FORMULA_TEXT = (
    "Spreadsheet formula injection (OWASP): a text cell that begins with =, +, -, @, a "
    "tab or a carriage return is written with a leading single quote (') so that a "
    "spreadsheet shows it as text instead of evaluating it; remove that quote to get "
    "the stored text back. Numbers are never changed."
)


@functools.cache
def identifying_columns(table: str) -> tuple[str, ...]:
    """The columns of ``table`` left out of a de-identified export."""
    from ..domain import fields

    specs: dict[str, dict[str, fields.FieldSpec]] = {
        "patients": fields.PATIENT_FIELDS,
        "procedures": {**fields.SETUP_FIELDS, **fields.OUTCOME_FIELDS},
        "followups": fields.FOLLOWUP_FIELDS,
        "timeouts": {**fields.TIMEOUT_FIELDS, "reason": fields.TIMEOUT_REASON_FIELD},
    }
    flagged = tuple(n for n, s in specs.get(table, {}).items() if s.identifying)
    return flagged + FREE_TEXT.get(table, ()) + MACHINE_COLUMNS.get(table, ())


def is_instant_column(name: str) -> bool:
    return name == "at" or name.endswith("_at")


def is_id_column(name: str) -> bool:
    return name == "id" or name.endswith("_id")


# ---------------------------------------------------------------- de-identification
#
# THE rule of every export (csv, json, sqlite, redcap; the ICS calendar masks its ids
# by it too): :func:`column_action` says what happens to one column, :func:`deidentify_row`
# applies it to a row, :func:`deidentification_manifest` lists it for the export's
# header (JSON ``deidentification``, the CSV data dictionary, the SQLite ``meta`` table,
# REDCap's dictionary). The cell rules themselves (formula guard, id mask) are
# :mod:`sma_log.domain.cells`.

#: Tables left out of a de-identified export (their rows are dropped, the table kept
#: empty where the format has tables): the identifiers, and the audit log (its old and
#: new values repeat every identifier and note ever written).
REMOVED_TABLES: tuple[str, ...] = ("identifiers", "audit_log")
#: Events whose ``value`` is free text (removed from a de-identified export).
NOTE_EVENT_KINDS: tuple[str, ...] = ("note",)

KEEP, REMOVE, MASK_ID, DATE = "keep", "remove", "mask_id", "date"
#: What a de-identified export masks beside what it removes: ``ids`` (a ULID's time
#: part zeroed) and ``times`` (instants as local dates). Every format masks both, except
#: the JSON document until the importer reads such a document
#: (:data:`sma_log.export.jsondoc.JSON_MASKS`) and the ICS calendar, whose events must
#: keep their due time (it masks ids only).
MASK_IDS, MASK_TIMES = "ids", "times"
ALL_MASKS: frozenset[str] = frozenset({MASK_IDS, MASK_TIMES})


@functools.cache
def column_action(
    table: str, column: str, identifiers: bool, masks: frozenset[str] = ALL_MASKS
) -> str:
    """What a de-identified export does with ``table.column``: ``keep``, ``remove``
    (free text, machine ids), ``mask_id`` (a ULID's time part zeroed) or ``date`` (an
    instant becomes its calendar date in the site time zone). ``keep`` for everything
    with ``identifiers``."""
    if identifiers:
        return KEEP
    if column in identifying_columns(table):
        return REMOVE
    if is_id_column(column):
        return MASK_ID if MASK_IDS in masks else KEEP
    if is_instant_column(column):
        return DATE if MASK_TIMES in masks else KEEP
    return KEEP


def deidentify_row(
    table: str,
    row: dict[str, Any],
    opts: Any,
    dates: LocalDates | None = None,
    masks: frozenset[str] = ALL_MASKS,
) -> dict[str, Any] | None:
    """``row`` (column -> stored value) as a de-identified export holds it.

    ``opts`` needs ``identifiers`` (True: the row is returned unchanged) and ``tz`` (the
    site time zone; ``dates`` is a :class:`LocalDates` for it, made once per export for
    speed). Returns None for a row of a :data:`REMOVED_TABLES` table; otherwise a new
    dict without the removed columns (and without ``value`` of a note event), ids
    masked (:func:`mask_id`), instants as local dates (an instant that cannot be read
    becomes None: its text may hold the time of day). ``masks`` leaves out ``ids`` or
    ``times`` for a format that cannot mask them yet (see :data:`ALL_MASKS`).
    """
    if opts.identifiers:
        return row
    if table in REMOVED_TABLES:
        return None
    if dates is None:
        dates = LocalDates(opts.tz)
    out: dict[str, Any] = {}
    for name, value in row.items():
        action = column_action(table, name, False, masks)
        if action == KEEP:
            out[name] = value
        elif action == MASK_ID:
            out[name] = mask_id(value)
        elif action == DATE:
            out[name] = dates.date(value)
    if table == "events" and row.get("kind") in NOTE_EVENT_KINDS:
        out.pop("value", None)
    return out


def deidentification_manifest(
    identifiers: bool,
    tables: Mapping[str, Iterable[str]],
    tz: str,
    masks: frozenset[str] = ALL_MASKS,
) -> dict[str, Any]:
    """Exactly what a de-identified export removed or masked, for its header.

    ``tables`` maps each table the export holds (or would hold) to its stored columns.
    """
    if identifiers:
        return {
            "applied": False,
            "not_masked": [],
            "removed_tables": [],
            "removed_columns": {},
            "removed_event_values_of_kinds": [],
            "ids_masked": {},
            "instants_as_dates": {},
            "time_zone": tz,
            "rule": IDENTIFIED_TEXT,
        }
    removed: dict[str, list[str]] = {}
    masked: dict[str, list[str]] = {}
    dated: dict[str, list[str]] = {}
    for table, columns in tables.items():
        if table in REMOVED_TABLES:
            continue
        for c in columns:
            action = column_action(table, c, False, masks)
            target = {REMOVE: removed, MASK_ID: masked, DATE: dated}.get(action)
            if target is not None:
                target.setdefault(table, []).append(c)
    not_masked = []
    if MASK_IDS not in masks:
        not_masked.append(
            "record ids are complete ULIDs (their first 10 characters give their creation time)"
        )
    if MASK_TIMES not in masks:
        not_masked.append("instants are exact UTC instants (time of day included)")
    return {
        "applied": True,
        "not_masked": not_masked,
        "removed_tables": [t for t in REMOVED_TABLES],
        "removed_columns": removed,
        "removed_event_values_of_kinds": list(NOTE_EVENT_KINDS),
        "ids_masked": masked,
        "id_mask": "the first 10 characters of a ULID (its creation time) replaced by 0",
        "instants_as_dates": dated,
        "time_zone": tz,
        "rule": DEIDENTIFIED_TEXT,
    }


def manifest_lines(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The manifest as (key, text) pairs: one line per kind of change (CSV, SQLite)."""
    if not manifest["applied"]:
        return [("deidentification", "none (identified export)")]

    def per_table(d: dict[str, list[str]]) -> str:
        return "; ".join(f"{t}: {', '.join(cs)}" for t, cs in d.items()) or "none"

    kept = [("not_masked", "; ".join(manifest["not_masked"]))] if manifest["not_masked"] else []
    return [
        *kept,
        ("removed_tables", ", ".join(manifest["removed_tables"])),
        ("removed_columns", per_table(manifest["removed_columns"])),
        (
            "removed_event_values",
            "events.value of kind " + ", ".join(manifest["removed_event_values_of_kinds"]),
        ),
        ("ids_masked", per_table(manifest["ids_masked"]) + f" ({manifest['id_mask']})"),
        (
            "instants_as_dates",
            per_table(manifest["instants_as_dates"])
            + f" (local calendar date in {manifest['time_zone']}; no time of day)",
        ),
    ]


# ---------------------------------------------------------------- staging
STAGING_PREFIX = ".sma-log-staging."
_STAGING_RE = re.compile(r"^\.sma-log-staging\.(\d+)\.[0-9a-f]{8}$")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove what killed exports left beside ``out``: sma-log staging folders
    (``.sma-log-staging.PID.XXXXXXXX``) and the temporary files of an export to the
    same name (``.OUT.PID.tmp`` with ``-journal``/``-wal``/``-shm``, ``.OUT.PID.old``),
    each only when process PID is no longer running. Nothing else is touched.
    Returns what was removed."""
    folder = out.parent
    own = re.compile(r"^\." + re.escape(out.name) + r"\.(\d+)\.(tmp(-journal|-wal|-shm)?|old)$")
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _STAGING_RE.match(p.name) or own.match(p.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            mode = p.lstat().st_mode
            if stat.S_ISDIR(mode):
                shutil.rmtree(p)
            elif stat.S_ISREG(mode):
                p.unlink()
            else:
                continue  # a link, FIFO or device of that name is not ours
        except OSError:
            continue
        removed.append(p)
    return removed


@contextlib.contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new private (0700) folder beside ``out`` for an export's temporary files,
    removed with everything in it when the block ends (a kill leaves it for
    :func:`remove_stale_staging`)."""
    name = f"{STAGING_PREFIX}{os.getpid()}.{os.urandom(4).hex()}"
    path = out.parent / name
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)  # whatever the umask
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class LocalDates:
    """UTC stored instants → local calendar dates (and times) in one IANA time zone.

    Called once per exported instant, so it caches per UTC hour: in a zone whose
    offset is whole hours and does not change within that hour, every instant of the
    hour has the same local date.
    """

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self._hours: dict[str, str | None] = {}

    @staticmethod
    def _utc(text: str) -> datetime:
        return datetime(*instant_fields(text), tzinfo=UTC)

    def local(self, text: str) -> datetime:
        return self._utc(text).astimezone(self.zone)

    def date(self, text: Any) -> Any:
        """The local date of a stored instant (ISO text), or None when ``text`` is not
        one an export can read (a bad cell: month 13, a number, a BLOB): an instant
        that cannot be read is written empty, never as its text (it may hold a time)."""
        if not isinstance(text, str) or len(text) not in _READABLE_LENGTHS:
            return None
        key = text[:13]
        hit = self._hours.get(key)
        if hit is not None:  # an hour read before (its minutes are not read again)
            return hit
        try:
            utc = self._utc(text)
        except (ValueError, OverflowError):
            return None
        if key not in self._hours:
            if len(self._hours) > 100_000:  # bounded: memory stays flat on huge files
                self._hours.clear()
            start = utc.replace(minute=0, second=0, microsecond=0)
            try:
                a = start.astimezone(self.zone)
                b = (start + timedelta(minutes=59, seconds=59)).astimezone(self.zone)
            except (ValueError, OverflowError):  # the first or last hour of year 1 / 9999
                return None
            same = a.utcoffset() == b.utcoffset() and a.date() == b.date()
            self._hours[key] = a.date().isoformat() if same else None
            if same:
                return self._hours[key]
        try:
            return utc.astimezone(self.zone).date().isoformat()
        except (ValueError, OverflowError):
            return None

    def datetime_text(self, text: Any) -> Any:
        """Local ``YYYY-MM-DD HH:MM:SS`` (what REDCap's datetime fields import), or None
        when ``text`` cannot be read."""
        if not isinstance(text, str) or len(text) not in _READABLE_LENGTHS:
            return None
        try:
            return self.local(text).strftime("%Y-%m-%d %H:%M:%S")
        except (ValueError, OverflowError):
            return None


#: Instants an export reads: ``YYYY-MM-DDTHH:MM:SS``, optionally ``.ffffff``, optionally
#: ``Z`` (the stored form is the longest; the analysis rows give seconds and ``Z``).
_READABLE_LENGTHS = (19, 20, 26, 27)


@dataclass
class ExportOptions:
    identifiers: bool
    tz: str
    date_from: date | None = None
    date_to: date | None = None
    #: ``progress(done, total)`` as rows are written (:data:`ProgressCallback`), or None.
    progress: ProgressCallback | None = None
    #: CSV for Excel: UTF-8 with a byte-order mark (Excel reads –, °, ² right).
    excel: bool = False
    #: Where the writers report the bad cells they meet (see :class:`BadCells`).
    bad: BadCells = field(default_factory=lambda: BadCells())

    @property
    def utc_bounds(self) -> tuple[str | None, str | None]:
        """The stored-text bounds ``[lo, hi)`` of procedure start times, or None."""
        zone = ZoneInfo(self.tz)

        def midnight(d: date) -> str:
            local = datetime(d.year, d.month, d.day, tzinfo=zone)
            return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        lo = midnight(self.date_from) if self.date_from else None
        hi = midnight(self.date_to + timedelta(days=1)) if self.date_to else None
        return lo, hi

    def start_filter(self, column: str) -> tuple[str, list[str]]:
        """SQL condition (and parameters) on a procedure start column."""
        lo, hi = self.utc_bounds
        parts, params = [], []
        if lo:
            parts.append(f"{column} >= ?")
            params.append(lo)
        if hi:
            parts.append(f"{column} < ?")
            params.append(hi)
        return (" AND ".join(parts) or "1"), params

    def range_text(self) -> str:
        if not self.date_from and not self.date_to:
            return "all procedures"
        lo = self.date_from.isoformat() if self.date_from else "the first"
        hi = self.date_to.isoformat() if self.date_to else "the last"
        return f"procedures started from {lo} to {hi} ({self.tz})"


def parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ExportRefused(
            f"{option}: {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-27"
        ) from None


def open_private(path: Path, bom: bool = False) -> Any:
    """A new text file, 0600, UTF-8, for the csv module (newline='': the csv module
    writes RFC 4180's CRLF line ends itself); ``bom``: starting with the UTF-8
    byte-order mark."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
    if bom:
        fh.write("\ufeff")
    return fh


#: Names SQLite gives a database's companions: writing one could be taken for (or
#: deleted as) a journal by the next program that opens the database beside it.
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")


def check_out(out: Path, force: bool, db_path: Path, folder: bool) -> Path:
    """Refuse an output path that would overwrite something it must not.

    Never the database or its companion files; never a name SQLite uses for a
    journal; with ``--force``, only a regular file (or, for a folder export, a folder
    of an earlier export: see :func:`staged_folder`) is replaced — a FIFO, a device,
    a socket or a symbolic link is refused, never replaced.
    """
    out = out.expanduser()
    shown = str(out)  # the CLI shows every error line through visible()
    resolved = out.resolve()
    db = db_path.expanduser().resolve()
    if resolved == db or any(resolved == Path(f"{db}{c}") for c in SQLITE_COMPANIONS):
        raise ExportRefused(f"{shown}: that is the database itself; choose another path")
    if out.name.endswith(SQLITE_COMPANIONS):
        raise ExportRefused(
            f"{shown}: a name SQLite uses for a database's journal "
            f"({', '.join(SQLITE_COMPANIONS)}); choose another name"
        )
    if not out.parent.exists():
        raise ExportRefused(f"{out.parent}: no such folder")
    if out.exists() or out.is_symlink():
        if not force:
            raise ExportRefused(f"{shown}: already exists; choose another path or use --force")
        mode = out.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise ExportRefused(
                f"{shown}: is a symbolic link; --force replaces only a regular file"
            )
        if stat.S_ISDIR(mode):
            if not folder:
                raise ExportRefused(f"{shown}: is a folder; --force replaces only a file here")
        elif not stat.S_ISREG(mode):
            raise ExportRefused(
                f"{shown}: is not a regular file (a FIFO, device or socket); "
                "--force replaces only a regular file"
            )
    return out


@contextlib.contextmanager
def staged_folder(out: Path, force: bool, known: Iterable[str]) -> Iterator[Path]:
    """A new 0700 folder beside ``out``, moved into place when the block succeeds.

    With ``force`` an existing ``out`` is replaced only if it is a file or a folder
    holding nothing but files this export writes (an earlier export); anything else
    is refused, never deleted.
    """
    known = set(known)
    if out.is_dir() and not out.is_symlink():
        strangers = [p.name for p in out.iterdir() if p.name not in known]
        if strangers:
            raise ExportRefused(
                f"{out}: is a folder that holds other files ({strangers[0]}, …); "
                "--force replaces only an earlier export of this format"
            )
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    try:
        yield tmp
        for p in tmp.iterdir():  # durable before it is visible
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        if out.exists() or out.is_symlink():
            if not force:
                raise ExportRefused(f"{out}: already exists; choose another path or use --force")
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- bad cells
#
# A file another tool wrote can hold anything in a cell: month 13, year 0, Infinity,
# text in a number column, a BLOB, a code outside the vocabulary. What a stored cell
# may hold is defined once, by the JSON Schema that ships with sma-log (generated from
# the domain's field specs and vocabularies, :mod:`sma_log.export.jsondoc`), plus the
# domain's reading of an instant (:func:`sma_log.domain.clock.from_text`: a pattern
# cannot say that month 13 does not exist). Every export finds the bad cells of what it
# writes with :func:`find_bad_cells` (SQL picks the suspect rows, Python judges each
# cell by that one rule) and reports each on one line of stderr with :class:`BadCells`;
# ``sma-log info --check`` lists them the same way.

#: A value is shown at most this long in a bad-cell line.
SHOWN_CHARS = 60


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


@dataclass(frozen=True)
class CellRule:
    """What a stored cell of one column may hold (one column of the shipped schema)."""

    table: str
    column: str
    types: frozenset[str] = frozenset()  # JSON types: string, integer, number; empty: any
    nullable: bool = True
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    instant: bool = False
    pattern: str | None = None  # a regular expression other than the instant's or an id's
    blob_ok: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be this column's, or None when it can."""
        import math

        if value is None:
            return None if self.nullable else "missing (NULL)"
        if isinstance(value, bytes):
            return None if self.blob_ok else f"a BLOB ({len(value)} bytes), not a value"
        if isinstance(value, float) and not math.isfinite(value):
            return "not a finite number"
        if self.instant:
            return _instant_problem(value)
        if self.enum is not None:
            if isinstance(value, str):
                known = any(isinstance(e, str) and value == e for e in self.enum)
            else:
                known = any(not isinstance(e, str) and value == e for e in self.enum)
            if known:
                return None
            return "not one of the codes (" + ", ".join(map(str, self.enum)) + ")"
        if self.types:
            if isinstance(value, str) and "string" not in self.types:
                return "text in a number column"
            if isinstance(value, (int, float)) and not (self.types & {"integer", "number"}):
                return "a number where text belongs"
            if isinstance(value, float) and "number" not in self.types:
                return "not a whole number"
        if isinstance(value, (int, float)):
            if self.minimum is not None and value < self.minimum:
                return f"below the minimum {number_text(self.minimum)}"
            if self.maximum is not None and value > self.maximum:
                return f"above the maximum {number_text(self.maximum)}"
        if isinstance(value, str):
            if self.max_length is not None and len(value) > self.max_length:
                return f"longer than {self.max_length} characters ({len(value)})"
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                return _pattern_problem(self.pattern)
        return None

    def suspect_sql(self, x: str, declared: str | None = None, notnull: bool = False) -> str | None:
        """SQL true for every value :meth:`problem` refuses (and maybe a few more).

        ``declared`` (the column's declared type in the file) and ``notnull`` (its NOT
        NULL constraint) say what SQLite lets the column hold at all (a TEXT column
        turns numbers into text, an INTEGER one whole reals into integers): checks for
        values it cannot hold are left out. The checks are comparisons where they can
        be, cheaper than a function per cell: SQLite orders NULL < numbers < text <
        BLOB, so ``x >= X''`` is a BLOB, ``x >= ''`` text or a BLOB, ``x < ''`` a
        number, and a number column's maximum also catches text, BLOBs and Infinity.
        """
        can = _storage_classes(declared) - ({"null"} if notnull else set())
        parts = []
        if "null" in can and not self.nullable:
            parts.append(f"{x} IS NULL")
        numbers = self.types & {"integer", "number"}
        if self.enum is not None:
            parts.append(f"{x} NOT IN ({', '.join(_sql_literal(e) for e in self.enum)})")
            # ...but the column's affinity applies to the codes: in a TEXT column '1'
            # IN (0, 1) holds, in a numeric one 5 IN ('5') would
            if all(isinstance(e, str) for e in self.enum):
                if can & {"integer", "real"}:
                    parts.append(f"{x} < ''")
            elif can & {"text", "blob"}:
                parts.append(f"{x} >= ''")
        elif self.instant:
            # CASE, not NOT coalesce(ok, 0): SQLite (3.40) evaluates every operand of an
            # AND or OR that is a function's argument, so the day-of-month check's date()
            # ran for every cell; a WHEN jumps past the rest at the first false term
            ok = instant_ok_sql(x)
            if "null" in can:
                ok = f"{x} IS NULL OR {ok}"
            parts.append(f"CASE WHEN {ok} THEN 0 ELSE 1 END")
        elif numbers and not can & {"integer", "real"}:  # a TEXT column: no number at all
            parts.append(f"{x} IS NOT NULL")
        elif numbers:
            above = "" if self.maximum is None else f"{x} > {number_text(self.maximum)}"
            if above:
                parts.append(above)  # text and BLOBs sort above every number, +inf too
            elif can & {"text", "blob"} or ("real" in can and "number" in numbers):
                parts.append(f"{x} >= 9e999")  # +inf, text, BLOBs
            if self.minimum is not None:
                parts.append(f"{x} < {number_text(self.minimum)}")  # -inf too
            elif "real" in can and "number" in numbers:
                parts.append(f"{x} <= -9e999")
            if "real" in can and "number" not in numbers:  # whole numbers only
                affinity = _affinity(declared)
                if affinity in ("INTEGER", "NUMERIC"):  # a whole real is stored as integer
                    parts.append(f"CAST({x} AS INTEGER) != {x}")
                else:
                    parts.append(f"typeof({x}) = 'real'")
        else:
            if "blob" in can and not self.blob_ok:
                parts.append(f"{x} >= X''")
            if "string" in self.types and can & {"integer", "real"}:
                parts.append(f"{x} < ''")  # a number where text belongs
            if not self.types and "real" in can:
                parts.append(f"{x} IN (9e999, -9e999)")
            if self.max_length is not None and "text" in can:
                # bytes, not characters: length() stops at a NUL, and there are at
                # least as many bytes as characters
                parts.append(f"length(CAST({x} AS BLOB)) > {self.max_length}")
            if self.pattern is not None and "text" in can:
                parts.append(_pattern_suspect_sql(self.pattern, x))
        return " OR ".join(f"({p})" for p in parts) if parts else None


def _affinity(declared: str | None) -> str:
    """SQLite's affinity of a declared column type (section 3.1 of its datatype rules)."""
    t = (declared or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def _storage_classes(declared: str | None) -> set[str]:
    """What a column of this declared type can hold (SQLite's affinity rules: a TEXT
    column turns numbers into text, a REAL one integers into reals)."""
    if declared is None:
        return {"null", "integer", "real", "text", "blob"}
    return {
        "TEXT": {"null", "text", "blob"},
        "REAL": {"null", "real", "text", "blob"},
    }.get(_affinity(declared), {"null", "integer", "real", "text", "blob"})


def _instant_problem(value: Any) -> str | None:
    from ..domain.clock import from_text

    if not isinstance(value, str):
        return "not an instant (a number, not the stored text)"
    try:
        from_text(value)
    except ValueError as exc:
        cause = exc.__cause__
        if cause is not None:
            return f"not an instant ({cause})"
        return "not an instant in the stored form (YYYY-MM-DDTHH:MM:SS.ffffffZ, UTC)"
    return None


def _pattern_problem(pattern: str) -> str:
    from ..domain import fields

    if pattern == fields.STUDY_CODE_RE.pattern:
        return "not a study code (letters, digits and hyphens, 1–32, no hyphen at either end)"
    return f"does not match the pattern {pattern}"


def _pattern_suspect_sql(pattern: str, x: str) -> str:
    from ..domain import fields

    if pattern == fields.STUDY_CODE_RE.pattern:
        return (
            f"{x} = '' OR {x} GLOB '*[^A-Za-z0-9-]*' OR {x} GLOB '-*' OR {x} GLOB '*-' "
            f"OR length(CAST({x} AS BLOB)) > 32 "
            f"OR length({x}) != length(CAST({x} AS BLOB))"  # a NUL (GLOB stops at it)
        )
    return f"{x} IS NOT NULL"  # any other pattern: Python looks at every value


_ULID = re.compile(r"\^\[0-9A-HJKMNP-TV-Z\]\{26\}\$")


def _rule_from_schema(table: str, column: str, prop: dict[str, Any] | None) -> CellRule:
    if prop is None:  # a column the schema does not know: only what no format carries
        return CellRule(table, column)
    raw_types = prop.get("type", [])
    types = {raw_types} if isinstance(raw_types, str) else set(raw_types)
    enum = prop.get("enum")
    nullable = "null" in types or (enum is not None and None in enum)
    if enum is not None and not types:
        nullable = None in enum
    pattern = prop.get("pattern")
    from .schemafile import INSTANT_OR_DATE_PATTERN, INSTANT_PATTERN

    # a document's instant column may hold a date (de-identified); a stored cell may not
    instant = pattern in (INSTANT_PATTERN, INSTANT_OR_DATE_PATTERN)
    if instant or (pattern is not None and _ULID.fullmatch(pattern)):
        pattern = None  # ids: text is enough for every format; instants: from_text
    return CellRule(
        table,
        column,
        types=frozenset(types - {"null"}),
        nullable=nullable,
        enum=tuple(e for e in enum if e is not None) if enum is not None else None,
        minimum=prop.get("minimum"),
        maximum=prop.get("maximum"),
        max_length=prop.get("maxLength"),
        instant=instant,
        pattern=pattern,
    )


_SCHEMA_PROPS: dict[str, dict[str, Any]] | None = None


def cell_rules(table: str, columns: Iterable[str]) -> dict[str, CellRule]:
    """The rule of each of ``columns`` of ``table``, from the shipped JSON Schema."""
    global _SCHEMA_PROPS
    if _SCHEMA_PROPS is None:
        from .schemafile import load_schema

        defs = load_schema().get("$defs", {})
        _SCHEMA_PROPS = {
            name.removesuffix("_row"): d.get("properties", {}) for name, d in defs.items()
        }
    props = _SCHEMA_PROPS.get(table, {})
    return {c: _rule_from_schema(table, c, props.get(c)) for c in columns}


def shown_value(value: Any) -> str:
    """A stored value as a bad-cell line shows it: text quoted with its control
    characters made visible, a BLOB as SQL hex, a number as Python writes it."""
    from ..domain.text import visible

    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        more = "…" if len(value) > 16 else ""
        return f"x'{value[:16].hex()}'{more}"
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return f"'{visible(value[:SHOWN_CHARS])}'… ({len(value)} characters)"
        return f"'{visible(value)}'"
    return visible(repr(value) if isinstance(value, float) else str(value))


@dataclass(frozen=True)
class BadCell:
    table: str
    rowid: int
    row_id: Any  # the row's ``id`` column, as stored
    column: str
    problem: str
    value: Any

    def line(self, action: str = "") -> str:
        """``table id column: what is wrong: the value`` (and what the export did)."""
        from ..domain.text import visible

        if isinstance(self.row_id, str):
            who = visible(self.row_id)
        else:
            who = f"(rowid {self.rowid}, id {shown_value(self.row_id)})"
        done = f" ({action})" if action else ""
        return f"{self.table} {who} {self.column}: {self.problem}: {shown_value(self.value)}{done}"


class BadCells:
    """The bad cells an export met, each reported on one line of stderr.

    ``echo`` receives each line as it is found (the command passes one that writes to
    stderr); without it the cells are only kept (tests read :attr:`cells`). At most
    :attr:`KEEP` cells are kept in memory, every one is counted and echoed.
    """

    KEEP = 10_000

    def __init__(
        self, echo: Callable[[str], Any] | None = None, prefix: str = "sma-log: bad cell: "
    ) -> None:
        self.echo = echo
        self.prefix = prefix
        self.cells: list[tuple[BadCell, str]] = []
        self.count = 0

    def add(self, cell: BadCell, action: str = "") -> None:
        self.count += 1
        if len(self.cells) < self.KEEP:
            self.cells.append((cell, action))
        if self.echo is not None:
            self.echo(self.prefix + cell.line(action))

    def __bool__(self) -> bool:
        return self.count > 0

    def lines(self) -> list[str]:
        return [self.prefix + c.line(a) for c, a in self.cells]


def find_bad_cells(
    conn: Any,
    table: str,
    columns: Iterable[str],
    source: str | None = None,
    where: str = "1",
    params: Iterable[Any] = (),
    guards: dict[str, str] | None = None,
) -> list[BadCell]:
    """Every bad cell of ``columns`` in the rows of ``table`` that an export writes.

    ``source`` is the FROM clause (``table`` aliased ``t`` by default; joins may add
    other tables for ``where``); ``guards`` maps a column to SQL that must hold for its
    cell to count (e.g. an event's value only when it is not a note). One query: SQL
    picks the rows with a suspect cell, Python judges those cells.
    """
    info = {r[1]: (r[2], bool(r[3])) for r in conn.execute(f"PRAGMA table_info({table})")}
    have = set(info)
    columns = [c for c in columns if c in have]
    rules = cell_rules(table, columns)
    guards = guards or {}
    conds = []
    for c in columns:
        sql = rules[c].suspect_sql(f't."{c}"', *info[c])
        if sql is None:
            continue
        if c in guards:
            sql = f"({guards[c]}) AND ({sql})"
        conds.append(f"({sql})")
    if not conds:
        return []
    ident = 't."id"' if "id" in have else "NULL"
    guarded = [c for c in columns if c in guards]
    select = ", ".join([*(f't."{c}"' for c in columns), *(f"({guards[c]})" for c in guarded)])
    query = (
        f"SELECT t.rowid, {ident}, {select} FROM {source or f'{table} t'} "
        f"WHERE ({where}) AND ({' OR '.join(conds)}) ORDER BY t.rowid"
    )
    n = len(columns)
    found: list[BadCell] = []
    for row in conn.execute(query, list(params)):
        rowid, row_id, values, held = row[0], row[1], row[2 : 2 + n], row[2 + n :]
        skip = {c for c, ok in zip(guarded, held, strict=True) if not ok}
        for c, v in zip(columns, values, strict=True):
            if c in skip:
                continue
            problem = rules[c].problem(v)
            if problem is not None:
                found.append(BadCell(table, rowid, row_id, c, problem, v))
    return found


def bad_cells_of(
    store: Store, table: str, columns: Iterable[str], where: str = "1"
) -> list[BadCell]:
    """:func:`find_bad_cells` of the rows of ``table`` (aliased ``t``) in a Store's file
    that pass ``where``: what the commands and the CLI call (they hand over the Store,
    never its connection)."""
    return find_bad_cells(store.conn, table, columns, where=where)


#: Rows of one table judged per query by :func:`scan_bad_cells` (its progress step).
SCAN_CHUNK = 50_000


def scan_bad_cells(
    store: Store,
    table: str,
    progress: Callable[[int, int], Any] | None = None,
    chunk: int = SCAN_CHUNK,
) -> Iterator[BadCell]:
    """Every bad cell of every column of ``table`` (``info --check``): the cells of
    :func:`find_bad_cells`, in the same order, found a rowid range of about ``chunk``
    rows at a time (an index seek each, one pass over the table in all), with
    ``progress(rows, total)`` after each range: rows scanned so far (estimated from the
    rowids) of the table's rows."""
    conn = store.conn
    quoted = '"' + table.replace('"', '""') + '"'
    lo, hi, n = conn.execute(f"SELECT min(rowid), max(rowid), count(*) FROM {quoted}").fetchone()
    if not n:
        return
    columns = store.columns(table)
    span = hi - lo + 1
    step = max(1, -(-span * chunk // n))  # rowids per range: ``chunk`` rows on average
    start = lo
    while start <= hi:
        end = min(start + step - 1, hi)
        yield from find_bad_cells(
            conn, table, columns, where="t.rowid BETWEEN ? AND ?", params=(start, end)
        )
        if progress is not None:
            progress(n * (end - lo + 1) // span, n)
        start = end + 1
