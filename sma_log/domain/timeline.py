"""The bedside timeline: events in, derived state out, and the rules between them.

Every key at the bedside becomes one :class:`Event`. The procedure's state (attempt
count, redirections, milestones, sedation, derived minutes) is never kept by hand:
:func:`replay` derives it from the events, and :func:`check` says whether a new
event may be added to that state. Undo does not delete: it marks the last event
void, and replay skips void events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from . import vocab

EventKind = Literal[
    "start",
    "attempt",
    "redirect",
    "flag",
    "csf",
    "injection_start",
    "injection_end",
    "sedation",
    "note",
    "attempt_detail",
    "end",
    "cancel",
    "vial_out",
    "drawn_up",
]

# Milestones in the order they must happen. "first_puncture" is the first attempt.
MILESTONES: tuple[tuple[str, str], ...] = (
    ("start", "Start"),
    ("first_puncture", "First skin puncture"),
    ("csf", "CSF obtained"),
    ("injection_start", "Injection start"),
    ("injection_end", "Injection end"),
    ("end", "End"),
)

FLAGS: tuple[tuple[str, str], ...] = (
    ("bone_contact", "Bone contact"),
    ("paraesthesia", "Paraesthesia"),
    ("blood", "Blood in needle"),
)

UNDOABLE = frozenset(
    {
        "attempt",
        "redirect",
        "flag",
        "csf",
        "injection_start",
        "injection_end",
        "sedation",
        "note",
        "attempt_detail",
        "vial_out",
        "drawn_up",
    }
)

EVENT_LABELS: dict[str, str] = {
    "start": "Start",
    "attempt": "New attempt",
    "redirect": "Redirection",
    "flag": "Flag",
    "csf": "CSF obtained",
    "injection_start": "Injection start",
    "injection_end": "Injection end",
    "sedation": "Sedation changed",
    "note": "Note",
    "attempt_detail": "Attempt level/approach",
    "end": "End",
    "cancel": "Cancelled",
    "vial_out": "Vial out of the fridge",
    "drawn_up": "Drug drawn up",
}

#: Drug-timing events: the value is None (the event's own time: a key press) or an
#: entered earlier instant in the stored form (``clock.to_text``).
DRUG_KINDS = ("vial_out", "drawn_up")


class RuleError(ValueError):
    """An action that the timeline refuses (out of order, repeated, after the end).

    An instant the message names is given apart (``{0}`` in the message): ``str()``
    says it in UTC, labelled (the CLI, an import's report); :meth:`in_zone` says it in
    the site's time, as the screen shows every other time.
    """

    def __init__(self, message: str, *instants: datetime) -> None:
        self.template = message
        self.instants = instants
        super().__init__(message.format(*map(_hhmm, instants)) if instants else message)

    def in_zone(self, tz: str) -> str:
        if not self.instants:
            return str(self)
        import pendulum

        said = (pendulum.instance(i).in_timezone(tz).strftime("%H:%M:%S") for i in self.instants)
        return self.template.format(*said)


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    at: datetime
    value: str | None = None
    attempt_id: str | None = None
    voided: bool = False


@dataclass
class Attempt:
    id: str
    number: int
    at: datetime
    level: str | None
    approach: str | None
    redirections: int = 0
    bone_contact: bool = False
    paraesthesia: bool = False
    blood: bool = False
    csf_obtained: bool = False
    voided: bool = False


@dataclass
class State:
    """What the live screen shows, derived from the events of one procedure."""

    attempts: list[Attempt] = field(default_factory=list)
    voided_attempts: list[Attempt] = field(default_factory=list)
    milestones: dict[str, datetime] = field(default_factory=dict)
    sedation: str | None = None
    sedation_agent: str | None = None
    sedation_changes: list[tuple[datetime, str, str | None]] = field(default_factory=list)
    notes: list[tuple[datetime, str]] = field(default_factory=list)
    #: When the vial left the fridge / the drug was drawn up (latest event of each wins).
    drug_times: dict[str, datetime] = field(default_factory=dict)
    #: The drug-timing events behind ``drug_times`` (their stored value, if entered).
    drug_events: dict[str, Event] = field(default_factory=dict)
    last_event: Event | None = None
    undoable: Event | None = None
    ended: bool = False
    cancelled: bool = False

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def attempt_count(self) -> int:
        return len(self.attempts)

    @property
    def redirection_count(self) -> int:
        return sum(a.redirections for a in self.attempts)

    def minutes(self, a: str, b: str) -> float | None:
        """Minutes from milestone ``a`` to ``b``, kept to the whole second (see
        :func:`whole_second_minutes`)."""
        if a in self.milestones and b in self.milestones:
            return whole_second_minutes((self.milestones[b] - self.milestones[a]).total_seconds())
        return None

    @property
    def procedure_minutes(self) -> float | None:
        """Procedure time: start → end."""
        return self.minutes("start", "end")

    @property
    def puncture_minutes(self) -> float | None:
        """Puncture time: first skin puncture → injection end."""
        return self.minutes("first_puncture", "injection_end")

    @property
    def first_attempt_success(self) -> bool | None:
        """CSF obtained on the first attempt (None until CSF is obtained or the end)."""
        if not self.attempts:
            return None
        if "csf" in self.milestones:
            return self.attempts[0].csf_obtained and len(self.attempts) == 1
        return False if self.ended else None


def whole_second_minutes(seconds: float) -> float:
    """An interval in minutes, rounded to the whole second first.

    Procedure and puncture times are stored (and reported) to the second: sub-second
    digits of a stopwatch reading are noise, and whole seconds let the report keep
    exact histograms of the times (a few thousand distinct values, not one per
    procedure). Rounding is Python's (half to even).
    """
    return round(seconds) / 60


def replay(events: Iterable[Event], level: str | None = None, approach: str | None = None) -> State:
    """Derive the state from events in recorded order (void events are skipped).

    ``level`` and ``approach`` are the procedure's intended ones: a new attempt takes
    them unless the previous attempt was set to something else.
    """
    state = State()
    for ev in events:
        if ev.voided:
            if ev.kind == "attempt":
                state.voided_attempts.append(Attempt(ev.id, 0, ev.at, level, approach, voided=True))
            continue
        _apply(state, ev, level, approach)
        state.last_event = ev
        state.undoable = ev if ev.kind in UNDOABLE else None
    return state


def _apply(state: State, ev: Event, level: str | None, approach: str | None) -> None:
    kind = ev.kind
    if kind == "start":
        state.milestones["start"] = ev.at
        if ev.value:  # "code|agent": the sedation confirmed at the start
            code, _, agent = ev.value.partition("|")
            state.sedation = code or None
            state.sedation_agent = agent or None
            state.sedation_changes.append((ev.at, code, agent or None))
    elif kind == "attempt":
        prev = state.current
        state.attempts.append(
            Attempt(
                id=ev.id,
                number=len(state.attempts) + 1,
                at=ev.at,
                level=prev.level if prev else level,
                approach=prev.approach if prev else approach,
            )
        )
        state.milestones.setdefault("first_puncture", ev.at)
    elif kind == "redirect" and state.current:
        state.current.redirections += 1
    elif kind == "flag" and state.current and ev.value in dict(FLAGS):
        name = ev.value
        setattr(state.current, name, not getattr(state.current, name))
    elif kind == "attempt_detail" and state.current and ev.value:
        lvl, _, appr = ev.value.partition("|")
        state.current.level = lvl or state.current.level
        state.current.approach = appr or state.current.approach
    elif kind == "csf":
        state.milestones["csf"] = ev.at
        if state.current:
            state.current.csf_obtained = True
    elif kind in ("injection_start", "injection_end"):
        state.milestones[kind] = ev.at
    elif kind == "sedation":
        code, _, agent = (ev.value or "").partition("|")
        state.sedation = code or None
        state.sedation_agent = agent or None
        state.sedation_changes.append((ev.at, code, agent or None))
    elif kind == "note" and ev.value:
        state.notes.append((ev.at, ev.value))
    elif kind == "end":
        state.milestones["end"] = ev.at
        state.ended = True
    elif kind == "cancel":
        state.cancelled = True
    elif kind in DRUG_KINDS:
        state.drug_times[kind] = drug_instant(ev)
        state.drug_events[kind] = ev


def check(state: State, kind: str, value: str | None = None) -> None:
    """Raise :class:`RuleError` with a message a person can act on, or return."""
    if state.cancelled:
        raise RuleError("This procedure was cancelled; nothing more can be added to it")
    if state.ended:
        raise RuleError("This procedure has ended; nothing more can be added to its timeline")
    has = state.milestones
    if kind == "start":
        raise RuleError("The procedure has already started")
    if kind == "attempt":
        if "injection_start" in has:
            raise RuleError("The injection has started: a new attempt is not possible now")
        return
    if kind in ("redirect", "flag", "attempt_detail"):
        if state.current is None:
            raise RuleError("No attempt yet: record the skin puncture first (key a)")
        if "injection_start" in has and kind == "redirect":
            raise RuleError("The injection has started: a redirection is not possible now")
        if kind == "flag" and value not in dict(FLAGS):
            raise RuleError(f"Unknown flag: {value}")
        if kind == "attempt_detail":
            lvl, _, appr = (value or "").partition("|")
            if not lvl and not appr:
                raise RuleError("Give the attempt's level or approach")
            if lvl and lvl not in vocab.codes(vocab.LEVELS):
                raise RuleError(f"Unknown level: {lvl}")
            if appr and appr not in vocab.codes(vocab.APPROACH):
                raise RuleError(f"Unknown approach: {appr}")
        return
    if kind == "csf":
        if state.current is None:
            raise RuleError("CSF cannot come before the first skin puncture (key a)")
        if "csf" in has:
            raise RuleError("CSF was already recorded; undo it first to record it again")
        return
    if kind == "injection_start":
        if "csf" not in has:
            raise RuleError("Record CSF obtained (key c) before the injection starts")
        if "injection_start" in has:
            raise RuleError("The injection start was already recorded")
        return
    if kind == "injection_end":
        if "injection_start" not in has:
            raise RuleError("Record the injection start (key i) before its end")
        if "injection_end" in has:
            raise RuleError("The injection end was already recorded")
        return
    if kind == "sedation":
        code = (value or "").partition("|")[0]
        if code not in vocab.codes(vocab.SEDATION):
            raise RuleError(f"Unknown sedation: {code}")
        return
    if kind == "note":
        if not value or not value.strip():
            raise RuleError("A note needs some text")
        return
    if kind == "end":
        return
    if kind in DRUG_KINDS:
        check_drug_time(state, kind, value)
        return
    raise RuleError(f"Unknown action: {kind}")


def drug_instant(ev: Event) -> datetime:
    """The time a drug-timing event stands for: its entered instant, else its own time."""
    if ev.value:
        from .clock import from_text

        try:
            return from_text(ev.value)
        except (TypeError, ValueError):  # an odd value another tool wrote: its own time
            return ev.at
    return ev.at


def _hhmm(when: datetime) -> str:
    return when.strftime("%H:%M:%S UTC")


def check_drug_time(
    state: State, kind: str, value: str | None, now: datetime | None = None
) -> None:
    """The order of the drug's times: out of the fridge, drawn up, injected.

    ``value`` is None (now: the key) or an entered instant in the stored form; ``now``
    (when known) refuses an entered instant in the future. Refused with one sentence:
    a drawn-up time after the injection start or before the vial left the fridge, a
    vial-out time after the drawing up or the injection start.
    """
    when: datetime | None = None
    if value is not None:
        from .clock import from_text

        try:
            when = from_text(value)
        except (TypeError, ValueError):
            raise RuleError(f"Not a time: {value[:40]!r}") from None
        if now is not None and when > now:
            raise RuleError(f"{EVENT_LABELS[kind]}: the time entered is in the future")
    label = EVENT_LABELS[kind]
    inj = state.milestones.get("injection_start")
    if inj is not None and (when is None or when > inj):
        raise RuleError(
            f"{label} cannot be after the injection start ({{0}}): "
            "enter the earlier time it happened",
            inj,
        )
    if value is None and kind in state.drug_times:  # a key pressed twice records once
        raise RuleError(
            f"{label} was already recorded at {{0}}; u undoes it, "
            "or enter the time in the time-out (m)",
            state.drug_times[kind],
        )
    vial = state.drug_times.get("vial_out")
    if kind == "drawn_up" and vial is not None and when is not None and when < vial:
        raise RuleError("The drug cannot be drawn up before the vial left the fridge")
    if kind == "vial_out" and "drawn_up" in state.drug_times:
        drawn = state.drug_times["drawn_up"]
        if when is None or when > drawn:
            raise RuleError(
                "The vial cannot leave the fridge after the drug was drawn up ({0})", drawn
            )


def check_end(state: State, drug_delivered: bool) -> None:
    """Ending as delivered needs the whole injection on the timeline."""
    check(state, "end")
    if drug_delivered:
        missing = [label for key, label in MILESTONES[1:5] if key not in state.milestones]
        if missing:
            raise RuleError("Cannot end as delivered: missing " + ", ".join(missing))
    elif "injection_start" in state.milestones and "injection_end" not in state.milestones:
        raise RuleError("The injection started: record its end (key j) or undo the start")


def check_cancel(state: State) -> None:
    """A mistaken start may be cancelled until the first skin puncture, never after.

    A cancelled procedure is kept (who cancelled it and when are on its timeline and
    in the audit log) but counts in no figure: it is not a failure, schedules no
    follow-up and moves no next dose. Once a needle has gone through the skin the
    procedure happened: it ends with its outcome (delivered or not).
    """
    if state.cancelled:
        raise RuleError("This procedure was already cancelled")
    if state.ended:
        raise RuleError("This procedure has ended; it can no longer be cancelled")
    if state.attempts:
        raise RuleError(
            f"The skin was punctured ({len(state.attempts)} attempt(s) recorded): the "
            "procedure cannot be cancelled; end it with its outcome (key e), or undo the "
            "attempts first if they were keyed by mistake"
        )


def check_undo(state: State) -> Event:
    if state.cancelled:
        raise RuleError("This procedure was cancelled; undo is no longer possible here")
    if state.ended:
        raise RuleError("This procedure has ended; undo is no longer possible here")
    if state.undoable is None:
        raise RuleError("Nothing to undo")
    return state.undoable


#: Sedation codes from lightest to deepest (the vocabulary's order).
SEDATION_DEPTH: dict[str, int] = {code: i for i, code in enumerate(vocab.codes(vocab.SEDATION))}


def deepest_sedation(state: State) -> str | None:
    """The deepest sedation used during the procedure (what reports count)."""
    kinds = [code for _, code, _ in state.sedation_changes if code]
    return max(kinds, key=lambda k: SEDATION_DEPTH.get(k, -1), default=None)


def derived_columns(state: State, instant: Callable[[datetime], str]) -> dict[str, object]:
    """The procedure's columns that are a cache of its timeline (kept with every event).

    ``instant`` turns a milestone time into its stored text. The Store and the demo
    generator both write exactly this, so their rows cannot drift apart.
    """
    ms = state.milestones

    def at(key: str) -> str | None:
        return instant(ms[key]) if key in ms else None

    fas = state.first_attempt_success
    return {
        "attempts_n": state.attempt_count,
        "redirections_n": state.redirection_count,
        "first_attempt_success": None if fas is None else int(fas),
        "first_puncture_at": at("first_puncture"),
        "csf_at": at("csf"),
        "injection_start_at": at("injection_start"),
        "injection_end_at": at("injection_end"),
        "procedure_min": state.procedure_minutes,
        "puncture_min": state.puncture_minutes,
        "sedation": deepest_sedation(state),
        "sedation_agent": state.sedation_agent,
        **drug_columns(state, instant),
    }


def drug_columns(state: State, instant: Callable[[datetime], str]) -> dict[str, object]:
    """Drug timing (issue 14): when the vial left the fridge and the drug was drawn up
    (an entered instant as stored, else the event's own time), the injection's length
    in whole seconds, and the minutes from drawing up to the injection start."""
    out: dict[str, object] = {}
    for kind in DRUG_KINDS:
        ev = state.drug_events.get(kind)
        out[f"{kind}_at"] = None if ev is None else (ev.value or instant(ev.at))
    ms = state.milestones
    start, end = ms.get("injection_start"), ms.get("injection_end")
    out["injection_sec"] = float(round((end - start).total_seconds())) if start and end else None
    drawn = state.drug_times.get("drawn_up")
    out["drawn_to_injection_min"] = (
        whole_second_minutes((start - drawn).total_seconds()) if start and drawn else None
    )
    return out


def attempt_columns(att: Attempt) -> dict[str, object]:
    """An attempt's stored columns (besides its id, procedure and time)."""
    return {
        "number": att.number or None,
        "level": att.level,
        "approach": att.approach,
        "redirections": att.redirections,
        "bone_contact": int(att.bone_contact),
        "paraesthesia": int(att.paraesthesia),
        "blood": int(att.blood),
        "csf_obtained": int(att.csf_obtained),
        "voided": int(att.voided),
    }
