"""Follow-ups: the two the Store schedules at each end, and their contact attempts, as of now.

As the Store writes them: both kinds scheduled at the end (created_at = the end;
``updated_at`` = the last change), due end + 5 min / + 72 h in UTC
(``schedule.due_at``). The 5-minute one is done iff the procedure has its score (closed
by ``set_score``: satisfaction, completed_at, late). The 72-hour one gets a whole history
planned (no-answer calls, then answers, "not reachable" or "declined", or nothing) and
only what happened before ``now`` is kept, so recent ones are upcoming or due, some
overdue with calls, older ones mostly done, a few missed.
"""

from __future__ import annotations

from typing import Any

from ..domain import schedule
from .columns import ANSWER_COLUMNS, DEMO_USER, FOLLOWUP_COLUMNS
from .draws import Draws
from .patients import ASSISTANTS
from .units import DAY, SEC, offset_min, text, us_of

CLOSE_REASONS = {
    "unreachable": ("No answer after 3 calls", "Phone number not in service"),
    "declined": ("Family declined the call", "Patient asked not to be called"),
}
OTHER_EVENTS = (
    "Mild fever the evening after, resolved without treatment",
    "Dizziness on standing for a day",
    "Bruise at the puncture site",
)
#: How the 72-hour follow-up turns out, planned in full (only the past is kept).
OUTCOMES = {"done": 80, "late": 4, "unreachable": 6, "declined": 3, "open": 7}
#: Unanswered calls before that outcome: drawn for every outcome, in this order
#: (whatever the outcome is); "unreachable" is always three calls.
CALLS_DRAWN = {
    "done": {0: 65, 1: 25, 2: 10},
    "late": {1: 40, 2: 60},
    "declined": {0: 70, 1: 30},
    "open": {0: 40, 1: 35, 2: 25},
}
CALLS_FIXED = {"unreachable": 3}
PDPH_TREATMENTS = {"conservative": 50, "caffeine": 25, "blood_patch": 10, "none": 15}
SATISFACTION_PDPH = {5: 15, 4: 30, 3: 35, 2: 15, 1: 5}
SATISFACTION_WELL = {5: 62, 4: 28, 3: 7, 2: 2, 1: 1}

Record = dict[str, Any]


def followups(draw: Draws, now: int, proc: Record) -> tuple[list[Record], list[Record]]:
    """The follow-ups of an ended procedure and their contact attempts, as of ``now``."""
    end = us_of(proc["ended_at"])
    made: list[Record] = []
    calls: list[Record] = []
    for kind, _ in schedule.FOLLOWUP_KINDS:
        due = end + int(schedule.FOLLOWUP_DELAY[kind].total_seconds()) * SEC
        row = _scheduled(draw, proc, kind, end, due)
        made.append(row)
        if kind == "score_5min":
            _score_taken(row, proc, end, due)
        else:
            calls.extend(_day3_history(draw, now, row, proc, end, due))
    for row in made:  # as the Store does: updated_at follows the last change
        row["updated_at"] = max(
            v for v in (row["created_at"], row["last_contact_at"], row["completed_at"]) if v
        )
    return made, calls


def _scheduled(draw: Draws, proc: Record, kind: str, end: int, due: int) -> Record:
    """The follow-up as scheduled at the end (its id drawn now)."""
    row: Record = dict.fromkeys(FOLLOWUP_COLUMNS)
    row.update(
        id=draw.id(end),
        procedure_id=proc["id"],
        kind=kind,
        due_at=text(due),
        state="open",
        late=0,
        early=0,
        contact_attempts_n=0,
        created_at=proc["ended_at"],
        updated_at=proc["ended_at"],
    )
    return row


def _score_taken(row: Record, proc: Record, end: int, due: int) -> None:
    """Done by ``set_score`` when the procedure has its score (then still open)."""
    if proc["satisfaction_5min"] is None:
        return
    at = us_of(proc["updated_at"])  # when set_score ran
    row.update(
        state="done",
        satisfaction=proc["satisfaction_5min"],
        completed_at=text(at),
        late=int(_missed("score_5min", due, at)),
        offset_min=offset_min(end, at),
    )


def _window(kind: str, due: int) -> tuple[int, int]:
    """When the follow-up's window opens and closes (microseconds)."""
    window = schedule.DEFAULT_WINDOWS[kind]
    return (
        due - round(window.before_hours * 3600) * SEC,
        due + round(window.after_hours * 3600) * SEC,
    )


