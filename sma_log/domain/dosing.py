"""The next nusinersen dose by the label (12 mg and high-dose regimens).

Pure domain code: pendulum only. Dates are calendar dates (``pendulum.Date``); a
``DateTime`` in the input counts by its own calendar date, so convert it to the clinic's
time zone before passing it in.

Schedule (CLINICAL-NOTES, "The schedule (label)"):

* 12 mg loading: EU SmPC days 0, 14, 28, 63; US label days 0, 14, 28, 58; then 12 mg
  maintenance every 4 calendar months (``add(months=4)``).
* High dose: 50 mg loading doses 1 and 2, 14 days apart, then 28 mg every 4 months.

Interpretation choices (documented, to verify with the clinical lead):

1. Loading doses are timed from the dose actually given before them (intervals 14, 14,
   35 days EU / 14, 14, 30 days US). On time this equals days 0, 14, 28, 63/58; after a
   late dose it keeps the minimum 14 days between doses that the missed-loading rule asks
   for (rather than pulling the next dose towards the original day).
2. Maintenance is due 4 calendar months after the previous dose. A late maintenance dose
   given < 8 months after the previous one puts the next dose back on the *original*
   schedule (previous due date + 4 months), moved to 14 days after the late dose if it
   would otherwise fall closer than that (US rule).
3. Missed maintenance dose, by time from the last dose to ``today`` (US label, used for
   both labels; with ``label="eu"`` a warning says the EU table is not reproduced):
   < 8 months, 8 to < 16, 16 to < 40, >= 40 months, see ``MISSED_RULES``. Catch-up doses
   are suggested as ``std_maintenance`` (the vocabulary has no catch-up code); a
   restart after >= 40 months is suggested as ``std_loading_1``. The history replay
   recognises a late dose followed by its 14-day catch-up doses and resumes 4-monthly
   dosing after the last of them.
4. Switching from 12 mg to the high dose (``switch_to_high_dose=True``): one 50 mg dose
   replaces the next 12 mg dose, so the due date stays where the 12 mg dose would have
   been; it is coded ``high_loading_1`` and followed by ``high_maintenance`` 4 months
   later (no second 50 mg dose). A ``high_loading_1`` dose counts as such a switch when
   the dose before it was 12 mg in the maintenance phase (after loading dose 4) and less
   than 40 months earlier; otherwise (no history, mid-12 mg loading, >= 40 months) it
   starts the full high-dose loading (``high_loading_2`` 14 days later) and switching
   mid-loading gives a warning. The notes do not give missed-dose rules for the high-dose
   regimen: an overdue high-dose dose gets a warning, not a rule.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import pendulum

Label = Literal["eu", "us"]
LABELS: tuple[str, ...] = ("eu", "us")

#: Loading-dose days from the first dose, per label.
LOADING_DAYS: dict[str, tuple[int, int, int, int]] = {
    "eu": (0, 14, 28, 63),
    "us": (0, 14, 28, 58),
}
MAINTENANCE_MONTHS = 4
MIN_INTERVAL_DAYS = 14
HIGH_LOADING_INTERVAL_DAYS = 14

STD_LOADING: tuple[str, ...] = ("std_loading_1", "std_loading_2", "std_loading_3", "std_loading_4")
STD_CODES: frozenset[str] = frozenset((*STD_LOADING, "std_maintenance"))
HIGH_CODES: frozenset[str] = frozenset(("high_loading_1", "high_loading_2", "high_maintenance"))

#: US label rules for a missed maintenance dose, keyed by months since the last dose.
MISSED_RULES: dict[str, str] = {
    "lt8": (
        "< 8 months since the last dose: give the missed dose now, then the next on the "
        "original schedule if the two are at least 14 days apart"
    ),
    "8to16": (
        "8 to < 16 months since the last dose: give now, one more dose 14 days later, "
        "then every 4 months"
    ),
    "16to40": (
        "16 to < 40 months since the last dose: give now, two more doses 14 days apart, "
        "then every 4 months"
    ),
    "ge40": "≥ 40 months since the last dose: restart the full loading schedule",
}
MISSED_LOADING = (
    "missed loading dose: give as soon as possible, at least 14 days after the previous dose"
)
MISSED_CATCHUP = (
    "missed catch-up dose: give as soon as possible, at least 14 days after the previous dose"
)
EU_MISSED_WARNING = (
    "EU SmPC missed-dose table is not reproduced in the clinical notes: the US rule is "
    "shown, verify before use"
)
HIGH_MISSED_WARNING = (
    "missed-dose rules for the high-dose regimen are not in the clinical notes: check the "
    "current label"
)


class Dose(NamedTuple):
    """One given dose. Plain ``(date, regimen)`` tuples are accepted too."""

    when: pendulum.Date | pendulum.DateTime | _dt.date
    regimen: str


@dataclass(frozen=True)
class NextDose:
    """The next dose: when it is due, which regimen code, and why.

    ``due`` stays the scheduled date even when it is past; ``missed_rule`` then says what
    to do (``None`` when not overdue or no rule is known).
    """

    due: pendulum.Date
    regimen: str
    reason: str
    warnings: list[str] = field(default_factory=list)
    missed_rule: str | None = None


@dataclass(frozen=True)
class _Plan:
    due: pendulum.Date
    regimen: str
    reason: str
    phase: Literal["loading", "maintenance", "catchup"]
    catchups_left: int = 0  # catch-up doses still to give, including this one


def _as_date(value: object) -> pendulum.Date:
    if isinstance(value, _dt.datetime):
        d = value.date()
        return pendulum.Date(d.year, d.month, d.day)
    if isinstance(value, _dt.date):
        return pendulum.Date(value.year, value.month, value.day)
    raise TypeError(f"dose date must be a date or datetime, not {type(value).__name__}")


def months_between(a: pendulum.Date, b: pendulum.Date) -> int:
    """Whole calendar months from ``a`` to ``b`` (b >= a): the largest n with
    ``a.add(months=n) <= b``, the same month arithmetic as the schedule.

    Not ``a.diff(b).in_months()``: pendulum's precise_diff miscounts when the end falls
    in a 30-day month (2025-01-10 -> 2025-09-09 gives 8, not 7; pendulum issues #606,
    #790), which would move a patient into the wrong missed-dose tier.
    """
    n = (b.year - a.year) * 12 + (b.month - a.month)
    while n > 0 and a.add(months=n) > b:
        n -= 1
    return max(n, 0)


def missed_tier(months: int) -> str:
    """Key into ``MISSED_RULES`` for a time since the last dose in whole months."""
    if months < 8:
        return "lt8"
    if months < 16:
        return "8to16"
    if months < 40:
        return "16to40"
    return "ge40"


def _loading_intervals(label: str) -> tuple[int, int, int]:
    days = LOADING_DAYS[label]
    return (days[1] - days[0], days[2] - days[1], days[3] - days[2])


def _maintenance(after: pendulum.Date, code: str, reason: str) -> _Plan:
    return _Plan(after.add(months=MAINTENANCE_MONTHS), code, reason, "maintenance")


def _plan_after(
    day: pendulum.Date,
    code: str,
    prev: tuple[pendulum.Date, str] | None,
    prev_plan: _Plan | None,
    label: str,
    warnings: list[str],
) -> _Plan:
    """The plan once the dose (day, code) has been given, given what came before."""
    intervals = _loading_intervals(label)
    gap_months = months_between(prev[0], day) if prev else 0
    if code in STD_LOADING[:3]:
        k = STD_LOADING.index(code)
        return _Plan(
            day.add(days=intervals[k]),
            STD_LOADING[k + 1],
            f"12 mg loading dose {k + 2}, {intervals[k]} days after loading dose {k + 1}",
            "loading",
        )
    if code == "std_loading_4":
        return _maintenance(day, "std_maintenance", "12 mg maintenance, 4 months after loading")
    if code == "std_maintenance":
        if prev_plan is not None and prev_plan.phase == "catchup":
            left = prev_plan.catchups_left - 1
            if left > 0:
                return _Plan(
                    day.add(days=MIN_INTERVAL_DAYS),
                    "std_maintenance",
                    "catch-up dose, 14 days after the previous (US missed-dose rule)",
                    "catchup",
                    left,
                )
            return _maintenance(day, "std_maintenance", "12 mg maintenance after catch-up")
        late = prev_plan is not None and prev_plan.phase == "maintenance" and day > prev_plan.due
        if prev is not None and late:
            assert prev_plan is not None
            tier = missed_tier(gap_months)
            if tier == "lt8":
                nxt = prev_plan.due.add(months=MAINTENANCE_MONTHS)
                if (nxt - day).in_days() < MIN_INTERVAL_DAYS:
                    nxt = day.add(days=MIN_INTERVAL_DAYS)
                return _Plan(
                    nxt, "std_maintenance", "12 mg maintenance, original schedule", "maintenance"
                )
            if tier in ("8to16", "16to40"):
                extra = 1 if tier == "8to16" else 2
                return _Plan(
                    day.add(days=MIN_INTERVAL_DAYS),
                    "std_maintenance",
                    f"catch-up dose 1 of {extra}, 14 days after a dose given {gap_months} "
                    "months after the previous (US missed-dose rule)",
                    "catchup",
                    extra,
                )
            warnings.append(
                f"dose on {day} was recorded as maintenance {gap_months} months after the "
                "previous one: the label restarts loading, counted here as loading dose 1"
            )
            return _plan_after(day, "std_loading_1", prev, prev_plan, label, warnings)
        return _maintenance(day, "std_maintenance", "12 mg maintenance, every 4 months")
    if code == "high_loading_1":
        switched = (
            prev is not None
            and prev[1] in ("std_loading_4", "std_maintenance")
            and gap_months < 40
            and (prev_plan is None or prev_plan.phase == "maintenance")
        )
        if switched:
            return _maintenance(
                day, "high_maintenance", "28 mg maintenance, 4 months after the 50 mg switch dose"
            )
        return _Plan(
            day.add(days=HIGH_LOADING_INTERVAL_DAYS),
            "high_loading_2",
            "50 mg loading dose 2, 14 days after loading dose 1",
            "loading",
        )
    if code in ("high_loading_2", "high_maintenance"):
        return _maintenance(day, "high_maintenance", "28 mg maintenance, every 4 months")
    raise ValueError(f"unknown regimen code {code!r}")


def _short_intervals(doses: Sequence[tuple[pendulum.Date, str]]) -> list[str]:
    out = []
    for (a, _), (b, _) in itertools.pairwise(doses):
        gap = (b - a).in_days()
        if gap < MIN_INTERVAL_DAYS:
            out.append(f"doses on {a} and {b} are {gap} days apart (minimum {MIN_INTERVAL_DAYS})")
    return out


def next_dose(
    doses: Iterable[Dose | tuple[object, str]],
    label: str = "eu",
    today: pendulum.Date | _dt.date | None = None,
    switch_to_high_dose: bool = False,
) -> NextDose:
    """The next dose for one patient from the doses given so far (any order).

    ``today`` defaults to ``pendulum.today()``'s date. See the module docstring for the
    rules and the interpretation choices.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    day_today = _as_date(today) if today is not None else pendulum.today().date()
    history = sorted(((_as_date(w), str(r)) for w, r in doses), key=lambda d: d[0])
    for _, code in history:
        if code not in STD_CODES | HIGH_CODES:
            raise ValueError(f"unknown regimen code {code!r}")
    warnings = _short_intervals(history)
    if history and history[-1][0] > day_today:
        warnings.append(f"a dose is dated after today ({history[-1][0]})")

    if not history:
        code = "high_loading_1" if switch_to_high_dose else "std_loading_1"
        what = "50 mg high-dose" if switch_to_high_dose else "12 mg"
        return NextDose(day_today, code, f"no doses recorded: start {what} loading", warnings)

    plan: _Plan | None = None
    prev: tuple[pendulum.Date, str] | None = None
    for day, code in history:
        plan = _plan_after(day, code, prev, plan, label, warnings)
        prev = (day, code)
    assert plan is not None and prev is not None
    last_day = prev[0]

    regimen, reason, missed_rule = plan.regimen, plan.reason, None
    restart = False
    if day_today > plan.due:
        if plan.phase == "catchup":
            missed_rule = MISSED_CATCHUP
        elif plan.phase == "loading":
            missed_rule = MISSED_LOADING
        elif regimen == "std_maintenance":
            tier = missed_tier(months_between(last_day, day_today))
            missed_rule = MISSED_RULES[tier]
            if label == "eu":
                warnings.append(EU_MISSED_WARNING)
            if tier == "ge40":
                restart = True
                regimen = "std_loading_1"
                reason = "restart 12 mg loading (≥ 40 months since the last dose)"
        else:
            warnings.append(HIGH_MISSED_WARNING)

    if switch_to_high_dose and regimen in STD_CODES:
        if restart:
            regimen, reason = "high_loading_1", "restart with 50 mg high-dose loading"
        else:
            if plan.phase != "maintenance":
                warnings.append(
                    "switching during 12 mg loading or catch-up is not covered by the clinical "
                    "notes: the 50 mg dose is followed here by a second 50 mg loading dose; verify"
                )
            regimen = "high_loading_1"
            reason = (
                "switch to high dose: one 50 mg dose in place of the next 12 mg dose, "
                "then 28 mg every 4 months"
            )
    return NextDose(plan.due, regimen, reason, warnings, missed_rule)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def describe(
    nd: NextDose,
    today: pendulum.Date | _dt.date | None = None,
    tz: str | None = None,
) -> str:
    """One line for the screen: "next dose due 14 Mar, in 9 days", "next dose due today
    (14 Mar)", "next dose overdue by 3 days (due 11 Mar)". ``today`` defaults to today's
    date in ``tz`` (the local zone when None); the year is shown when it differs."""
    day_today = _as_date(today) if today is not None else pendulum.today(tz or "local").date()
    fmt = "D MMM" if nd.due.year == day_today.year else "D MMM YYYY"
    when = nd.due.format(fmt)
    delta = (nd.due - day_today).in_days()  # signed
    if delta == 0:
        return f"next dose due today ({when})"
    if delta > 0:
        return f"next dose due {when}, in {_days(delta)}"
    return f"next dose overdue by {_days(-delta)} (due {when})"
