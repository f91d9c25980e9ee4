"""Pre-dose time-out, lab results and drug timing in the file (issue 14).

Functions taking the :class:`~sma_log.storage.store.Store`: each write is one
transaction through ``Store.write()`` / ``_insert`` / ``_update``, so every change is
in the audit log; every value is judged first by :mod:`sma_log.domain.predose` (bad
input: a :class:`~sma_log.domain.fields.ValidationError` or
:class:`~sma_log.domain.timeline.RuleError`, nothing saved).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pendulum

from ..domain import fields, predose, timeline, vocab
from ..domain.clock import from_text, to_text
from ..domain.ids import new_id
from .db import Row
from .errors import Conflict, NotFound

if TYPE_CHECKING:
    from .store import ProcedureView, Store

#: The ``timeouts`` column holding the id of the result used, per test.
LAB_COLUMNS: dict[str, str] = {t: f"{t}_lab_id" for t in predose.LAB_UNITS}


def _today(store: Store, tz: str) -> _dt.date:
    return _dt.date.fromisoformat(store.now().in_timezone(tz).date().isoformat())


# ---------------------------------------------------------------- labs
def add_lab(
    store: Store,
    patient_id: str,
    test: Any,
    value: Any,
    taken_on: Any,
    *,
    unit: Any = None,
    source: str = "patient_page",
    rules: predose.Rules | None = None,
    tz: str = "UTC",
) -> Row:
    """Store one result (validated by :func:`sma_log.domain.predose.parse_lab`)."""
    rules = rules or predose.Rules()
    if source not in vocab.codes(vocab.LAB_SOURCES):
        raise fields.ValidationError("source", f"Unknown source: {source}")
    code, number, canonical, when = predose.parse_lab(
        test, value, taken_on, unit=unit, today=_today(store, tz), rules=rules
    )
    now = to_text(store.now())
    row: Row = {
        "id": new_id(),
        "patient_id": patient_id,
        "test": code,
        "value": number,
        "unit": canonical,
        "taken_on": when.isoformat(),
        "source": source,
        "voided_at": None,
        "created_at": now,
        "updated_at": now,
    }
    with store.write() as conn:
        if conn.execute("SELECT 1 FROM patients WHERE id = ?", (patient_id,)).fetchone() is None:
            raise NotFound("No such patient")
        if lab_exists(store, patient_id, code, when, number):
            raise Conflict(
                f"This result is already stored ({code} {number:g} {canonical} on "
                f"{when.isoformat()}); nothing added"
            )
        store._insert("labs", row)
    return row


def lab_exists(store: Store, patient_id: str, test: str, taken_on: _dt.date, value: float) -> bool:
    """A result identical to one stored and not voided (same patient, test, date and
    value): the same result entered twice (a second tap, a lab export imported again),
    never stored twice, whatever the door (patient page, bedside, CLI, import)."""
    return (
        store.one(
            "SELECT 1 FROM labs WHERE patient_id = ? AND test = ? AND taken_on = ? "
            "AND value = ? AND voided_at IS NULL",
            (patient_id, test, taken_on.isoformat(), value),
        )
        is not None
    )


def void_lab(store: Store, lab_id: str) -> None:
    """Void a mistaken result (kept, audited; it is no longer used)."""
    with store.write() as conn:
        found = conn.execute("SELECT voided_at FROM labs WHERE id = ?", (lab_id,)).fetchone()
        if found is None:
            raise NotFound(f"No lab result with id {lab_id}")
        if found[0] is not None:
            raise Conflict("This result was already voided")
        store._update("labs", lab_id, {"voided_at": to_text(store.now())})


def patient_labs(store: Store, patient_id: str) -> list[Row]:
    """The patient's results not voided, newest first."""
    return store.query(
        "SELECT * FROM labs WHERE patient_id = ? AND voided_at IS NULL "
        "ORDER BY taken_on DESC, created_at DESC",
        (patient_id,),
    )


def lab_result(row: Mapping[str, Any]) -> predose.LabResult:
    return predose.LabResult(
        id=str(row["id"]),
        test=str(row["test"]),
        value=float(row["value"]),
        unit=str(row["unit"] or ""),
        taken_on=_dt.date.fromisoformat(str(row["taken_on"])),
        source=row.get("source"),
    )


