"""Procedures: one row, its ``attempts`` and ``events`` rows, from a raw timeline.

The derived columns and the attempts are computed from the events by
:func:`sma_log.domain.timeline.replay`, exactly as ``Store._sync_derived`` does.
``mode`` is "ended", "pending" (ended, score not yet taken) or "open" (started a few
minutes before now, cut at now).
"""

from __future__ import annotations

from typing import Any

from ..domain import timeline, vocab
from .columns import ATTEMPT_COLUMNS, DEMO_USER
from .draws import Draws
from .events import RawEvent, operator_skill, raw_timeline
from .patients import LEVELS_INTENDED, OPERATORS, Profile
from .units import dt, text, us_of_dt

FAILURE_REASONS = (
    "No CSF after {n} attempts",
    "Bone contact at every interspace; severe rotation",
    "No acoustic window through the fusion mass",
    "Patient could not tolerate the position",
)
OUTCOME_NOTES = (
    "Uneventful after a difficult start",
    "Patient asked for the same operator next time",
    "Consider CT guidance next time",
)
#: The satisfaction at 5 minutes: after a failure, after 4 attempts or more, otherwise.
SCORES_FAILED = {4: 30, 3: 40, 2: 25, 1: 5}
SCORES_HARD = {5: 45, 4: 35, 3: 15, 2: 5}
SCORES_EASY = {5: 74, 4: 21, 3: 4, 2: 1}

Rows = list[tuple[Any, ...]]


def derived_columns(state: timeline.State) -> dict[str, Any]:
    """The procedure's derived columns, exactly as the Store writes them."""
    return timeline.derived_columns(state, lambda when: text(us_of_dt(when)))


def attempt_rows(state: timeline.State, proc_id: str) -> list[dict[str, Any]]:
    """The ``attempts`` rows of a replayed state (as ``Store._sync_derived`` inserts them)."""
    return [
        {
            "id": att.id,
            "procedure_id": proc_id,
            "at": text(us_of_dt(att.at)),
            **timeline.attempt_columns(att),
        }
        for att in [*state.attempts, *state.voided_attempts]
    ]


def procedure(
    draw: Draws, now: int, patient_id: str, t0: int, regimen: str, prof: Profile, mode: str
) -> tuple[dict[str, Any], Rows, Rows]:
    """One procedure started at ``t0``: its row, attempts rows and events rows."""
    setup = _setup(draw, prof.setup)
    skill = operator_skill(setup["operator"], t0, now)
    raw, failed, attempts_n = raw_timeline(draw, t0, setup, prof.difficulty, skill)
    if mode == "open":
        raw, t0 = _cut_at_now(draw, raw, t0, now)
    proc_id = draw.id(t0)
    events, event_rows = _events(draw, proc_id, raw)
    state = timeline.replay(events, setup["level_intended"], setup["approach"])
    row = _open_row(proc_id, patient_id, setup, regimen, state, t0, raw[-1][1])
    if mode != "open":
        _end(draw, row, state, failed, attempts_n, raw[-1][1])
        _score(draw, row, mode, failed, attempts_n, raw[-1][1])
    attempts = [tuple(a[c] for c in ATTEMPT_COLUMNS) for a in attempt_rows(state, proc_id)]
    return row, attempts, event_rows


def _setup(draw: Draws, usual: dict[str, Any]) -> dict[str, Any]:
    """The patient's usual set-up, this time (not always the same as last time)."""
    setup = dict(usual)
    if draw.chance(0.1):
        setup["level_intended"] = draw.pick(LEVELS_INTENDED)
    if draw.chance(0.15):
        setup["operator"] = draw.rng.choice(OPERATORS)
    return setup