def _missed(kind: str, due: int, at: int) -> bool:
    return at > _window(kind, due)[1]


def _day3_history(
    draw: Draws, now: int, row: Record, proc: Record, end: int, due: int
) -> list[Record]:
    """The 72-hour follow-up's calls up to ``now``; ``row`` closed if that happened by now."""
    outcome = draw.pick(OUTCOMES)
    if outcome == "open" and now - end > 30 * DAY:
        outcome = "done"  # old follow-ups were all dealt with in the end
    drawn = {o: draw.pick(w) for o, w in CALLS_DRAWN.items()}
    n_calls = {**drawn, **CALLS_FIXED}[outcome]
    assessor = draw.rng.choice(ASSISTANTS)
    planned, finished = _plan_calls(draw, outcome, n_calls, due)
    calls = _calls_made(draw, now, row, planned)
    if finished is None or finished > now:
        return calls  # still open: upcoming, due, overdue or missed as of now
    row["completed_at"] = text(finished)
    if outcome in CLOSE_REASONS:
        row["state"] = outcome
        row["closed_reason"] = draw.rng.choice(CLOSE_REASONS[outcome])
        return calls
    row.update(_day3_answers(draw, proc, assessor))
    row.update(
        state="done",
        late=int(_missed("day3", due, finished)),
        offset_min=offset_min(end, finished),
    )
    return calls


def _plan_calls(draw: Draws, outcome: str, n_calls: int, due: int) -> tuple[list[int], int | None]:
    """When each call is made, and when the follow-up is closed (None: never).

    The first call around the due time (the end's clock time three days on, within the
    window), the next ones 1-6 hours apart: all before the window closes. Late and
    unreachable ones are closed 1–48 hours after the window.
    """
    opens, closes = _window("day3", due)
    t = max(opens, due + draw.hours(-3, 5))
    planned: list[int] = []
    for _ in range(n_calls):
        planned.append(t)
        t += draw.hours(1, 6)
    if outcome in ("late", "unreachable"):
        t = closes + draw.hours(1, 48)
    return planned, t if outcome != "open" else None


def _calls_made(draw: Draws, now: int, row: Record, planned: list[int]) -> list[Record]:
    """The unanswered calls made by ``now``, counted on the follow-up ``row``."""
    calls = []
    for at in planned:
        if at > now:
            break
        calls.append(
            {
                "id": draw.id(at),
                "followup_id": row["id"],
                "at": text(at),
                "outcome": "no_answer",
                "by_user": DEMO_USER,
                "note": "Voicemail left" if draw.chance(0.3) else None,
                "voided_at": None,
            }
        )
    if calls:
        row["contact_attempts_n"] = len(calls)
        row["last_contact_at"] = calls[-1]["at"]
    return calls


def _day3_answers(draw: Draws, proc: Record, assessor: str) -> Record:
    """Plausible answers at 72 h (as ``complete_followup`` stores them)."""
    answers: Record = dict.fromkeys(ANSWER_COLUMNS)
    risk = (0.04 if proc["needle_tip"] == "pencil_point" else 0.1) + 0.02 * max(
        0, (proc["attempts_n"] or 0) - 1
    )
    pdph = draw.chance(risk)
    answers["pdph"] = int(pdph)
    if pdph:
        answers.update(_pdph(draw))
    answers["satisfaction"] = draw.pick(SATISFACTION_PDPH if pdph else SATISFACTION_WELL)
    # some back pain at the site
    answers["back_pain_nrs"] = draw.rng.randint(1, 5) if draw.chance(0.25) else 0
    answers["radicular_pain"] = int(draw.chance(0.03))
    answers["nausea_vomiting"] = int(draw.chance(0.3 if pdph else 0.04))
    answers["other_event_any"] = 0
    if draw.chance(0.01):
        answers["other_event_any"] = 1
        answers["other_event"] = draw.rng.choice(OTHER_EVENTS)
        answers["other_event_serious"] = 0
    answers["contact_method"] = "phone" if draw.chance(0.85) else "in_person"
    answers["assessor"] = assessor
    return answers


def _pdph(draw: Draws) -> Record:
    """A post-dural-puncture headache: onset, orthostatic, severity, treatment, resolved."""
    return {
        "pdph_onset_hours": draw.rng.randint(6, 60),
        "pdph_orthostatic": int(draw.chance(0.85)),
        "pdph_severity": draw.rng.randint(3, 9),
        "pdph_treatment": draw.pick(PDPH_TREATMENTS),
        "pdph_resolved": int(draw.chance(0.6)),
    }