def latest_labs(
    store: Store,
    patient_id: str,
    on: _dt.date | None = None,
    rules: predose.Rules | None = None,
    tz: str = "UTC",
) -> dict[str, predose.LabResult]:
    """The latest usable result of each test on ``on`` (default today)."""
    rules = rules or predose.Rules()
    results = [lab_result(r) for r in patient_labs(store, patient_id)]
    return predose.usable_labs(results, on or _today(store, tz), rules)


# ---------------------------------------------------------------- time-outs
@dataclass
class TimeoutView:
    """A procedure's time-out as stored, with the domain's judgement of it now."""

    procedure_id: str
    row: Row | None
    items: dict[str, Any]
    labs: dict[str, predose.LabResult]
    check: predose.Check
    confirmed_at: pendulum.DateTime | None = None
    confirmed_by: str | None = None
    reason: str | None = None
    stored_flags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


ITEM_COLUMNS = (*fields.TIMEOUT_FIELDS, "antithrombotic_last_at")


def _items(row: Row | None) -> dict[str, Any]:
    if row is None:
        return {k: None for k in ITEM_COLUMNS}
    out = {k: row.get(k) for k in ITEM_COLUMNS}
    for k in ("consent", "vp_shunt"):
        if out[k] is not None:
            out[k] = bool(out[k])
    return out


def _procedure(store: Store, proc_id: str) -> Row:
    row = store.one(
        "SELECT id, patient_id, status, started_at FROM procedures WHERE id = ?", (proc_id,)
    )
    if row is None:
        raise NotFound(f"No procedure with id {proc_id}")
    return row


def _view(store: Store, proc: Row, row: Row | None, rules: predose.Rules, tz: str) -> TimeoutView:
    items = _items(row)
    if row is not None and row.get("confirmed_at"):
        # frozen at confirmation: the results it used
        ids = [row.get(c) for c in LAB_COLUMNS.values() if row.get(c)]
        labs: dict[str, predose.LabResult] = {}
        if ids:
            marks = ", ".join("?" for _ in ids)
            for r in store.query(f"SELECT * FROM labs WHERE id IN ({marks})", ids):
                labs[str(r["test"])] = lab_result(r)
    else:
        on = from_text(proc["started_at"]).in_timezone(tz).date()
        labs = latest_labs(
            store, proc["patient_id"], _dt.date.fromisoformat(on.isoformat()), rules, tz
        )
    if row is not None and row.get("confirmed_at"):
        # what was required when it was confirmed (settings may have changed since)
        req = frozenset(filter(None, str(row.get("required") or "").split(",")))
        rules = replace(rules, required=req)
    check = predose.evaluate(items, labs, rules)
    return TimeoutView(
        procedure_id=proc["id"],
        row=row,
        items=items,
        labs=labs,
        check=check,
        confirmed_at=from_text(row["confirmed_at"]) if row and row.get("confirmed_at") else None,
        confirmed_by=row.get("confirmed_by") if row else None,
        reason=row.get("reason") if row else None,
        stored_flags=tuple(filter(None, str((row or {}).get("flags") or "").split(","))),
    )


def _timeout_row(store: Store, proc_id: str) -> Row | None:
    return store.one("SELECT * FROM timeouts WHERE procedure_id = ?", (proc_id,))


def timeout_view(
    store: Store, proc_id: str, rules: predose.Rules | None = None, tz: str = "UTC"
) -> TimeoutView:
    rules = rules or predose.Rules()
    return _view(store, _procedure(store, proc_id), _timeout_row(store, proc_id), rules, tz)


def _check_open(proc: Row) -> None:
    if proc["status"] == "cancelled":
        raise timeline.RuleError("This procedure was cancelled; its time-out cannot change")