def _cut_at_now(draw: Draws, raw: list[RawEvent], t0: int, now: int) -> tuple[list[RawEvent], int]:
    """The open procedure: shifted to have started minutes ago, what follows now dropped."""
    duration = raw[-1][1] - t0
    elapsed = min(draw.sec(180, 540), int(duration * 0.7))
    shift = now - elapsed - t0
    kept = [
        (k, at + shift, v, None if vo is None else vo + shift)
        for k, at, v, vo in raw
        if at + shift <= now and (vo is None or vo + shift <= now)
    ]
    return kept, t0 + shift


def _events(draw: Draws, proc_id: str, raw: list[RawEvent]) -> tuple[list[timeline.Event], Rows]:
    """The timeline's events (for the replay) and the ``events`` rows, ids drawn in order."""
    events: list[timeline.Event] = []
    rows: Rows = []
    current: str | None = None
    for seq, (kind, at, value, voided_at) in enumerate(raw, start=1):
        ev_id = draw.id(at)
        # As Store.record: the current attempt, except on attempts, the start and the end.
        attempt_id = current if kind not in ("attempt", "start", "end") else None
        if kind == "attempt":
            current = ev_id
        events.append(timeline.Event(ev_id, kind, dt(at), value, attempt_id, voided_at is not None))
        voided = None if voided_at is None else text(voided_at)
        rows.append((ev_id, proc_id, seq, kind, text(at), value, attempt_id, voided, DEMO_USER))
    return events, rows


def _open_row(
    proc_id: str,
    patient_id: str,
    setup: dict[str, Any],
    regimen: str,
    state: timeline.State,
    t0: int,
    last: int,
) -> dict[str, Any]:
    """The row as it is while the procedure is open (``last``: its latest event)."""
    return {
        "id": proc_id,
        "patient_id": patient_id,
        "status": "open",
        **setup,
        "regimen": regimen,
        "dose_mg": float(vocab.DOSE_MG[regimen]),
        "level_final": None,
        "csf_removed_ml": 5.0,
        "csf_appearance": None,
        "drug_delivered": None,
        "failure_reason": None,
        "fallback": None,
        "note": None,
        "satisfaction_5min": None,
        "started_at": text(t0),
        "ended_at": None,
        "anchor_boot_id": None,
        "anchor_boottime": None,
        **derived_columns(state),
        "created_at": text(t0),
        "updated_at": text(last),
        "cancelled_at": None,
        "cancel_reason": None,
    }


def _end(
    draw: Draws, row: dict[str, Any], state: timeline.State, failed: bool, n: int, end: int
) -> None:
    """Ended at ``end``: the drug delivered (CSF, level) or not (reason, fallback); a note."""
    row.update(status="ended", ended_at=text(end), updated_at=text(end))
    if failed:
        row["drug_delivered"] = 0
        row["failure_reason"] = draw.rng.choice(FAILURE_REASONS).format(n=n)
        row["fallback"] = (
            "reschedule"
            if row["guidance"] == "ct"
            else draw.pick({"ct": 40, "fluoroscopy": 40, "reschedule": 20})
        )
        row["csf_removed_ml"] = 0.0
    else:
        row["drug_delivered"] = 1
        row["level_final"] = state.current.level if state.current else None
        row["csf_removed_ml"] = draw.pick({5.0: 85, 4.0: 5, 6.0: 5, 3.0: 5})
        blood = any(a.blood for a in state.attempts)
        row["csf_appearance"] = (
            "blood_tinged"
            if blood and draw.chance(0.6)
            else draw.pick({"clear": 94, "blood_tinged": 5, "xanthochromic": 1})
        )
    if draw.chance(0.03):
        row["note"] = draw.rng.choice(OUTCOME_NOTES)


def _score(draw: Draws, row: dict[str, Any], mode: str, failed: bool, n: int, end: int) -> None:
    """The satisfaction at 5 minutes, taken 4–7 minutes after the end; or still pending."""
    if mode == "pending" or draw.chance(0.005):
        return
    weights = SCORES_FAILED if failed else SCORES_HARD if n >= 4 else SCORES_EASY
    row["satisfaction_5min"] = draw.pick(weights)
    row["updated_at"] = text(end + draw.sec(240, 420))
