"""Follow-ups in storage: scheduling at the end of a procedure, the queue, entry.

A mixin of the Store (it uses the Store's transaction, insert/update and audit
helpers, declared below; it never imports the Store). The arithmetic (due times, status, validation,
next dose) lives in the domain core; this module only reads and writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pendulum

from ..domain import dosing, fields, schedule
from ..domain.clock import from_text, to_text
from ..domain.ids import new_id
from .db import Row
from .errors import Conflict, NotFound
from .rows import ContactAttempt

FOLLOWUP_KIND_NAMES = tuple(kind for kind, _ in schedule.FOLLOWUP_KINDS)
BOOL_FIELDS = tuple(n for n, s in fields.FOLLOWUP_FIELDS.items() if s.kind == "bool")


@dataclass(frozen=True)
class ScoreDue:
    """The 5-minute score of one procedure: when it opens and is due (UTC)."""

    study_code: str
    ended_at: pendulum.DateTime
    opens_at: pendulum.DateTime
    due_at: pendulum.DateTime
    score: int | None
    #: After this a score is stored flagged late (and left out of the in-window figure).
    closes_at: pendulum.DateTime | None = None


@dataclass
class QueueItem:
    """One follow-up as the queue shows it: the stored row plus what is computed now."""

    row: Row
    status: str  # upcoming / due / overdue / missed, or the closed state
    due: pendulum.DateTime

    @property
    def id(self) -> str:
        return str(self.row["id"])


def _db_value(name: str, value: Any) -> Any:
    if name in BOOL_FIELDS and value is not None:
        return int(bool(value))
    return value


def queue_rows_where(every_patient: bool) -> dict[str, str]:
    """The rows the follow-up queue (and with ``every_patient`` the calendar's next doses)
    is made from, as WHERE clauses on a table aliased ``t``: ``all`` and ``open followups``
    of ``followups``, ``procedures``, ``patients``."""
    open_fu = "SELECT procedure_id FROM followups WHERE state = 'open'"
    queue_patients = f"SELECT patient_id FROM procedures WHERE id IN ({open_fu})"
    return {
        "all": "1",
        "open followups": "t.state = 'open'",
        "procedures": "1" if every_patient else f"t.patient_id IN ({queue_patients})",
        "patients": "1" if every_patient else f"t.id IN ({queue_patients})",
    }


class FollowupStore:
    """Follow-up reads and writes (mixed into Store)."""

    # Provided by Store (declared for the type checker only: at run time the Store's own
    # methods are the only ones there are).
    conn: sqlite3.Connection
    user: str

    if TYPE_CHECKING:

        def now(self) -> pendulum.DateTime: ...
        def write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def query(self, sql: str, params: Any = ()) -> list[Row]: ...
        def one(self, sql: str, params: Any = ()) -> Row | None: ...
        def _insert(self, table: str, row: Row) -> None: ...
        def _update(
            self,
            table: str,
            record_id: str,
            changes: Mapping[str, Any],
            audit: bool = True,
            current: Row | None = None,
        ) -> dict[str, tuple[Any, Any]]: ...

    windows: dict[str, schedule.Window] = dict(schedule.DEFAULT_WINDOWS)

    def set_window(self, before_hours: float, after_hours: float) -> None:
        """The 72-hour window (a setting); the 5-minute score keeps its own."""
        self.windows = {**self.windows, "day3": schedule.Window(before_hours, after_hours)}

    def set_score_earliest(self, minutes: float) -> None:
        """How many minutes after the end the 5-minute score may first be taken (a setting)."""
        self.windows = {**self.windows, "score_5min": schedule.score_window(minutes)}

    #: Days after its window closes that a missed follow-up stays in the queue (a setting).
    missed_after_days: float = schedule.DEFAULT_MISSED_AFTER_DAYS

    def set_missed_after(self, days: float) -> None:
        """How many days after its window a missed follow-up leaves the queue (a setting)."""
        if not (days >= 0):
            raise ValueError("missed_after_days must be 0 or more")
        self.missed_after_days = days

    def window(self, kind: str) -> schedule.Window:
        return self.windows.get(kind, schedule.default_window(kind))

    def opens_at(self, kind: str, ended_at: pendulum.DateTime) -> pendulum.DateTime:
        """When a follow-up of ``kind`` of a procedure that ended at ``ended_at`` opens."""
        return schedule.opens_at(kind, ended_at, self.window(kind))

    def _taken(self, row: Row, ended_at: str, early_ok: bool) -> dict[str, Any]:
        """The closing columns of a follow-up taken now (raises TooEarly if unconfirmed)."""
        now = self.now()
        end = from_text(ended_at)
        when = schedule.check_taken(
            row["kind"], end, now, self.window(row["kind"]), early_ok=early_ok
        )
        return {
            "state": "done",
            "completed_at": to_text(now),
            "late": int(when == "late"),
            "early": int(when == "early"),
            "offset_min": schedule.offset_minutes(end, now),
        }

    # ------------------------------------------------------------ scheduling
    def _schedule_followups(self, proc_id: str, ended_at: pendulum.DateTime) -> None:
        stamp = to_text(self.now())
        for kind, _ in schedule.FOLLOWUP_KINDS:
            self._insert(
                "followups",
                {
                    "id": new_id(),
                    "procedure_id": proc_id,
                    "kind": kind,
                    "due_at": to_text(schedule.due_at(kind, ended_at)),
                    "state": "open",
                    "contact_attempts_n": 0,
                    "late": 0,
                    "early": 0,
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )

    # ------------------------------------------------------------ reading
    def followup(self, followup_id: str) -> Row:
        row = self.one(
            """SELECT f.*, pt.study_code, pt.id AS patient_id, p.started_at, p.ended_at,
                      p.operator, p.status AS procedure_status
            FROM followups f JOIN procedures p ON p.id = f.procedure_id
            JOIN patients pt ON pt.id = p.patient_id WHERE f.id = ?""",
            (followup_id,),
        )
        if row is None:
            raise NotFound(f"No follow-up with id {followup_id}")
        return row

    def status_of(self, row: Mapping[str, Any], now: pendulum.DateTime | None = None) -> str:
        if row["state"] != "open":
            return str(row["state"])
        window = self.windows.get(row["kind"], schedule.default_window(row["kind"]))
        return schedule.status(row["kind"], from_text(row["due_at"]), now or self.now(), window)

    def followup_queue(
        self,
        statuses: tuple[str, ...] | None = None,
        now: pendulum.DateTime | None = None,
        include_closed: bool = False,
        closed_limit: int = 500,
        *,
        missed_too: bool = False,
        missed_after_days: float | None = None,
    ) -> list[QueueItem]:
        """The open follow-ups that need action (overdue first, then due, upcoming,
        missed; by due time), and with ``include_closed`` the most recently closed ones.

        A follow-up missed for longer than ``missed_after_days`` (default: the
        store's setting) after its window closed is left out unless ``missed_too``
        (:func:`~sma_log.domain.schedule.long_missed`): the query reads only the open
        follow-ups due from the earliest cut-off on, through ``idx_followups_state_due_at``,
        so the queue costs what it holds, not what the file holds.
        """
        now = now or self.now()
        days = self.missed_after_days if missed_after_days is None else missed_after_days
        select = """SELECT f.*, pt.study_code, pt.id AS patient_id, p.started_at, p.ended_at,
                       p.operator
            FROM followups f JOIN procedures p ON p.id = f.procedure_id
            JOIN patients pt ON pt.id = p.patient_id"""
        if missed_too:
            rows = self.query(f"{select} WHERE f.state = 'open' ORDER BY f.due_at")
        else:
            cutoffs = {kind: self.queue_cutoff(kind, now, days) for kind in FOLLOWUP_KIND_NAMES}
            rows = self.query(
                f"{select} WHERE f.state = 'open' AND f.due_at >= ? ORDER BY f.due_at",
                (to_text(min(cutoffs.values())),),
            )
        if include_closed:
            rows += self.query(
                f"{select} WHERE f.state != 'open' ORDER BY f.completed_at DESC LIMIT ?",
                (closed_limit,),
            )
        bounds = {k: schedule.status_bounds(k, now, self.window(k)) for k in FOLLOWUP_KIND_NAMES}
        items = []
        for r in rows:
            due = from_text(r["due_at"])
            if r["state"] != "open":
                state = str(r["state"])
            elif r["kind"] in bounds:
                state = schedule.status_at(due, bounds[r["kind"]])
            else:
                state = self.status_of(r, now)  # an unknown kind: refused there
            items.append(QueueItem(r, state, due))
        if not missed_too:
            items = [  # the exact rule per kind (the query read from the earliest cut-off)
                i
                for i in items
                if i.row["state"] != "open" or i.due >= cutoffs.get(i.row["kind"], i.due)
            ]
        if statuses is not None:
            items = [i for i in items if i.status in statuses]
        # schedule.queue_key's order; every due here is UTC already (from_text)
        items.sort(key=lambda i: (schedule.status_rank(i.status), i.due))
        return items

    def long_missed_counts(
        self, now: pendulum.DateTime | None = None, missed_after_days: float | None = None
    ) -> dict[str, int]:
        """Per kind, the open follow-ups missed for longer than ``missed_after_days``:
        the ones left out of the queue (for the report's completeness line). One
        indexed count per kind (``idx_followups_state_due_at``)."""
        now = now or self.now()
        out: dict[str, int] = {}
        for kind in FOLLOWUP_KIND_NAMES:
            cut = to_text(self.queue_cutoff(kind, now, missed_after_days))
            row = self.one(
                "SELECT count(*) AS n FROM followups "
                "WHERE state = 'open' AND due_at < ? AND kind = ?",
                (cut, kind),
            )
            out[kind] = int(row["n"]) if row else 0
        return out

    def queue_cutoff(
        self, kind: str, now: pendulum.DateTime, missed_after_days: float | None = None
    ) -> pendulum.DateTime:
        """The earliest due time an open follow-up of ``kind`` has to be in the queue."""
        days = self.missed_after_days if missed_after_days is None else missed_after_days
        return schedule.queue_cutoff(kind, now, self.window(kind), days)

    def patient_followups(self, patient_id: str) -> list[Row]:
        """The patient's follow-ups with their procedure's end, latest due first."""
        return self.query(
            """SELECT f.*, p.ended_at FROM followups f JOIN procedures p ON p.id = f.procedure_id
            WHERE p.patient_id = ? ORDER BY f.due_at DESC""",
            (patient_id,),
        )

    def contact_attempts(self, followup_id: str) -> list[ContactAttempt]:
        """The calls logged without an answer (undone ones left out)."""
        rows = self.query(
            "SELECT * FROM contact_attempts WHERE followup_id = ? AND voided_at IS NULL "
            "ORDER BY at",
            (followup_id,),
        )
        return cast("list[ContactAttempt]", rows)

    def score_due(self, proc_id: str) -> ScoreDue:
        """What the 5-minute score dialog shows: the end, when the score opens, its due time."""
        row = self.one(
            """SELECT p.status, p.ended_at, p.satisfaction_5min, pt.study_code
            FROM procedures p JOIN patients pt ON pt.id = p.patient_id WHERE p.id = ?""",
            (proc_id,),
        )
        if row is None:
            raise NotFound(f"No procedure with id {proc_id}")
        if row["status"] != "ended" or not row["ended_at"]:
            raise Conflict("The 5-minute score is taken after the procedure has ended")
        end = from_text(row["ended_at"])
        return ScoreDue(
            study_code=str(row["study_code"]),
            ended_at=end,
            opens_at=self.opens_at("score_5min", end),
            due_at=schedule.due_at("score_5min", end),
            score=row["satisfaction_5min"],
            closes_at=schedule.due_at("score_5min", end) + self.window("score_5min").after,
        )

    # ------------------------------------------------------------ writing
    def _open_followup_row(self, followup_id: str) -> Row:
        """Inside a write: the follow-up row, with its procedure's end as ``ended_at``."""
        cur = self.conn.execute(
            "SELECT f.*, p.status AS procedure_status, p.ended_at AS procedure_ended_at "
            "FROM followups f JOIN procedures p ON p.id = f.procedure_id WHERE f.id = ?",
            (followup_id,),
        )
        values = cur.fetchone()
        if values is None:
            raise NotFound(f"No follow-up with id {followup_id}")
        row = dict(zip([c[0] for c in cur.description], values, strict=True))
        if row.pop("procedure_status") != "ended" or not row["procedure_ended_at"]:
            raise Conflict("The procedure has not ended: its follow-up starts when it ends")
        return row

    def record_no_answer(self, followup_id: str, note: str | None = None) -> int:
        """A call nobody answered: logged with its time; the follow-up stays in the queue."""
        note = fields.NOTE_FIELD.parse(note) if note else None
        with self.write():
            row = self._open_followup_row(followup_id)
            if row["state"] != "open":
                raise Conflict("This follow-up is already closed")
            at = to_text(self.now())
            self._insert(
                "contact_attempts",
                {
                    "id": new_id(),
                    "followup_id": followup_id,
                    "at": at,
                    "outcome": "no_answer",
                    "by_user": self.user,
                    "note": note,
                },
            )
            n = int(row["contact_attempts_n"] or 0) + 1
            self._update(
                "followups",
                followup_id,
                {"contact_attempts_n": n, "last_contact_at": at},
                current=row,
            )
        return n

    def undo_no_answer(self, followup_id: str) -> int:
        """Void the latest no-answer call of an open follow-up (audited, not deleted).

        Returns the number of calls left.
        """
        with self.write():
            row = self._open_followup_row(followup_id)
            if row["state"] != "open":
                raise Conflict("This follow-up is closed: reopen it first")
            last = self.conn.execute(
                "SELECT id FROM contact_attempts WHERE followup_id = ? AND voided_at IS NULL "
                "AND outcome = 'no_answer' ORDER BY at DESC, id DESC LIMIT 1",
                (followup_id,),
            ).fetchone()
            if last is None:
                raise Conflict("No call without answer to undo on this follow-up")
            self._update(
                "contact_attempts",
                last[0],
                {"voided_at": to_text(self.now())},
                current={"voided_at": None},
            )
            previous = self.conn.execute(
                "SELECT max(at) FROM contact_attempts WHERE followup_id = ? AND voided_at IS NULL",
                (followup_id,),
            ).fetchone()[0]
            n = max(0, int(row["contact_attempts_n"] or 0) - 1)
            self._update(
                "followups",
                followup_id,
                {"contact_attempts_n": n, "last_contact_at": previous},
                current=row,
            )
        return n

    def complete_followup(
        self, followup_id: str, values: Mapping[str, Any], *, early_ok: bool = False
    ) -> Row:
        """Enter (or correct) the follow-up's answers; audited field by field.

        Entering after the window is allowed and flagged ``late``; before the window
        opens it is refused (:class:`~sma_log.domain.schedule.TooEarly`) unless
        ``early_ok`` confirms it, and then flagged ``early``. The instant it was taken
        and its offset from the end of the procedure are stored.
        """
        with self.write():
            row = self._open_followup_row(followup_id)
            required = None  # completing an open follow-up: every item
            if row["state"] == "done":  # a correction: what it held stays answered
                needed = schedule.REQUIRED_BY_KIND.get(row["kind"], ())
                keep = schedule.REQUIRED_TO_KEEP.get(row["kind"], ())
                required = tuple(n for n in needed if n in keep or row.get(n) is not None)
            clean, errors = schedule.clean_followup(
                values, completing=True, kind=row["kind"], required=required
            )
            if errors:
                name, message = next(iter(errors.items()))
                raise fields.ValidationError(name, message)
            if row["state"] in ("unreachable", "declined"):
                raise Conflict(
                    "This follow-up was closed as "
                    f"{row['state']}; reopen it before entering answers"
                )
            changes: dict[str, Any] = {
                name: _db_value(name, clean.get(name)) for name in fields.FOLLOWUP_FIELDS
            }
            if row["state"] == "open":
                changes.update(self._taken(row, row["procedure_ended_at"], early_ok))
            self._update("followups", followup_id, changes, current=row)
            if row["kind"] == "score_5min" and clean.get("satisfaction") is not None:
                self._update(
                    "procedures", row["procedure_id"], {"satisfaction_5min": clean["satisfaction"]}
                )
        return self.followup(followup_id)

    def close_followup(self, followup_id: str, state: str, reason: str) -> None:
        """Mark "not reachable" or "declined", with a reason."""
        if state not in ("unreachable", "declined"):
            raise fields.ValidationError("state", "Close as unreachable or declined")
        reason = fields.NOTE_FIELD.parse(reason) or ""
        if not reason:
            raise fields.ValidationError("closed_reason", "Give a reason")
        with self.write():
            row = self._open_followup_row(followup_id)
            if row["state"] != "open":
                raise Conflict("This follow-up is already closed")
            self._update(
                "followups",
                followup_id,
                {"state": state, "closed_reason": reason, "completed_at": to_text(self.now())},
                current=row,
            )

    def reopen_followup(self, followup_id: str) -> None:
        """Back to open (undoes a close, or a completion to take it again).

        Reopening a completed follow-up takes back when it was taken (taken again, it
        is judged again), and a reopened 5-minute score takes back the score itself,
        also from the procedure: closed afterwards as not reachable, it must not leave a
        score behind. A 72-hour follow-up keeps its answers for the next entry. Every
        cleared value is in the audit log.
        """
        with self.write():
            row = self._open_followup_row(followup_id)
            changes: dict[str, Any] = {
                "state": "open",
                "closed_reason": None,
                "completed_at": None,
                "early": 0,
                "late": 0,
                "offset_min": None,
            }
            if row["state"] == "done" and row["kind"] == "score_5min":
                changes["satisfaction"] = None
                self._update("procedures", row["procedure_id"], {"satisfaction_5min": None})
            row.pop("procedure_ended_at", None)
            self._update("followups", followup_id, changes, current=row)

    def _close_score_followup(
        self, proc_id: str, score: int, ended_at: str, early_ok: bool = False
    ) -> None:
        """The 5-minute score entered at the bedside closes its follow-up (when it was
        taken, and whether early or late, are stored with it)."""
        cur = self.conn.execute(
            "SELECT * FROM followups WHERE procedure_id = ? AND kind = 'score_5min'", (proc_id,)
        )
        values = cur.fetchone()
        if values is None:
            raise Conflict("This procedure has no 5-minute score follow-up")
        row = dict(zip([c[0] for c in cur.description], values, strict=True))
        if row["state"] in ("unreachable", "declined"):
            raise Conflict(
                f"The 5-minute score was closed as {row['state']}; reopen it before scoring"
            )
        changes: dict[str, Any] = {"satisfaction": score}
        if row["state"] == "open":
            changes.update(self._taken(row, ended_at, early_ok))
        self._update("followups", row["id"], changes, current=row)

    # ------------------------------------------------------------ next dose
    def doses(self, patient_id: str, tz: str | pendulum.Timezone = "UTC") -> list[dosing.Dose]:
        """Delivered doses of one patient, as local calendar dates."""
        rows = self.query(
            "SELECT ended_at, started_at, regimen FROM procedures "
            "WHERE patient_id = ? AND status = 'ended' AND drug_delivered = 1 "
            "ORDER BY started_at",
            (patient_id,),
        )
        return [
            dosing.Dose(
                from_text(r["ended_at"] or r["started_at"]).in_timezone(tz).date(), r["regimen"]
            )
            for r in rows
            if r["regimen"]
        ]

    def next_doses(
        self,
        patient_ids: Iterable[str],
        label: str = "eu",
        tz: str | pendulum.Timezone = "UTC",
        today: pendulum.Date | None = None,
    ) -> dict[str, dosing.NextDose | ValueError | None]:
        """:meth:`next_dose` of each of ``patient_ids`` in one query (their delivered
        doses through ``idx_procedures_patient_id_started_at``): only the patients asked
        for are read. A patient whose dose time or regimen cannot be read maps to the
        ValueError :meth:`next_dose` would raise."""
        wanted = list(dict.fromkeys(patient_ids))
        if not wanted:
            return {}
        zone = pendulum.timezone(tz) if isinstance(tz, str) else tz
        today = today or self.now().in_timezone(zone).date()
        rows = self.query(
            # Patient by patient through idx_procedures_patient_id_started_at: "+status"
            # keeps the planner (the file has no statistics) from reading every ended
            # procedure through idx_procedures_status instead.
            "SELECT patient_id, ended_at, started_at, regimen FROM procedures "
            "WHERE patient_id IN (SELECT value FROM json_each(?)) AND +status = 'ended' "
            "AND drug_delivered = 1 ORDER BY patient_id, started_at",
            (json.dumps(wanted),),
        )
        doses: dict[str, list[dosing.Dose] | ValueError] = {pid: [] for pid in wanted}
        for r in rows:
            mine = doses.get(r["patient_id"])
            if not isinstance(mine, list) or not r["regimen"]:
                continue
            try:
                day = from_text(r["ended_at"] or r["started_at"]).in_timezone(zone).date()
            except ValueError as exc:
                doses[r["patient_id"]] = exc
                continue
            mine.append(dosing.Dose(day, r["regimen"]))
        out: dict[str, dosing.NextDose | ValueError | None] = {}
        for pid, found in doses.items():
            if isinstance(found, ValueError):
                out[pid] = found
                continue
            if not found:
                out[pid] = None
                continue
            try:
                out[pid] = dosing.next_dose(found, label=label, today=today)
            except ValueError as exc:
                out[pid] = exc
        return out

    def next_dose(
        self,
        patient_id: str,
        label: str = "eu",
        tz: str | pendulum.Timezone = "UTC",  # a Timezone saves parsing it per patient
        today: pendulum.Date | None = None,
    ) -> dosing.NextDose | None:
        doses = self.doses(patient_id, tz)
        if not doses:
            return None
        today = today or self.now().in_timezone(tz).date()
        return dosing.next_dose(doses, label=label, today=today)