def save_timeout(
    store: Store,
    proc_id: str,
    values: Mapping[str, Any],
    rules: predose.Rules | None = None,
    tz: str = "UTC",
) -> TimeoutView:
    """Record some of the time-out's answers (the rest kept); bad value: nothing saved.

    Changing an answer of a confirmed time-out un-confirms it (it must be confirmed
    again, with a reason if one is then needed)."""
    rules = rules or predose.Rules()
    clean = predose.clean_items(values, store.now())
    with store.write():
        proc = _procedure(store, proc_id)
        _check_open(proc)
        row = _timeout_row(store, proc_id)
        if row is None:
            now = to_text(store.now())
            store._insert(
                "timeouts",
                {
                    "id": new_id(),
                    "procedure_id": proc_id,
                    **clean,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        else:
            changes = dict(clean)
            if any(row.get(k) != v for k, v in clean.items()) and row.get("confirmed_at"):
                changes["confirmed_at"] = None
                changes["confirmed_by"] = None
            store._update("timeouts", row["id"], changes, current=row)
    return timeout_view(store, proc_id, rules, tz)


def confirm_timeout(
    store: Store,
    proc_id: str,
    rules: predose.Rules | None = None,
    reason: str | None = None,
    tz: str = "UTC",
) -> TimeoutView:
    """Confirm the time-out: the labs it used, what was missing or flagged and the
    reason are frozen with who confirmed it and when. Missing or flagged without a
    reason: :class:`~sma_log.domain.predose.ReasonNeeded`, nothing saved."""
    rules = rules or predose.Rules()
    text = fields.TIMEOUT_REASON_FIELD.parse(reason)
    with store.write():
        _check_open(_procedure(store, proc_id))
        _confirm_inside(store, proc_id, rules, text, tz, always=True)
    return timeout_view(store, proc_id, rules, tz)


# ---------------------------------------------------------------- drug timing
def record_drug_time(
    store: Store, proc_id: str, kind: str, at: _dt.datetime | None = None
) -> ProcedureView:
    """The vial left the fridge / the drug was drawn up: now (``at`` None, a key) or at
    an entered earlier instant. Undone like any bedside key (``Store.undo``)."""
    if kind not in timeline.DRUG_KINDS:
        raise timeline.RuleError(f"Unknown drug time: {kind}")
    value = None
    if at is not None:
        when = pendulum.instance(at)
        if when > store.now():
            raise timeline.RuleError(
                f"{timeline.EVENT_LABELS[kind]}: the time entered is in the future"
            )
        value = to_text(when)
    return store.record(proc_id, kind, value)


def record_first_attempt(
    store: Store,
    proc_id: str,
    rules: predose.Rules | None = None,
    reason: str | None = None,
    tz: str = "UTC",
) -> ProcedureView:
    """The attempt key, with the time-out confirmed in the same transaction.

    Before the first attempt (undone ones aside) of a procedure whose time-out is not
    confirmed: when something of it was answered or an item is required, it is
    judged and confirmed with the attempt (missing or flagged without a reason:
    :class:`~sma_log.domain.predose.ReasonNeeded`, nothing saved); with nothing answered
    and nothing required, no time-out is written. Otherwise a plain attempt. One
    ``BEGIN IMMEDIATE``: the time-out and the puncture are committed together or not
    at all."""
    from .store import ProcedureView

    rules = rules or predose.Rules()
    text = fields.TIMEOUT_REASON_FIELD.parse(reason)
    with store.write():
        row, events, state = store._for_write(proc_id)
        timeline.check(state, "attempt")
        if not state.attempts:
            _confirm_inside(store, proc_id, rules, text, tz)
        store._append(row, events, "attempt", None, None)
        state = store._sync_derived(row, events)
    return ProcedureView(row, events, state, _load_patient=store.patient)


def _confirm_inside(
    store: Store,
    proc_id: str,
    rules: predose.Rules,
    text: str | None,
    tz: str,
    always: bool = False,
) -> None:
    """Inside a write transaction: confirm an unconfirmed time-out (see above);
    ``always`` (the confirm itself): even with nothing answered and nothing required,
    and a confirmed one is judged and confirmed anew."""
    proc = _procedure(store, proc_id)
    row = _timeout_row(store, proc_id)
    if row is not None and row.get("confirmed_at") and not always:
        return
    if row is None and not rules.required and not always:
        view = _view(store, proc, None, rules, tz)
        if not view.check.needs_reason:  # nothing asked, nothing flagged: no time-out
            return
    view = _view(store, proc, None if row is None else {**row, "confirmed_at": None}, rules, tz)
    check = view.check
    predose.check_confirm(check, text)
    now = to_text(store.now())
    values: dict[str, Any] = {
        **{col: (view.labs[t].id if t in view.labs else None) for t, col in LAB_COLUMNS.items()},
        "required": ",".join(check.required),
        "missing": ",".join(check.missing),
        "flags": ",".join(check.flags),
        "complete": int(check.complete),
        "reason": text,
        "confirmed_at": now,
        "confirmed_by": store.user,
    }
    if row is None:
        store._insert(
            "timeouts",
            {
                "id": new_id(),
                "procedure_id": proc_id,
                **values,
                "created_at": now,
                "updated_at": now,
            },
        )
    else:
        store._update("timeouts", row["id"], values, current=row)
