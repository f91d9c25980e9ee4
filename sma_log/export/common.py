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
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..commands.common import CommandRefused

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

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
    "contact notes), no times of day (instants become dates in the site time zone; elapsed times "
    "are given in minutes), record ids with their time part zeroed; study codes, staff "
    "names and birth years kept."
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


def identifying_columns(table: str) -> tuple[str, ...]:
    """The columns of ``table`` left out of a de-identified export."""
    from ..domain import fields

    specs: dict[str, dict[str, fields.FieldSpec]] = {
        "patients": fields.PATIENT_FIELDS,
        "procedures": {**fields.SETUP_FIELDS, **fields.OUTCOME_FIELDS},
        "followups": fields.FOLLOWUP_FIELDS,
    }
    flagged = tuple(n for n, s in specs.get(table, {}).items() if s.identifying)
    return flagged + FREE_TEXT.get(table, ()) + MACHINE_COLUMNS.get(table, ())


def is_instant_column(name: str) -> bool:
    return name == "at" or name.endswith("_at")


def is_id_column(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def mask_id(value: Any) -> Any:
    """A ULID without its time: the 10 characters of milliseconds become zeros."""
    if isinstance(value, str) and len(value) == 26:
        return "0000000000" + value[10:]
    return value


def mask_id_sql(expr: str) -> str:
    """:func:`mask_id` in SQL (no Python call per cell)."""
    return (
        f"CASE WHEN typeof({expr}) = 'text' AND length({expr}) = 26 "
        f"THEN '0000000000' || substr({expr}, 11) ELSE {expr} END"
    )


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (text only)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_sql(expr: str) -> str:
    """``expr`` neutralised against formula injection, in SQL (runs in SQLite's C code)."""
    return (
        f"CASE WHEN typeof({expr}) = 'text' AND substr({expr}, 1, 1) IN "
        f"('=', '+', '-', '@', char(9), char(13)) THEN '''' || {expr} ELSE {expr} END"
    )


def real_text_sql(expr: str) -> str:
    """A REAL as Python's ``repr`` writes it (what ``csv.writer`` wrote), in SQL.

    SQLite's ``%!.15g`` is ``repr`` (shortest digits, ``.0`` on whole numbers) whenever
    15 significant digits read back as the same double and 1e-4 <= |x| < 1e15. Other
    values give NULL and the caller falls back to Python: SQLite's 16th and 17th
    digits are not always the ones ``repr`` picks, and its exponent form differs.
    Zero is ``0.0``: a REAL column cannot hold -0.0 (SQLite stores it as 0).
    """
    p15 = f"printf('%!.15g', {expr})"
    return (
        f"CASE WHEN (({expr} >= 1e-4 AND {expr} < 1e15) OR ({expr} <= -1e-4 AND {expr} > -1e15)) "
        f"AND CAST({p15} AS REAL) = {expr} THEN {p15} WHEN {expr} = 0 THEN '0.0' END"
    )


def csv_cell(value: Any) -> str:
    """One cell exactly as ``csv.writer`` (QUOTE_MINIMAL, ``,``) writes it (no guard)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def offset_transitions(tz: str, first_year: int, last_year: int) -> list[tuple[str, int]]:
    """The UTC offsets of ``tz`` from 1 January ``first_year`` to 1 January
    ``last_year + 1`` (UTC): ``[(utc_start, offset_seconds), …]``, each offset valid
    from its start (``YYYY-MM-DDTHH:MM:SS``, the form of the stored text's first 19
    characters) to the next start; the last entry only marks the end of the range.

    The offset is sampled once a day and each change is bisected to the second, so a
    change and its reversal less than a day apart would be missed.
    """
    zone = ZoneInfo(tz)
    start = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    second = timedelta(seconds=1)

    def offset(t: datetime) -> int:
        off = t.astimezone(zone).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def text(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S")

    out = [(text(start), offset(start))]
    t, cur = start, out[0][1]
    while t < end:
        nxt = min(t + timedelta(days=1), end)
        if offset(nxt) != cur:
            lo, hi = t, nxt  # offset(lo) == cur != offset(hi): bisect to the second
            while hi - lo > second:
                mid = lo + ((hi - lo) // 2 // second) * second
                if offset(mid) == cur:
                    lo = mid
                else:
                    hi = mid
            cur = offset(hi)
            out.append((text(hi), cur))
        t = nxt
    out.append((text(end), 0))
    return out


def local_date_sql(expr: str, transitions: list[tuple[str, int]], fallback: str) -> str:
    """The local calendar date of stored UTC text ``expr``, in SQL.

    ``transitions`` comes from :func:`offset_transitions`; a binary search over its
    instants picks the offset and ``date(expr, '+N seconds')`` applies it. ``NULL``
    stays ``NULL``. Anything else that is not one of the stored forms
    (``YYYY-MM-DDTHH:MM:SS``, optionally ``.ffffff``, optionally ``Z``), lies outside
    the range or that SQLite cannot read goes to ``fallback`` (SQL calling the Python
    conversion), so the result is what :meth:`LocalDates.date` gives; the one
    difference is an impossible day such as 30 February, which SQLite rolls over into
    March where Python leaves the text as it is.
    """

    def tree(lo: int, hi: int) -> str:  # offsets lo..hi-1
        if hi - lo == 1:  # whole seconds: SQLite would round .9995 up to the next one
            return f"date(substr({expr}, 1, 19), '{transitions[lo][1]:+d} seconds')"
        mid = (lo + hi) // 2
        return (
            f"CASE WHEN {expr} < '{transitions[mid][0]}' THEN {tree(lo, mid)} "
            f"ELSE {tree(mid, hi)} END"
        )

    if len(transitions) < 2:
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {fallback} END"
    first, last = transitions[0][0], transitions[-1][0]
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL "
        f"WHEN {expr} >= '{first}' AND {expr} < '{last}' "  # text: numbers sort first
        f"AND length({expr}) IN (19, 20, 26, 27) "
        f"THEN coalesce({tree(0, len(transitions) - 1)}, {fallback}) "
        f"ELSE {fallback} END"
    )


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
        return datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            int(text[20:26]) if len(text) >= 26 and text[19] == "." else 0,
            tzinfo=UTC,
        )

    def local(self, text: str) -> datetime:
        return self._utc(text).astimezone(self.zone)

    def date(self, text: Any) -> Any:
        if not isinstance(text, str) or len(text) < 19:
            return text
        key = text[:13]
        hit = self._hours.get(key)
        if hit is not None:
            return hit
        if key not in self._hours:
            if len(self._hours) > 100_000:  # bounded: memory stays flat on huge files
                self._hours.clear()
            start = datetime(
                int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), tzinfo=UTC
            )
            a = start.astimezone(self.zone)
            b = (start + timedelta(minutes=59, seconds=59)).astimezone(self.zone)
            same = a.utcoffset() == b.utcoffset() and a.date() == b.date()
            self._hours[key] = a.date().isoformat() if same else None
            if same:
                return self._hours[key]
        try:
            return self.local(text).date().isoformat()
        except ValueError:
            return text

    def datetime_text(self, text: Any) -> Any:
        """Local ``YYYY-MM-DD HH:MM:SS`` (what REDCap's datetime fields import)."""
        if not isinstance(text, str) or len(text) < 19:
            return text
        return self.local(text).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class ExportOptions:
    identifiers: bool
    tz: str
    date_from: date | None = None
    date_to: date | None = None
    show_progress: bool = False

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
        raise CommandRefused(
            f"{option}: {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-27"
        ) from None


def register_functions(conn: sqlite3.Connection, tz: str) -> LocalDates:
    dates = LocalDates(tz)
    conn.create_function("sma_local_date", 1, dates.date, deterministic=True)
    conn.create_function("sma_mask_id", 1, mask_id, deterministic=True)
    return dates


def open_private_binary(path: Path) -> Any:
    """A new binary file, 0600 (for lines already encoded as UTF-8)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    return os.fdopen(fd, "wb")


def open_private(path: Path) -> Any:
    """A new text file, 0600, UTF-8, for the csv module (newline='')."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def check_out(out: Path, force: bool, db_path: Path, folder: bool) -> Path:
    """Refuse an output path that would overwrite something it must not."""
    out = out.expanduser()
    resolved = out.resolve()
    for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        if resolved == p.expanduser().resolve():
            raise CommandRefused(f"{out}: that is the database itself; choose another path")
    if not out.parent.exists():
        raise CommandRefused(f"{out.parent}: no such folder")
    if out.exists() or out.is_symlink():
        if not force:
            raise CommandRefused(f"{out}: already exists; choose another path or use --force")
        if out.is_dir() and not folder:
            raise CommandRefused(f"{out}: is a folder; --force replaces only a file here")
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
            raise CommandRefused(
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
                raise CommandRefused(f"{out}: already exists; choose another path or use --force")
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


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A click progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.bar: Any = None
        if enabled and total > 0:
            import click

            self.bar = click.progressbar(length=total, label=label, file=sys.stderr)
            self.bar.__enter__()

    def wrap(self, rows: Iterable[Any], step: int = 2000) -> Iterable[Any]:
        if self.bar is None:
            return rows
        return self._counted(rows, step)

    def _counted(self, rows: Iterable[Any], step: int) -> Iterator[Any]:
        n = 0
        for row in rows:
            yield row
            n += 1
            if n == step:
                self.bar.update(n)
                n = 0
        if n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


ProgressFactory = Callable[[int, str], Progress]
