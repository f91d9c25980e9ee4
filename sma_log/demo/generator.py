"""The rows of a demo database, in batches of whole patients (parents before children).

Patient by patient: the patient, each of their procedures (its attempts and events),
and for each ended one its follow-ups and contact attempts. Their audit rows (what the
app writes on the way to each record's final state) are added to each batch by
:mod:`sma_log.demo.auditrows` when it is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import followups, patients, procedures
from .columns import Batch, as_tuple, empty_batch
from .draws import Draws
from .units import DAY, dt, us_of

CHUNK = 2_000  # procedures per executemany batch


class Generator:
    """The rows for ``procedures`` procedures, given a ``seed`` and ``now`` (microseconds).

    Counts what it made as it goes (``pending``, ``open_id``, ``followups``…), for
    :func:`sma_log.demo.write_demo` to report.
    """

    def __init__(self, procedures: int, seed: int, now_us: int) -> None:
        self.n = procedures
        self.now = now_us
        self.draw = Draws(f"sma-log-demo-data-{seed}", f"sma-log-demo-ids-{seed}")
        # Follow-ups draw from their own streams, so adding them left the patients,
        # procedures and events of a seed as they were.
        self.fu_draw = Draws(f"sma-log-demo-followups-{seed}", f"sma-log-demo-followup-ids-{seed}")
        self.today = now_us - now_us % DAY
        self.year = dt(now_us).year
        self.open_id: str | None = None
        self.pending = 0
        self.followups = self.open_followups = self.contact_attempts = 0

    def batches(self) -> Iterator[Batch]:
        """Rows to insert, in batches of whole patients (parents before children)."""
        counts = patients.procedure_counts(self.draw, self.n)
        width = max(3, len(str(len(counts))))
        batch = empty_batch()
        procs_in_batch = 0
        for i, k in enumerate(counts):
            self._patient(batch, i, k, f"DEMO-{i + 1:0{width}d}")
            procs_in_batch += k
            if procs_in_batch >= CHUNK:
                yield batch
                batch, procs_in_batch = empty_batch(), 0
        if any(batch.values()):
            yield batch

    def _patient(self, batch: Batch, i: int, k: int, code: str) -> None:
        """Patient ``i`` (with ``k`` procedures) and all their rows."""
        draw = self.draw
        prof = patients.profile(draw, self.year)
        doses = patients.plan(draw, k)
        starts = patients.starts(draw, i, doses, self.now, self.today)
        created = starts[0][0] - draw.sec(300, 1800)
        patient = patients.patient_row(draw, code, created, prof)
        self._add(batch, "patients", patient, created, draw)
        for j, (start, regimen) in enumerate(starts):
            mode = patients.LAST_MODE.get(i, "ended") if j == k - 1 else "ended"
            self._procedure(batch, patient["id"], start, regimen, prof, mode)

    def _procedure(
        self,
        batch: Batch,
        patient_id: str,
        start: int,
        regimen: str,
        prof: patients.Profile,
        mode: str,
    ) -> None:
        row, attempts, events = procedures.procedure(
            self.draw, self.now, patient_id, start, regimen, prof, mode
        )
        self._add(batch, "procedures", row, us_of(row["created_at"]), self.draw)
        batch["attempts"].extend(attempts)
        batch["events"].extend(events)
        if row["status"] == "open":
            self.open_id = row["id"]
            return
        if row["satisfaction_5min"] is None:
            self.pending += 1
        self._followups(batch, row)

    def _followups(self, batch: Batch, proc: dict[str, Any]) -> None:
        made, calls = followups.followups(self.fu_draw, self.now, proc)
        for rec in made:
            self._add(batch, "followups", rec, us_of(rec["created_at"]), self.fu_draw)
        for rec in calls:
            self._add(batch, "contact_attempts", rec, us_of(rec["at"]), self.fu_draw)
        self.followups += len(made)
        self.open_followups += sum(r["state"] == "open" for r in made)
        self.contact_attempts += len(calls)

    @staticmethod
    def _add(batch: Batch, table: str, row: dict[str, Any], at: int, draw: Draws) -> None:
        """``row`` into ``table``. The draw an audit row's id took before schema 5 is
        still taken, so every other row of a seed stays the same."""
        batch[table].append(as_tuple(table, row))
        draw.id(at)
