"""A procedure's timeline as raw events: what the team would have keyed, and when.

1–6 attempts (more on a harder spine), each with redirections, bone contact,
paraesthesia or blood, sometimes at another level; a redirection keyed twice and undone
once in a while; a sedation change after a few attempts; a note; then either CSF, the
injection and the end, or a failed end.
"""

from __future__ import annotations

import math
from typing import Any

from ..domain import vocab
from .draws import Draws
from .units import DAY

#: ``(kind, at, value, voided_at)``: instants in microseconds since the epoch.
RawEvent = tuple[str, int, str | None, int | None]

PROCEDURE_NOTES = (
    "Patient anxious; paused for reassurance",
    "Parent present, holding hand",
    "Rescanned before the next attempt",
    "Long needle needed",
    "Brief vasovagal episode, resolved lying flat",
)
#: Seconds from the start to the first attempt, by guidance.
PREPARATION = {
    "us_marking": (120, 420),
    "us_realtime": (60, 240),
    "landmark": (30, 120),
    "fluoroscopy": (180, 480),
    "ct": (240, 600),
}
#: Flags other than bone contact: the chance of each at every attempt.
FLAG_CHANCES = (("paraesthesia", 0.04), ("blood", 0.05))
#: After the last, successful attempt: (kind, seconds after the previous event, value).
DELIVERY: tuple[tuple[str, tuple[int, int], str | None], ...] = (
    ("csf", (10, 40), None),
    ("injection_start", (30, 150), None),  # about 5 mL of CSF let out first
    ("injection_end", (60, 180), None),
    ("end", (20, 120), "delivered"),
)
_LEVELS = vocab.codes(vocab.LEVELS)


#: Each operator's learning curve (issue 14): (days before "now" they took up these
#: injections, first-attempt success below their plateau on day one). The gap closes
#: exponentially (:data:`LEARNING_DAYS`) with the days since; before that day a
#: procedure is theirs as a novice. Dr Conti is the unit's senior, Dr Romano its newest.
OPERATOR_LEARNING: dict[str, tuple[int, float]] = {
    "Dr Conti": (3000, 0.45),
    "Dr Greco": (900, 0.45),
    "Dr Marino": (700, 0.50),
    "Dr Ferrari": (500, 0.45),
    "Dr Romano": (400, 0.60),
}
#: First-attempt success an operator's plateau adds to the patient's usual chance.
PLATEAU_GAIN = 0.35
#: Days for an operator's gap to their plateau to shrink by a factor e.
LEARNING_DAYS = 150.0


def operator_skill(operator: str | None, t0: int, now: int) -> float:
    """What the operator adds to (or takes from) the first attempt's chance at ``t0``."""
    if operator not in OPERATOR_LEARNING:
        return 0.0
    start_days_ago, gap = OPERATOR_LEARNING[operator]
    experience = max(0.0, start_days_ago - (now - t0) / DAY)
    return PLATEAU_GAIN - gap * math.exp(-experience / LEARNING_DAYS)


def raw_timeline(
    draw: Draws, t0: int, setup: dict[str, Any], difficulty: float, skill: float = 0.0
) -> tuple[list[RawEvent], bool, int]:
    """Raw events from the start at ``t0``; whether it failed; how many attempts.
    ``skill``: the operator's gain on the first attempt (:func:`operator_skill`)."""
    attempts, failed = _outcome(draw, difficulty, skill)
    return _Keying(draw, t0, setup, difficulty).play(attempts, failed), failed, attempts


def _outcome(draw: Draws, d: float, skill: float = 0.0) -> tuple[int, bool]:
    """How many attempts it takes, and whether the procedure fails after them: the
    first attempt succeeds with the patient's chance plus the operator's ``skill``."""
    p_success = min(0.82, max(0.2, 0.75 - 0.55 * d))
    p = min(0.95, max(0.1, p_success + skill))
    attempts = 1
    while attempts < 6 and draw.rng.random() > p:
        attempts += 1
        p = p_success
    failed = attempts >= 4 and draw.chance(0.04 + 0.3 * d)
    return attempts, failed


