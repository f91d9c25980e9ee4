"""The audit rows the app would have written for a batch of demo records.

The demo draws each record's final state; the app reaches it through a start, the
bedside keys, an end, a score, calls and a completion, each one transaction with its
audit rows. This module writes those rows in the log's stored form (schema 5,
:mod:`sma_log.storage.auditlog`): one ``audit_tx`` per instant, an insert row per
record (no copy of the row; ``kept`` where the app's insert held columns it rewrites
unaudited), and an update row per field each action changed, with its old value:

* a procedure: inserted at its start as ``start_procedure`` inserts it (open, the
  outcome empty, 5 ml of CSF to remove, no score); ended (outcome, status, end time),
  or cancelled; scored when its 5-minute score was taken;
* its events: inserted at their instants; an undone one voided when it was undone;
* its attempts: none (a cache of the events, not audited: ``auditlog.CACHE_TABLES``);
* its follow-ups: scheduled at the end, each call (``contact_attempts_n``,
  ``last_contact_at``) and then the completion or close;
* a patient and a call: inserted.

Whatever the record's final state holds that these steps do not reach is changed in
its last step, so the log replayed backward from the tables always gives back the
app's insert (tests/test_demo.py checks it on a demo file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..domain import timeline
from ..domain.clock import to_text
from ..storage.auditlog import INSERT_FIELD, UNAUDITED, audit_text
from .columns import DEMO_USER, TABLE_COLUMNS, Batch

Record = dict[str, Any]
#: Columns no audit row follows: the time of the last change, and a procedure's timeline
#: cache (rewritten with every event).
_CACHE = frozenset(timeline.derived_columns(timeline.replay([], None, None), to_text))
_OUTCOME = (
    "drug_delivered",
    "level_final",
    "csf_appearance",
    "failure_reason",
    "fallback",
    "note",
)


def _same(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    return False


class AuditRows:
    """Numbers ``audit_tx`` and ``audit_log`` rows across the batches of one demo."""

    def __init__(self) -> None:
        self.tx_n = 0
        self.row_n = 0
        self._rows: list[tuple[str, int, str, str, str, Any, str | None]] = []
        self._last: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------ one record
    def _add(self, at: str, table: str, rid: str, field: str, old: Any, kept: str | None) -> None:
        # a record's rows stay in the order written, whatever the instants say
        at = max(at, self._last.get((table, rid), at))
        self._last[(table, rid)] = at
        self._rows.append((at, len(self._rows), table, rid, field, old, kept))

    def record(
        self,
        table: str,
        final: Mapping[str, Any],
        inserted: Mapping[str, Any],
        at: str,
        steps: list[tuple[str, dict[str, Any]]],
        last_at: str | None = None,
    ) -> None:
        """``inserted`` at ``at`` (its columns as the app inserts them), then each step's
        changes; anything still short of ``final`` is changed at the last step."""
        unaudited = UNAUDITED.get(table, frozenset())
        keep = {k: inserted[k] for k in unaudited if k in inserted}
        if inserted.get("updated_at") != inserted.get("created_at"):
            keep["updated_at"] = inserted.get("updated_at")
        rid = str(final["id"])
        self._add(
            at,
            table,
            rid,
            INSERT_FIELD,
            None,
            json.dumps({"insert": keep}, ensure_ascii=False, sort_keys=True) if keep else None,
        )
        state = {c: inserted.get(c) for c in final}
        cache = _CACHE if table == "procedures" else frozenset()
        end = last_at or (steps[-1][0] if steps else at)
        for when, changes in [*steps, (end, dict(final))]:
            for field, new in changes.items():
                if field in ("id", "updated_at") or field in cache or _same(state[field], new):
                    continue
                kept = None
                if field in unaudited:
                    kept = json.dumps({"new": audit_text(new)}, ensure_ascii=False, sort_keys=True)
                self._add(when, table, rid, field, audit_text(state[field]), kept)
                state[field] = new

    # ------------------------------------------------------------ the batch
    def fill(self, batch: Batch) -> None:
        """Put the batch's ``audit_tx`` and ``audit_log`` rows into it."""
        rows = {t: [dict(zip(TABLE_COLUMNS[t], r, strict=True)) for r in batch[t]] for t in batch}
        for p in rows["patients"]:
            self.record("patients", p, p, p["created_at"], [])
        events: dict[str, list[Record]] = {}
        for e in rows["events"]:
            events.setdefault(e["procedure_id"], []).append(e)
        fus: dict[str, list[Record]] = {}
        for f in rows["followups"]:
            fus.setdefault(f["procedure_id"], []).append(f)
        calls: dict[str, list[Record]] = {}
        for c in rows["contact_attempts"]:
            calls.setdefault(c["followup_id"], []).append(c)
        for p in rows["procedures"]:
            evs = sorted(events.get(p["id"], []), key=lambda e: e["seq"])
            score_at = None
            for f in fus.get(p["id"], []):
                if f["kind"] == "score_5min" and f["completed_at"]:
                    score_at = f["completed_at"]
            self._procedure(p, evs, score_at)
            for f in sorted(fus.get(p["id"], []), key=lambda f: f["kind"] != "score_5min"):
                self._followup(f, sorted(calls.get(f["id"], []), key=lambda c: c["at"]))
        self._rows.sort()
        by_at: dict[str, int] = {}
        txs, log = [], []
        for at, _, table, rid, field, old, kept in self._rows:
            if at not in by_at:
                self.tx_n += 1
                by_at[at] = self.tx_n
                txs.append((self.tx_n, at, DEMO_USER))
            self.row_n += 1
            log.append((self.row_n, by_at[at], table, rid, field, old, kept))
        batch["audit_tx"], batch["audit_log"] = txs, log
        self._rows, self._last = [], {}

    def _procedure(
        self,
        p: Record,
        evs: list[Record],
        score_at: str | None,
    ) -> None:
        start = evs[0] if evs and evs[0]["kind"] == "start" else None
        code, _, agent = str((start or {}).get("value") or "").partition("|")
        inserted = {
            **p,
            "status": "open",
            "cancel_reason": None,
            **dict.fromkeys(_OUTCOME),
            "csf_removed_ml": 5.0,
            "satisfaction_5min": None,
            "attempts_n": 0,
            "redirections_n": 0,
            "sedation": code or None,
            "sedation_agent": agent or None,
            "updated_at": p["created_at"],
        }
        for c in {*_CACHE, "ended_at", "cancelled_at"} - {
            "attempts_n",
            "redirections_n",
            "sedation",
            "sedation_agent",
        }:
            inserted.pop(c, None)  # not in the start's row
        steps: list[tuple[str, dict[str, Any]]] = []
        if p["status"] == "ended" and p["ended_at"]:
            steps.append((p["ended_at"], {k: p[k] for k in (*_OUTCOME, "csf_removed_ml")}))
            steps.append((p["ended_at"], {"status": "ended", "ended_at": p["ended_at"]}))
        elif p["status"] == "cancelled":
            when = p.get("cancelled_at") or p["updated_at"]
            steps.append((when, {k: p.get(k) for k in ("status", "cancelled_at", "cancel_reason")}))
        if score_at and p["satisfaction_5min"] is not None:
            steps.append((score_at, {"satisfaction_5min": p["satisfaction_5min"]}))
        self.record("procedures", p, inserted, p["created_at"], steps)
        for e in evs:
            voided = e["voided_at"]
            ev_steps = [(voided, {"voided_at": voided})] if voided else []
            self.record("events", e, {**e, "voided_at": None}, e["at"], ev_steps)

    def _followup(self, f: Record, calls: list[Record]) -> None:
        inserted = {
            **dict.fromkeys(f),
            **{k: f[k] for k in ("id", "procedure_id", "kind", "due_at", "created_at")},
            "state": "open",
            "contact_attempts_n": 0,
            "late": 0,
            "early": 0,
            "updated_at": f["created_at"],
        }
        steps: list[tuple[str, dict[str, Any]]] = []
        for k, c in enumerate(calls, start=1):
            voided = c["voided_at"]
            undo = [(voided, {"voided_at": voided})] if voided else []
            self.record("contact_attempts", c, {**c, "voided_at": None}, c["at"], undo)
            steps.append((c["at"], {"contact_attempts_n": k, "last_contact_at": c["at"]}))
        done = f["completed_at"] or (f["updated_at"] if f["state"] != "open" else None)
        self.record("followups", f, inserted, f["created_at"], steps, done or f["updated_at"])
