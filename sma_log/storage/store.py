"""The Store: every read and write of clinical data, each write one committed transaction.

Rules kept here:

* Every write is one ``BEGIN IMMEDIATE`` … ``COMMIT``; a method returns only after the
  commit, so whatever the screen shows next is on disk.
* Every insert, update and delete of a clinical table is written to ``audit_log`` in
  the same transaction: table, record id, field and old value, under one ``audit_tx``
  (user, UTC time) per transaction; new values and inserted rows are derived
  (:mod:`sma_log.storage.auditlog`, which :meth:`Store.audit_entries` decodes). The
  attempts rows, a cache of the audited events, are not audited.
* Values are validated with the domain's field specs before they are written.
* SQLite errors leave as :class:`StorageError` with one readable line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pendulum

from ..domain import fields, timeline, vocab
from ..domain.clock import Anchor, Clock, from_text, to_text
from ..domain.ids import new_id
from . import auditlog
from .db import Row, open_connection
from .errors import Conflict, NotFound, StorageError
from .followups import FollowupStore
from .rows import AuditEntry, PatientCode

if TYPE_CHECKING:
    from datetime import date, datetime

    from ..domain import stats

# SQLite's primary result codes (the low byte of an extended code such as SQLITE_BUSY_SNAPSHOT).
_BUSY = "The database is busy (another sma-log is writing); nothing was saved, try again"
_FRIENDLY = {
    5: _BUSY,  # SQLITE_BUSY
    6: _BUSY,  # SQLITE_LOCKED
    8: "The database is read-only; nothing was saved (check the file's permissions)",  # READONLY
    13: "The disk is full; nothing was saved (free some space and try again)",  # SQLITE_FULL
    11: "The database file is damaged; nothing was saved (restore it from a backup)",  # CORRUPT
    26: "The database file is damaged; nothing was saved (restore it from a backup)",  # NOTADB
    10: "The disk reported an I/O error; nothing was saved",  # SQLITE_IOERR
}


def _friendly(exc: sqlite3.Error) -> str:
    """One line for a SQLite error, chosen by its result code (``sqlite_errorcode``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _FRIENDLY:
        return _FRIENDLY[code & 0xFF]
    return f"Database error; nothing was saved ({exc})"


def instant_ok_sql(expr: str) -> str:
    """SQL true for text that may be a stored instant, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    SQL only sorts out the cells to look at: every cell it does not pass is judged by
    the exports' cell rule (:func:`~sma_log.domain.clock.from_text`), so it may hold
    back a sound one (never in practice) but never pass one that reading refuses. A
    GLOB of plain ``?`` places the separators and the length; SQLite's own date parser
    (``julianday``) then reads the digits and refuses month 13, day 32, minute 60
    (and any other separator); around it: year 0 (a text bound that is no number, so
    a numeric column's affinity leaves it text), hour 24, and a day past the end of
    its month (which the parser rolls over into the next month, so for days 29-31 the
    date must read back the same). Measured on 1M events: 0.55 s against 0.8 s for a
    GLOB of digit classes.
    """
    x = expr
    return (
        f"({x} < X'' AND length(CAST({x} AS BLOB)) = 27 "  # GLOB stops at a NUL
        f"AND {x} GLOB '????-??-??T??:??:??.?????[0-9]Z' "
        f"AND {x} >= '0001-01-01' AND substr({x}, 12, 2) < '24' AND julianday({x}) IS NOT NULL "
        f"AND (substr({x}, 9, 2) < '29' OR date({x}, '+0 days') = substr({x}, 1, 10)))"
    )


_audit_text = auditlog.audit_text


@dataclass
class ProcedureView:
    """One procedure as the live screen needs it, read from the database."""

    row: Row
    events: list[timeline.Event]
    state: timeline.State
    _patient: Row | None = None
    _load_patient: Callable[[str], Row] | None = None

    @property
    def patient(self) -> Row:
        """The patient row, read on first use (the attempt key does not need it)."""
        if self._patient is None:
            if self._load_patient is None:
                raise TypeError("ProcedureView made without its patient or a way to read it")
            self._patient = self._load_patient(self.row["patient_id"])
        return self._patient

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def started_at(self) -> pendulum.DateTime:
        return from_text(self.row["started_at"])

    @property
    def anchor(self) -> Anchor | None:
        if self.row.get("anchor_boot_id") and self.row.get("anchor_boottime") is not None:
            return Anchor(self.row["anchor_boot_id"], float(self.row["anchor_boottime"]))
        return None


class Store(FollowupStore):
    """All access to one sma-log database file."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        user: str,
        clock: Clock | None = None,
        backup: Path | None = None,
    ) -> None:
        self.conn = conn
        self.path = path
        # --user, SMA_LOG_USER or a hand-edited settings file: cleaned like any text field
        # and at most 100 characters (as in settings) before it goes into every audit row.
        name = " ".join(fields._clean_text(str(user), multiline=False).split())[:100]
        self.user = name.strip() or "unknown"
        self.clock = clock or Clock()
        self.backup = backup
        # The transaction's audit_tx (number, instant, user) and its one instant.
        self._tx: tuple[int, str, str] | None = None
        self._tx_at: str | None = None

    # ------------------------------------------------------------------ plumbing
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        user: str | None = None,
        *,
        clock: Clock | None = None,
        create: bool = True,
        readonly: bool = False,
    ) -> Store:
        conn, backup = open_connection(path, create=create, readonly=readonly)
        return cls(conn, Path(path).expanduser(), user or default_user(), clock, backup)

    @classmethod
    def open_for_reading(cls, path: str | os.PathLike[str], user: str | None = None) -> Store:
        """The database opened read-only if possible; a missing file is never created.

        A file of an older schema cannot be upgraded read-only: it is opened normally
        (which upgrades it, with a backup, as the app would). If SQLite refuses the
        read-only open of an existing file, the normal open is tried (it refuses a
        foreign or damaged file in the same words).
        """
        from .errors import DatabaseRefused
        from .schema import SCHEMA_VERSION

        try:
            store = cls.open(path, user, create=False, readonly=True)
        except DatabaseRefused:
            if not Path(path).expanduser().exists():
                raise
            return cls.open(path, user, create=False)
        if store.user_version() < SCHEMA_VERSION:
            store.close()
            return cls.open(path, user, create=False)
        return store

    def reader(self) -> Store:
        """A read-only Store on the same file with this one's clock, follow-up windows
        and missed-after setting: for a worker thread (sqlite3 connections belong to the
        thread that made them), reading what this Store would read. Close it after use."""
        other = type(self).open(self.path, self.user, clock=self.clock, create=False, readonly=True)
        other.windows = self.windows
        other.missed_after_days = self.missed_after_days
        return other

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: reads inside it see what the writes will build on."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(_friendly(exc)) from None
        self._tx = self._tx_at = None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise Conflict(_friendly(exc)) from None
            if isinstance(exc, sqlite3.Error):
                raise StorageError(_friendly(exc)) from None
            raise

    def query(self, sql: str, params: Any = ()) -> list[Row]:
        try:
            cur = self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(_friendly(exc)) from None
        cols = [c[0] for c in cur.description or ()]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def one(self, sql: str, params: Any = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def data_version(self) -> int:
        """Changes when another connection commits: cheap to poll for live refresh."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def now(self) -> pendulum.DateTime:
        return self.clock.now()

    def _audit(
        self,
        action: str,
        table: str,
        record_id: str,
        field: str | None = None,
        old: Any = None,
        new: Any = None,
        at: str | None = None,
    ) -> None:
        """One audit row in its stored form (:mod:`~sma_log.storage.auditlog`).

        An insert (``new`` the row without its id) and an update of an audited column
        keep no new value: it is derived. Anything else keeps ``new`` in ``kept``.
        """
        if table in auditlog.CACHE_TABLES:
            return  # a cache of the audited events (auditlog.CACHE_TABLES)
        kept: dict[str, Any] = {}
        if action == "insert" and field in (None, auditlog.INSERT_FIELD):
            field = auditlog.INSERT_FIELD
            text = auditlog.insert_kept(table, new if isinstance(new, Mapping) else {})
            if text is not None:
                kept = json.loads(text)
            if not isinstance(new, Mapping):
                kept = {"new": _audit_text(new)}
        else:
            if action != auditlog.default_action(table, field):
                kept["action"] = action
            if action != "update" or field in auditlog.UNAUDITED.get(table, ()):
                kept["new"] = _audit_text(new)
        self.conn.execute(
            "INSERT INTO audit_log(tx, table_name, record_id, field, old_value, kept) "
            "VALUES (?,?,?,?,?,?)",
            (
                self._audit_tx(at),
                table,
                record_id,
                field,
                None if action == "insert" else _audit_text(old),
                json.dumps(kept, ensure_ascii=False, sort_keys=True) if kept else None,
            ),
        )

    def _audit_tx(self, at: str | None) -> int:
        """The ``audit_tx`` of this transaction (one instant per transaction unless the
        caller names one, as an import does)."""
        if at is None:
            if self._tx_at is None or not self.conn.in_transaction:
                self._tx_at = to_text(self.now())
            at = self._tx_at
        if self._tx is not None and self._tx[1:] == (at, self.user):
            # still there (not rolled back since)?
            row = self.conn.execute(
                "SELECT at, user FROM audit_tx WHERE n = ?", (self._tx[0],)
            ).fetchone()
            if row == (at, self.user):
                return self._tx[0]
        cur = self.conn.execute("INSERT INTO audit_tx(at, user) VALUES (?, ?)", (at, self.user))
        n = int(cur.lastrowid or 0)
        self._tx = (n, at, self.user)
        return n

    def _insert(self, table: str, row: Row) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(f"INSERT INTO {table}({cols}) VALUES ({marks})", tuple(row.values()))
        self._audit(
            "insert", table, row["id"], "*", None, {k: v for k, v in row.items() if k != "id"}
        )

    def _update(
        self,
        table: str,
        record_id: str,
        changes: Mapping[str, Any],
        audit: bool = True,
        current: Row | None = None,
    ) -> dict[str, tuple[Any, Any]]:
        """Update changed fields only; audit each (old → new). Returns what changed.

        ``current`` is the row as already read in this transaction (saves a read).
        """
        if not changes:
            return {}
        if current is not None:
            old = tuple(current.get(k) for k in changes)
        else:
            cols = ", ".join(changes)
            old = self.conn.execute(
                f"SELECT {cols} FROM {table} WHERE id = ?", (record_id,)
            ).fetchone()
            if old is None:
                raise NotFound(f"No {table[:-1]} with id {record_id}")
        diff = {k: (o, v) for (k, v), o in zip(changes.items(), old, strict=True) if o != v}
        if not diff:
            return {}
        sets = ", ".join(f"{k} = ?" for k in diff)
        values = [v for _, v in diff.values()]
        if table in ("patients", "procedures", "identifiers", "followups", "labs", "timeouts"):
            sets += ", updated_at = ?"
            values.append(to_text(self.now()))
        self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*values, record_id))
        if audit:
            for k, (o, v) in diff.items():
                self._audit("update", table, record_id, k, o, v)
        return diff

    # ------------------------------------------------------------------ patients
    def find_patient(self, study_code: str) -> Row | None:
        return self.one(
            "SELECT * FROM patients WHERE study_code = ? COLLATE NOCASE", (study_code.strip(),)
        )

    def patient(self, patient_id: str) -> Row:
        row = self.one("SELECT * FROM patients WHERE id = ?", (patient_id,))
        if row is None:
            raise NotFound(f"No patient with id {patient_id}")
        return row

    def search_patients(self, prefix: str = "", limit: int = 50) -> list[Row]:
        like = prefix.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self.query(
            "SELECT * FROM patients WHERE study_code LIKE ? ESCAPE '\\' "
            "ORDER BY study_code LIMIT ?",
            (like + "%", limit),
        )

    def create_patient(self, values: Mapping[str, Any]) -> Row:
        clean = fields.validate(fields.PATIENT_FIELDS, values)
        if not clean.get("study_code"):
            raise fields.ValidationError("study_code", "Study code is required")
        now = to_text(self.now())
        row: Row = {
            "id": new_id(),
            **{k: clean.get(k) for k in fields.PATIENT_FIELDS},
            "created_at": now,
            "updated_at": now,
        }
        with self.write():
            if self.find_patient(row["study_code"]):
                raise Conflict(f"Study code {row['study_code']} already exists")
            self._insert("patients", row)
        return row

    def update_patient(self, patient_id: str, values: Mapping[str, Any]) -> None:
        clean = fields.validate(fields.PATIENT_FIELDS, values)
        with self.write():
            self._update("patients", patient_id, clean)

    def set_identifiers(self, patient_id: str, values: Mapping[str, Any]) -> None:
        clean = fields.validate(fields.IDENTIFIER_FIELDS, values)
        with self.write():
            existing = self.conn.execute(
                "SELECT id FROM identifiers WHERE patient_id = ?", (patient_id,)
            ).fetchone()
            if existing:
                self._update("identifiers", existing[0], clean)
            else:
                now = to_text(self.now())
                self._insert(
                    "identifiers",
                    {
                        "id": new_id(),
                        "patient_id": patient_id,
                        **clean,
                        "created_at": now,
                        "updated_at": now,
                    },
                )

    def list_patients(self, limit: int = 500) -> list[Row]:
        return self.query(
            """SELECT pt.*, count(p.id) AS procedures_n, max(p.started_at) AS last_procedure_at
            FROM patients pt LEFT JOIN procedures p ON p.patient_id = pt.id
            GROUP BY pt.id ORDER BY pt.study_code LIMIT ?""",
            (limit,),
        )

    # ------------------------------------------------------------------ procedures
    def previous_setup(self, patient_id: str) -> dict[str, Any]:
        """The carry-over fields of the patient's most recent procedure (for pre-filling)."""
        cols = ", ".join(fields.CARRY_OVER)
        row = self.one(
            f"SELECT {cols} FROM procedures WHERE patient_id = ? ORDER BY started_at DESC LIMIT 1",
            (patient_id,),
        )
        return {k: v for k, v in (row or {}).items() if v is not None}

    def open_procedures(self) -> list[Row]:
        return self.query(
            """SELECT p.*, pt.study_code FROM procedures p JOIN patients pt
            ON pt.id = p.patient_id WHERE p.status = 'open' ORDER BY p.started_at"""
        )

    def recent_procedures(self, limit: int = 20) -> list[Row]:
        """The ``limit`` latest procedures by start (``idx_procedures_started_at``)."""
        return self.query(
            """SELECT p.*, pt.study_code FROM procedures p JOIN patients pt
            ON pt.id = p.patient_id ORDER BY p.started_at DESC LIMIT ?""",
            (limit,),
        )

    def pending_scores(self, limit: int = 50) -> list[Row]:
        """Ended procedures whose 5-minute score is still to be taken, latest end first.

        Found from their open score follow-ups, latest due first, through
        ``idx_followups_state_due_at`` (due = end + 5 min: the same order), stopping at
        ``limit``: what is read grows with the scores still open, not with the file. A
        score closed as not reachable or declined is not pending (it cannot be entered
        before it is reopened).
        """
        return self.query(
            # CROSS JOIN keeps this order: the file has no statistics, and the planner
            # would start from every ended procedure (idx_procedures_status).
            """SELECT p.*, pt.study_code FROM followups f
            CROSS JOIN procedures p ON p.id = f.procedure_id
            JOIN patients pt ON pt.id = p.patient_id
            WHERE f.state = 'open' AND f.kind = 'score_5min'
              AND p.status = 'ended' AND p.satisfaction_5min IS NULL
            ORDER BY f.due_at DESC LIMIT ?""",
            (limit,),
        )

    def recent_patients(self, limit: int = 50) -> list[Row]:
        """The ``limit`` patients with the latest procedures, latest first, with the
        columns of :meth:`list_patients` (``procedures_n``, ``last_procedure_at``).

        Walks the procedures by start, latest first, through ``idx_procedures_started_at``
        until ``limit`` distinct patients are found (no GROUP BY over every procedure),
        then counts only theirs (``idx_procedures_patient_id_started_at``). A patient
        without any procedure is not listed (the start screen finds every patient).
        """
        if limit <= 0:
            return []
        order: list[str] = []
        seen: set[str] = set()
        cur = self.conn.execute("SELECT patient_id FROM procedures ORDER BY started_at DESC")
        try:
            while len(order) < limit:
                batch = cur.fetchmany(256)
                if not batch:
                    break
                for (pid,) in batch:
                    if pid not in seen:
                        seen.add(pid)
                        order.append(pid)
                        if len(order) == limit:
                            break
        finally:
            cur.close()
        if not order:
            return []
        rows = self.query(
            """SELECT pt.*,
                (SELECT count(*) FROM procedures WHERE patient_id = pt.id) AS procedures_n,
                (SELECT max(started_at) FROM procedures WHERE patient_id = pt.id)
                    AS last_procedure_at
            FROM patients pt WHERE pt.id IN (SELECT value FROM json_each(?))""",
            (json.dumps(order),),
        )
        rank = {pid: i for i, pid in enumerate(order)}
        rows.sort(key=lambda r: rank[r["id"]])
        return rows

    def start_procedure(self, patient_id: str, setup: Mapping[str, Any]) -> str:
        clean = fields.validate(fields.SETUP_FIELDS, setup)
        missing = [
            s.label for n, s in fields.SETUP_FIELDS.items() if s.required and clean.get(n) is None
        ]
        if missing:
            raise fields.ValidationError("setup", "Required: " + ", ".join(missing))
        now = self.now()
        anchor = self.clock.anchor()
        proc_id = new_id()
        stamp = to_text(now)
        row: Row = {
            "id": proc_id,
            "patient_id": patient_id,
            "status": "open",
            **{k: clean.get(k) for k in fields.SETUP_FIELDS},
            "dose_mg": vocab.DOSE_MG.get(clean["regimen"]),
            "csf_removed_ml": 5.0,
            "started_at": stamp,
            "anchor_boot_id": anchor.boot_id if anchor else None,
            "anchor_boottime": anchor.boottime if anchor else None,
            "attempts_n": 0,
            "redirections_n": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        with self.write():
            if (
                self.conn.execute("SELECT 1 FROM patients WHERE id = ?", (patient_id,)).fetchone()
                is None
            ):
                raise NotFound("No such patient")
            open_row = self.conn.execute(
                "SELECT id FROM procedures WHERE patient_id = ? AND status = 'open'",
                (patient_id,),
            ).fetchone()
            if open_row:
                raise Conflict(
                    "This patient already has a procedure in progress: resume it or end it first"
                )
            self._insert("procedures", row)
            start_value = f"{clean.get('sedation') or ''}|{clean.get('sedation_agent') or ''}"
            self._insert_event(proc_id, "start", now, start_value.rstrip("|") or None, seq=1)
        return proc_id

    def _events(self, proc_id: str) -> list[timeline.Event]:
        rows = self.conn.execute(
            "SELECT id, kind, at, value, attempt_id, voided_at FROM events "
            "WHERE procedure_id = ? ORDER BY seq",
            (proc_id,),
        ).fetchall()
        return [
            timeline.Event(
                id=r[0],
                kind=r[1],
                at=from_text(r[2]),
                value=r[3],
                attempt_id=r[4],
                voided=r[5] is not None,
            )
            for r in rows
        ]

    def load_procedure(self, proc_id: str) -> ProcedureView:
        row = self.one("SELECT * FROM procedures WHERE id = ?", (proc_id,))
        if row is None:
            raise NotFound(f"No procedure with id {proc_id}")
        patient = self.patient(row["patient_id"])
        events = self._events(proc_id)
        state = timeline.replay(events, row["level_intended"], row["approach"])
        return ProcedureView(row, events, state, _patient=patient)

    def _insert_event(
        self,
        proc_id: str,
        kind: str,
        at: datetime,
        value: str | None,
        seq: int | None = None,
        attempt_id: str | None = None,
    ) -> str:
        if seq is None:
            seq = self.conn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE procedure_id = ?",
                (proc_id,),
            ).fetchone()[0]
        ev_id = new_id()
        self._insert(
            "events",
            {
                "id": ev_id,
                "procedure_id": proc_id,
                "seq": seq,
                "kind": kind,
                "at": to_text(at),
                "value": value,
                "attempt_id": attempt_id,
                "voided_at": None,
                "recorded_by": self.user,
            },
        )
        return ev_id

    def _stamp(self, events: list[timeline.Event], row: Row | None = None) -> datetime:
        """The time of a new event, kept in order.

        While the machine has not rebooted since the procedure started, the time is
        the stored start plus the monotonic (CLOCK_BOOTTIME) time since then: a wall
        clock stepped forward or back in the middle (NTP, a manual change) moves
        neither the timer nor the stored times. Otherwise it is the wall clock; if that
        stepped back, the event stays at the last stored time (never before it).
        """
        now = self.now()
        if row is not None:
            anchor = ProcedureView(row, [], timeline.State()).anchor
            if anchor is not None and self.clock.anchored(anchor):
                start = from_text(row["started_at"])
                now = start.add(seconds=self.clock.elapsed(start, anchor))
        last = max((e.at for e in events), default=None)
        if last is not None and now < last:
            return last
        return now

    def _for_write(self, proc_id: str) -> tuple[Row, list[timeline.Event], timeline.State]:
        """Inside a write transaction: the procedure row, its events and their state."""
        cur = self.conn.execute("SELECT * FROM procedures WHERE id = ?", (proc_id,))
        values = cur.fetchone()
        if values is None:
            raise NotFound(f"No procedure with id {proc_id}")
        row = dict(zip([c[0] for c in cur.description], values, strict=True))
        events = self._events(proc_id)
        return row, events, self._replay(row, events)

    @staticmethod
    def _replay(row: Row, events: list[timeline.Event]) -> timeline.State:
        return timeline.replay(events, row["level_intended"], row["approach"])

    def _append(
        self,
        row: Row,
        events: list[timeline.Event],
        kind: str,
        value: str | None,
        attempt_id: str | None = None,
    ) -> timeline.Event:
        at = self._stamp(events, row)
        seq = len(events) + 1
        ev_id = self._insert_event(row["id"], kind, at, value, seq=seq, attempt_id=attempt_id)
        event = timeline.Event(ev_id, kind, at, value, attempt_id)
        events.append(event)
        return event

    def record(self, proc_id: str, kind: str, value: str | None = None) -> ProcedureView:
        """Add one bedside action to the timeline; returns the state after the commit."""
        if kind == "note":  # free text: same cleaning and length limit as every text field
            value = fields.NOTE_FIELD.parse(value)
        elif kind == "sedation" and value:
            code, _, agent = value.partition("|")
            agent = fields.SETUP_FIELDS["sedation_agent"].parse(agent)
            value = f"{code}|{agent}" if agent else code
        with self.write():
            row, events, state = self._for_write(proc_id)
            timeline.check(state, kind, value)
            if kind in timeline.DRUG_KINDS:  # an entered drug time: never in the future
                timeline.check_drug_time(state, kind, value, self.now())
            attempt_id = state.current.id if state.current and kind != "attempt" else None
            self._append(row, events, kind, value, attempt_id)
            state = self._sync_derived(row, events)
        return ProcedureView(row, events, state, _load_patient=self.patient)

    def undo(self, proc_id: str) -> tuple[ProcedureView, timeline.Event]:
        """Void the last undoable event (audited, not deleted)."""
        with self.write():
            row, events, state = self._for_write(proc_id)
            target = timeline.check_undo(state)
            self._update(
                "events", target.id, {"voided_at": to_text(self.now())}, current={"voided_at": None}
            )
            events = [
                timeline.Event(e.id, e.kind, e.at, e.value, e.attempt_id, True)
                if e.id == target.id
                else e
                for e in events
            ]
            state = self._sync_derived(row, events)
        return ProcedureView(row, events, state, _load_patient=self.patient), target

    def _sync_derived(self, row: Row, events: list[timeline.Event]) -> timeline.State:
        """Rewrite the attempts rows and the procedure's derived columns from the events.

        Only what changed is written; ``row`` is updated in place to match the database.
        """
        proc_id = row["id"]
        state = self._replay(row, events)
        cur = self.conn.execute("SELECT * FROM attempts WHERE procedure_id = ?", (proc_id,))
        cols = [c[0] for c in cur.description]
        existing = {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}
        for att in [*state.attempts, *state.voided_attempts]:
            values = timeline.attempt_columns(att)
            if att.id in existing:
                if att.voided:
                    values = {"voided": 1}
                self._update("attempts", att.id, values, current=existing[att.id])
            else:
                row_values = {"id": att.id, "procedure_id": proc_id, "at": to_text(att.at)}
                self._insert("attempts", {**row_values, **values})
        derived = timeline.derived_columns(state, to_text)
        # Derived columns are a cache of the audited events: not audited themselves.
        changed = self._update("procedures", proc_id, derived, audit=False, current=row)
        row.update({k: new for k, (_, new) in changed.items()})
        return state

    def end_procedure(self, proc_id: str, outcome: Mapping[str, Any]) -> ProcedureView:
        clean = fields.validate(fields.OUTCOME_FIELDS, outcome)
        fields.check_outcome(clean)
        delivered = clean.get("drug_delivered")
        with self.write():
            row, events, state = self._for_write(proc_id)
            timeline.check_end(state, bool(delivered))
            end = self._append(row, events, "end", "delivered" if delivered else "failed")
            changes = {k: v for k, v in clean.items() if v is not None}
            if "csf_removed_ml" not in changes and "csf" not in state.milestones:
                changes["csf_removed_ml"] = 0.0  # no CSF was reached: none removed
            changes["drug_delivered"] = int(bool(delivered))
            if delivered and not changes.get("level_final") and state.current:
                changes["level_final"] = state.current.level
            changes["status"] = "ended"
            changes["ended_at"] = to_text(end.at)
            changed = self._update("procedures", proc_id, changes, current=row)
            row.update({k: new for k, (_, new) in changed.items()})
            self._sync_derived(row, events)
            self._after_end(proc_id, pendulum.instance(end.at))
        return self.load_procedure(proc_id)

    def _after_end(self, proc_id: str, ended_at: pendulum.DateTime) -> None:
        """Run inside the end transaction: schedule the follow-ups."""
        self._schedule_followups(proc_id, ended_at)

    def set_score(self, proc_id: str, score: Any, *, early_ok: bool = False) -> int:
        """The 5-minute satisfaction score (1–5), stored with when it was taken.

        Before the score opens (a setting, default 4 minutes after the end) it is
        refused with :class:`~sma_log.domain.schedule.TooEarly` unless ``early_ok``
        confirms it; it is then flagged early. A correction of a score already taken
        keeps the time it was first taken.
        """
        value = fields.SCORE_FIELD.parse(score)
        if value is None:
            raise fields.ValidationError("satisfaction_5min", "Score must be 1 to 5")
        with self.write():
            row = self.conn.execute(
                "SELECT status, ended_at FROM procedures WHERE id = ?", (proc_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"No procedure with id {proc_id}")
            if row[0] != "ended" or not row[1]:
                raise Conflict("The 5-minute score is taken after the procedure has ended")
            self._close_score_followup(proc_id, int(value), row[1], early_ok)
            self._update("procedures", proc_id, {"satisfaction_5min": value})
        return int(value)

    def cancel_procedure(self, proc_id: str, reason: str | None = None) -> ProcedureView:
        """Cancel a mistaken start: only before the first skin puncture.

        The procedure is kept with status ``cancelled`` (a ``cancel`` event says who and
        when; the audit log has the change) and counts in no figure: not a failure, no
        follow-up scheduled, no next dose moved.
        """
        reason = fields.NOTE_FIELD.parse(reason) if reason else None
        with self.write():
            row, events, state = self._for_write(proc_id)
            if row["status"] != "open":
                raise timeline.RuleError(
                    "This procedure was already cancelled"
                    if row["status"] == "cancelled"
                    else "This procedure has ended; it can no longer be cancelled"
                )
            timeline.check_cancel(state)
            event = self._append(row, events, "cancel", reason)
            changes = {
                "status": "cancelled",
                "cancelled_at": to_text(event.at),
                "cancel_reason": reason,
            }
            changed = self._update("procedures", proc_id, changes, current=row)
            row.update({k: new for k, (_, new) in changed.items()})
            state = self._sync_derived(row, events)
        return ProcedureView(row, events, state, _load_patient=self.patient)

    def update_procedure(self, proc_id: str, values: Mapping[str, Any]) -> None:
        """Correct set-up or outcome fields after the fact (audited)."""
        specs = {**fields.SETUP_FIELDS, **fields.OUTCOME_FIELDS}
        clean = fields.validate(specs, values)
        if "drug_delivered" in clean and clean["drug_delivered"] is not None:
            clean["drug_delivered"] = int(clean["drug_delivered"])
        if "regimen" in clean:
            clean["dose_mg"] = vocab.DOSE_MG.get(clean["regimen"])
        with self.write():
            self._update("procedures", proc_id, clean)

    def procedure_count(self, patient_id: str) -> int:
        """How many procedures the patient has (any status)."""
        row = self.one("SELECT count(*) AS n FROM procedures WHERE patient_id = ?", (patient_id,))
        return int(row["n"]) if row else 0

    def patient_procedures(self, patient_id: str) -> list[Row]:
        """The patient's procedures, newest first."""
        return self.query(
            "SELECT * FROM procedures WHERE patient_id = ? ORDER BY started_at DESC",
            (patient_id,),
        )

    def procedure_ids(self, patient_id: str) -> list[str]:
        """The ids of the patient's procedures (any status, in no particular order)."""
        rows = self.query("SELECT id FROM procedures WHERE patient_id = ?", (patient_id,))
        return [r["id"] for r in rows]

    def patients_by_code(self) -> list[PatientCode]:
        """Every patient's id, study code and creation time, by study code."""
        rows = self.query("SELECT id, study_code, created_at FROM patients ORDER BY study_code")
        return cast("list[PatientCode]", rows)

    # ------------------------------------------------------------------ audit
    def audit_entries(
        self, table: str | None = None, record_id: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """The audit log's entries (decoded: old and new value, user, instant), oldest
        first, of one table or record if named; ``id`` is the entry's number."""
        where, params = [], []
        if table:
            where.append("a.table_name = ?")
            params.append(table)
        if record_id:
            where.append("a.record_id = ?")
            params.append(record_id)
        try:
            rows = auditlog.entries(self.conn, " AND ".join(where) or "1", params, limit)
        except sqlite3.Error as exc:
            raise StorageError(_friendly(exc)) from None
        return cast("list[AuditEntry]", rows)

    def revision(self, records: list[tuple[str, str]]) -> tuple[int, str | None]:
        """How often these ``(table, record id)`` records changed (audited updates) and
        the last audit time among the entries whose ``at`` may be a stored instant
        (:func:`instant_ok_sql`: bad cells another tool wrote are left out)."""
        at_ok_sql = instant_ok_sql("t.at")
        where = " OR ".join("(a.table_name = ? AND a.record_id = ?)" for _ in records)
        params = [v for pair in records for v in pair]
        n, last = self.conn.execute(
            f"SELECT count(*) FILTER (WHERE {auditlog.action_sql('a')} != 'insert'), "
            f"max(t.at) FILTER (WHERE {at_ok_sql}) FROM audit_log a "
            f"JOIN audit_tx t ON t.n = a.tx WHERE {where}",
            params,
        ).fetchone()
        return int(n or 0), last

    # ------------------------------------------------------------------ the file
    def user_version(self) -> int:
        """The schema version the file says it has (``PRAGMA user_version``)."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def journal_mode(self) -> str:
        return str(self.conn.execute("PRAGMA journal_mode").fetchone()[0])

    def meta(self) -> dict[str, Any]:
        """The ``meta`` table: key → value."""
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def open_procedure_count(self) -> int:
        return int(
            self.conn.execute("SELECT count(*) FROM procedures WHERE status = 'open'").fetchone()[0]
        )

    def integrity_check(self) -> list[str]:
        """SQLite's own check of the whole file: ``["ok"]`` or its problems."""
        return [r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall()]

    def tables(self, *, views: bool = False) -> list[str]:
        """The names of the file's tables (and views), SQLite's own left out, by name."""
        kinds = "('table', 'view')" if views else "('table')"
        rows = self.conn.execute(
            f"SELECT name FROM sqlite_master WHERE type IN {kinds} "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[str]:
        """The column names of a table or view, in order."""
        quoted = '"' + table.replace('"', '""') + '"'
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({quoted})")]

    def load_report(
        self,
        by: str | Sequence[str] | None = None,
        unit: stats.Unit = "procedure",
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        tz: str = "UTC",
        *,
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> stats.Report:
        """The case-series report (:func:`sma_log.storage.reportcache.load_report`)."""
        from . import reportcache

        return reportcache.load_report(self.conn, by, unit, date_from, date_to, tz, where=where)

    def check_report(self) -> list[str]:
        """What differs between the report's kept figures and the tables."""
        from . import reportcache

        return reportcache.check(self.conn)

    def rebuild_report(self) -> None:
        """Rebuild the report's kept figures in one transaction, triggers put back."""
        from . import reportcache

        with self.write() as conn:
            reportcache.rebuild(conn, restore_triggers=True)

    def counts(self, also: Sequence[str] = ()) -> dict[str, int]:
        """Rows per table: the core ones, then ``also`` where the file has them."""
        tables = ["patients", "procedures", "attempts", "events", "audit_log"]
        if also:
            present = set(self.tables())
            tables += [t for t in also if t in present]
        return {
            t: int(self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables
        }


def default_user() -> str:
    for var in ("SMA_LOG_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "unknown"