class _Keying:
    """The events of one procedure as they are keyed, ``t`` the time of the last one."""

    def __init__(self, draw: Draws, t0: int, setup: dict[str, Any], difficulty: float) -> None:
        self.draw = draw
        self.d = difficulty
        self.setup = setup
        self.guidance = setup["guidance"]
        self.level, self.approach = setup["level_intended"], setup["approach"]
        # As Store.start_procedure writes it: "code|agent", or the bare code.
        start = "|".join(v for v in (setup["sedation"], setup["sedation_agent"]) if v)
        self.events: list[RawEvent] = [("start", t0, start, None)]
        self.t = t0
        self.voided_done = False  # drawn in play(): 4 procedures in 100 have an undone one

    def add(self, kind: str, span: tuple[float, float], value: str | None = None) -> None:
        """``kind`` keyed ``span`` seconds (drawn) after the last event.

        ``value`` is computed before the wait is drawn: pass only values that draw nothing.
        """
        self.t += self.draw.sec(*span)
        self.events.append((kind, self.t, value, None))

    def play(self, attempts: int, failed: bool) -> list[RawEvent]:
        draw = self.draw
        self.t += draw.sec(*PREPARATION[self.guidance])
        light = self.setup["sedation"] in ("none", "local")
        sedate_at = 2 if light and attempts >= 3 and draw.chance(0.15) else 0
        self.voided_done = draw.rng.random() > 0.04
        for n in range(1, attempts + 1):
            self._attempt(n, success_here=n == attempts and not failed)
            if n == sedate_at:
                self._sedate()
        if draw.chance(0.05):
            self.t += draw.sec(10, 60)  # the wait is drawn before the note
            self.events.append(("note", self.t, draw.rng.choice(PROCEDURE_NOTES), None))
        if failed:
            self.add("end", (60, 300), "failed")
        else:
            for kind, span, value in DELIVERY:
                self.add(kind, span, value)
        return self.events

    def _attempt(self, n: int, success_here: bool) -> None:
        draw = self.draw
        if n > 1:
            self.t += draw.sec(40, 150) + (draw.sec(30, 90) if self.guidance == "ct" else 0)
        self.events.append(("attempt", self.t, None, None))
        if n > 1 and draw.chance(0.35):
            self._move()
        for action in self._actions(success_here):
            if action == "redirect":
                self._redirect()
            else:
                self.add("flag", (8, 40), action)

    def _move(self) -> None:
        """This attempt at a neighbouring level (and off the midline, sometimes)."""
        draw = self.draw
        i = _LEVELS.index(self.level)
        self.level = _LEVELS[max(0, min(len(_LEVELS) - 1, i + draw.rng.choice((-1, 1))))]
        if self.approach == "midline" and draw.chance(0.5):
            self.approach = "paramedian"
        self.add("attempt_detail", (5, 20), f"{self.level}|{self.approach}")

    def _actions(self, success_here: bool) -> list[str]:
        """The redirections and flags of one attempt, in the order they happen."""
        draw = self.draw
        actions = ["redirect"] * draw.poisson(0.4 + 2.2 * self.d, 6)
        if draw.chance(0.1 if success_here else 0.25 + 0.5 * self.d):
            actions.append("bone_contact")
        actions.extend(flag for flag, p in FLAG_CHANCES if draw.chance(p))
        draw.rng.shuffle(actions)
        return actions

    def _redirect(self) -> None:
        self.add("redirect", (8, 40))
        if not self.voided_done:  # a key pressed twice, undone a moment later
            self.voided_done = True
            self.t += self.draw.sec(1, 2)
            undo = self.t + self.draw.sec(2, 5)
            self.events.append(("redirect", self.t, None, undo))
            self.t = undo

    def _sedate(self) -> None:
        self.t += self.draw.sec(20, 60)
        code = self.draw.pick({"oral_anxiolytic": 50, "iv_sedation": 50})
        # As Store.record stores it: "code|agent", or the bare code without an agent.
        value = "iv_sedation|midazolam" if code == "iv_sedation" else code
        self.events.append(("sedation", self.t, value, None))
