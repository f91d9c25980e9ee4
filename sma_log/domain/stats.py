"""Case-series statistics from analysis rows: pure, shared by the CLI report and the TUI.

Input: an iterable of analysis rows (mappings with the keys of
:data:`sma_log.storage.analysis.ANALYSIS_COLUMNS`; only the keys in :data:`NEEDED` are
read). Output: a :class:`Report` holding, per group and overall, a list of
:class:`Figure` objects, each saying which unit (procedures or patients) it counts.

Units
-----
``unit="procedure"``: every figure counts procedures (injections); ``patients n`` is
the number of distinct patients among them.

``unit="patient"``: each patient is summarised first, within each group (a patient
whose procedures fall into several groups, e.g. two operators, is summarised once in
each group from that group's procedures, and once overall from all of them):

* success: the patient counts as a success when **every** one of their procedures
  delivered the drug (n/N over patients);
* attempts and redirections: the patient's value is the **median over their
  procedures** (statistics.median, so two procedures with 2 and 3 attempts give 2.5);
  "≤ 2 attempts" and "≤ 4 attempts" are the share of patients whose median is ≤ 2
  (≤ 4) — this is how Zanfini et al. 2021 report 50% and 83.3% of 18 patients;
* first-attempt success: the patient counts when **every** procedure with a known
  first-attempt outcome succeeded at the first attempt;
* sedation: the **deepest** sedation the patient received in any procedure;
* PDPH and other adverse events: the patient counts when **any** 72-hour follow-up
  of theirs reported the event (denominator: patients with at least one completed
  72-hour follow-up);
* procedure time, puncture time, satisfaction (5 min and 72 h) and follow-up
  completeness stay **per procedure** (per injection, as Zanfini did for time and
  satisfaction): each such figure says so with ``unit == "procedure"``.

Summary rules
-------------
* median and quartiles: ``statistics.quantiles(method="inclusive")`` (for n = 1 the
  value itself); mean and SD (n − 1) in floating point with ``math.fsum``, SD absent
  (None) when n < 2 — a group with one procedure has no SD and does not fail.
* percentages are of the denominator shown beside them; a zero denominator gives
  None, shown as "—".
* attempts, redirections and first-attempt figures count procedures with at least
  one needle insertion (attempts_n ≥ 1): a procedure abandoned before the skin was
  punctured has no attempt distribution to contribute (it still counts in success).
* adverse events: denominator = procedures whose 72-hour follow-up was completed
  (state ``done``) **and whose question was answered**: an unanswered question is
  unknown, never "no", and leaves the denominator (the n/N shows it); back pain
  counts an NRS ≥ 1; "serious" is asked of the other-event answer.
* satisfaction at 5 min and at 72 h count only scores taken **in their window**
  (from 4 minutes after the end for the 5-minute score, a setting; the 72-hour
  window); scores confirmed as early, taken late (after the window closed) or whose
  time is not known are counted on their own lines (data quality), not in the figure.
* follow-up completeness: 72-hour follow-ups done / ended procedures, with the
  numbers open, not reachable and declined beside it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import timeline, vocab

Unit = Literal["procedure", "patient"]
UNITS: tuple[str, ...] = ("procedure", "patient")

#: Scoliosis severity from the Cobb angle (°): THE one definition (code, label, upper
#: bound, upper bound included). Read in order; the first class whose bound admits the
#: angle wins; past the last bound: "severe".
#:   none      angle < 10
#:   mild      10 ≤ angle ≤ 25   (25 exactly is mild)
#:   moderate  25 < angle ≤ 50   (50 exactly is moderate)
#:   severe    angle > 50
#: The literature's classes share their boundary (OJRD 2024: mild 11–25, moderate
#: 25–50, severe > 50); a boundary value goes to the milder class, except 10°, which is
#: scoliosis (mild) because "below 10° is not scoliosis". No angle: "unknown".
COBB_CLASSES: tuple[tuple[str, str, float | None, bool], ...] = (
    ("none", "No scoliosis (< 10°)", 10.0, False),
    ("mild", "Mild (10–25°)", 25.0, True),
    ("moderate", "Moderate (> 25–50°)", 50.0, True),
    ("severe", "Severe (> 50°)", None, True),
)
SCOLIOSIS: vocab.Choices = tuple((code, text) for code, text, _, _ in COBB_CLASSES)
UNKNOWN = "unknown"
UNKNOWN_LABEL = "Not recorded"


def scoliosis_class(cobb: float | None) -> str:
    """The class code of a Cobb angle (see :data:`COBB_CLASSES`)."""
    if cobb is None:
        return UNKNOWN
    for code, _, upper, inclusive in COBB_CLASSES:
        if upper is None or cobb < upper or (inclusive and cobb == upper):
            return code
    return COBB_CLASSES[-1][0]  # pragma: no cover


def scoliosis_sql(column: str) -> str:
    """The same classification as an SQL CASE expression over ``column``."""
    parts = [f"WHEN {column} IS NULL THEN '{UNKNOWN}'"]
    for code, _, upper, inclusive in COBB_CLASSES:
        if upper is None:
            parts.append(f"ELSE '{code}'")
        else:
            parts.append(f"WHEN {column} {'<=' if inclusive else '<'} {upper!r} THEN '{code}'")
    return "CASE " + " ".join(parts) + " END"


#: Grouping choices: name → the analysis-row key that holds the group and its labels.
GROUPINGS: dict[str, tuple[str, vocab.Choices]] = {
    "approach": ("approach", vocab.APPROACH),
    "guidance": ("guidance", vocab.GUIDANCE),
    "scoliosis": ("scoliosis", SCOLIOSIS),
    "hardware": ("hardware", vocab.HARDWARE),
    "sma_type": ("sma_type", vocab.SMA_TYPES),
    "operator": ("operator", ()),
    "level": ("level", vocab.LEVELS),  # final level, else the intended one
    "year": ("year", ()),
}

#: The analysis-row keys the statistics read.
NEEDED: tuple[str, ...] = (
    "patient_id",
    "drug_delivered",
    "attempts_n",
    "redirections_n",
    "first_attempt_success",
    "procedure_min",
    "puncture_min",
    "satisfaction_5min",
    "satisfaction_5min_timing",
    "sedation",
    "fu72_state",
    "fu72_timing",
    "satisfaction_72h",
    "pdph",
    "back_pain_nrs",
    "radicular_pain",
    "nausea_vomiting",
    "other_event_any",
    "other_event_serious",
)

_SEDATION_CODES = vocab.codes(vocab.SEDATION)
_SEDATION_DEPTH = timeline.SEDATION_DEPTH
#: Adverse events reported: (key, label, test on the analysis row).
ADVERSE_EVENTS: tuple[tuple[str, str], ...] = (
    ("pdph", "PDPH"),
    ("back_pain", "Back pain at the puncture site (NRS ≥ 1)"),
    ("radicular_pain", "Radicular pain"),
    ("nausea_vomiting", "Nausea / vomiting"),
    ("other_event", "Other adverse event"),
    ("other_event_serious", "Serious other adverse event"),
)
FU_STATES = ("done", "open", "unreachable", "declined")

#: The analysis-row column that answers each adverse-event question (NULL: not asked,
#: which is unknown, never "no": it leaves that figure's denominator). The serious
#: flag is asked of the other-event answer.
AE_COLUMNS: dict[str, str] = {
    "pdph": "pdph",
    "back_pain": "back_pain_nrs",
    "radicular_pain": "radicular_pain",
    "nausea_vomiting": "nausea_vomiting",
    "other_event": "other_event_any",
    "other_event_serious": "other_event_any",
}
#: When a score or follow-up was taken, against its window.
TIMINGS: tuple[tuple[str, str], ...] = (
    ("on_time", "in window"),
    ("early", "early"),
    ("late", "late"),
    (UNKNOWN, "time not known"),
)


# ---------------------------------------------------------------- value types
@dataclass(frozen=True)
class Count:
    """n of N, with the percentage (None when N is 0)."""

    n: int
    N: int

    @property
    def pct(self) -> float | None:
        return 100.0 * self.n / self.N if self.N else None

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "N": self.N, "pct": _round(self.pct, 1)}


@dataclass(frozen=True)
class Spread:
    """A numeric summary; every field None when n is 0, sd None when n < 2."""

    n: int
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    min: float | None = None
    max: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            **{
                k: _round(getattr(self, k), 4)
                for k in ("mean", "sd", "median", "q1", "q3", "min", "max")
            },
        }


def spread(values: Iterable[float]) -> Spread:
    """Summarise ``values`` (a list of numbers); see :func:`spread_counts`."""
    return spread_counts(Counter(values))


class DataError(ValueError):
    """A stored value the statistics cannot use (e.g. text where a number belongs)."""


def _require_numbers(*values: Any) -> None:
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise DataError(
                f"a value that is not a number ({v!r}) is stored where the report needs "
                "numbers; correct it in the database (sma-log info --check, then the record)"
            )


def _sorted_counts(counts: Mapping[float, int]) -> tuple[list[float], list[int]]:
    """Distinct values in order and the running total of their counts."""
    values: list[float] = []
    cum: list[int] = []
    total = 0
    present = [k for k, c in counts.items() if c > 0]
    _require_numbers(*present)
    for v in sorted(present):
        total += counts[v]
        values.append(v)
        cum.append(total)
    return values, cum


def _nth(values: list[float], cum: list[int], k: int) -> float:
    """``data[k]`` of the sorted data the histogram stands for (0-based)."""
    return values[bisect.bisect_right(cum, k)]


def median_counts(counts: Mapping[float, int]) -> float | None:
    """``statistics.median`` of the data a histogram stands for (None when empty)."""
    values, cum = _sorted_counts(counts)
    if not values:
        return None
    n = cum[-1]
    if n % 2:
        return _nth(values, cum, n // 2)
    return (_nth(values, cum, n // 2 - 1) + _nth(values, cum, n // 2)) / 2


def spread_counts(counts: Mapping[float, int]) -> Spread:
    """Summarise the data a histogram ``{value: count}`` stands for.

    The same figures as the list of values would give (quartiles exactly as
    ``statistics.quantiles(data, n=4, method="inclusive")``), computed without
    expanding the data: the report reads histograms kept in the database.
    """
    values, cum = _sorted_counts(counts)
    if not values:
        return Spread(0)
    n = cum[-1]
    lo, hi = float(values[0]), float(values[-1])
    if n == 1:
        return Spread(1, lo, None, lo, lo, lo, lo, hi)
    m = n - 1
    quartiles = []
    for i in (1, 2, 3):  # statistics.quantiles, method="inclusive", n=4
        j, delta = divmod(i * m, 4)
        a, b = _nth(values, cum, j), _nth(values, cum, j + 1)
        quartiles.append((a * (4 - delta) + b * delta) / 4)
    q1, median, q3 = quartiles
    # Float arithmetic with math.fsum: exact fractions cost far more and agree to far
    # more digits than a report shows.
    mean = math.fsum(v * counts[v] for v in values) / n
    sd = math.sqrt(math.fsum(counts[v] * (v - mean) ** 2 for v in values) / (n - 1))
    return Spread(n, mean, sd, float(median), float(q1), float(q3), lo, hi)


@dataclass(frozen=True)
class Figure:
    """One line of the report: what, counted over which unit, and the value."""

    key: str
    label: str
    unit: Unit
    value: Count | Spread | int

    def as_dict(self) -> dict[str, Any]:
        value = self.value.as_dict() if not isinstance(self.value, int) else {"n": self.value}
        return {"key": self.key, "label": self.label, "unit": self.unit, **value}


@dataclass
class GroupSummary:
    group: str
    label: str
    figures: list[Figure]

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "label": self.label,
            "figures": [f.as_dict() for f in self.figures],
        }


@dataclass
class Report:
    by: str | None
    unit: Unit
    groups: list[GroupSummary]
    overall: GroupSummary
    #: Filters applied: grouping → the group codes kept.
    where: dict[str, list[str]] = field(default_factory=dict)
    #: Counts about the records the figures leave out (e.g. ``cancelled``: starts
    #: cancelled before the first puncture), filled by whoever reads the file;
    #: ``long_missed``: open 72-h follow-ups missed for longer than the setting
    #: ``missed_after_days`` (out of the queue), counted at report time over the
    #: whole file (it depends on now and the setting: not a kept fact).
    quality: dict[str, int] = field(default_factory=dict)
    #: The ``missed_after_days`` setting ``quality["long_missed"]`` was counted with.
    missed_after_days: float | None = None

    def set_long_missed(self, n: int, missed_after_days: float) -> None:
        """The 72-h follow-ups missed > ``missed_after_days`` (whole file, now)."""
        self.quality["long_missed"] = n
        self.missed_after_days = missed_after_days

    def as_dict(self) -> dict[str, Any]:
        quality: dict[str, Any] = dict(self.quality)
        if self.missed_after_days is not None:
            quality["missed_after_days"] = self.missed_after_days
        return {
            "by": self.by,
            "where": dict(self.where),
            "unit": self.unit,
            "groups": [g.as_dict() for g in self.groups],
            "overall": self.overall.as_dict(),
            "data_quality": quality,
        }

    def quality_items(self) -> list[tuple[str, str, str, int]]:
        """The data-quality counts: (key, label, scope, n); scope ``overall`` (the
        report's dates and filters) or ``file`` (the whole file)."""
        items = []
        n = self.quality.get("cancelled")
        if n is not None:
            items.append(
                (
                    "cancelled",
                    "Cancelled before the first skin puncture (in no figure), procedures",
                    "overall",
                    n,
                )
            )
        of = self.quality.get("timeout_of")
        if of is not None:  # issue 14: only once the file has a time-out
            for key, label in (
                ("timeout_complete", "Pre-dose time-out complete (confirmed, nothing missing)"),
                ("timeout_flagged", "Pre-dose time-out with a flagged value"),
                ("timeout_overridden", "Pre-dose time-out gone ahead with a reason"),
            ):
                items.append((key, f"{label}, procedures of {of}", "overall", self.quality[key]))
        n = self.quality.get("long_missed")
        if n is not None and self.missed_after_days is not None:
            days = f"{self.missed_after_days:g}"
            items.append(
                (
                    "followup_72h_long_missed",
                    f"72-h follow-ups missed > {days} d (out of the queue; whole file, now), n",
                    "file",
                    n,
                )
            )
        return items

    def quality_lines(self) -> list[str]:
        """The data-quality lines printed under the table."""
        lines = []
        for key, label, _, n in self.quality_items():
            if key == "cancelled":  # its words since issue 9
                lines.append(
                    f"Cancelled before the first skin puncture (in no figure): {n} procedure(s)"
                )
            elif key.startswith("timeout_"):
                of = self.quality["timeout_of"]
                share = f" ({100 * n / of:.0f}%)" if of else ""
                label = label.rsplit(", procedures of", 1)[0]
                lines.append(f"{label}: {n} of {of} procedures{share}")
            elif n:  # none lost from sight: no line (the CSV and JSON keep the 0)
                lines.append(f"{label.removesuffix(', n')}: {n}")
        return lines


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


# ---------------------------------------------------------------- accumulation
class Columns:
    """Where each column the rules read sits in a row tuple."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        missing = [c for c in NEEDED if c not in self.index]
        if missing:
            raise ValueError(f"rows lack column(s): {', '.join(missing)}")

    def __getitem__(self, name: str) -> int:
        return self.index[name]


class _Acc:
    """Histograms of one group's procedures.

    Made by :func:`_accumulate` from rows, and added together (:meth:`merge`) when the
    rows come in chunks.
    """

    __slots__ = (
        "n",
        "delivered",
        "patients",
        *(
            "attempts",  # punctured procedures only
            "redirections",
            "fas",  # 1 success, 0 not
            "proc_min",
            "punct_min",
            "sat5",  # taken in its window
            "sat5_timing",  # every score taken
            "sat72",  # taken in its window
            "fu72_timing",  # every completed call
            "sedation",
            "fu",
            "ae",
            "ae_known",  # the question was answered
        ),
    )

    n: int
    delivered: int
    patients: set[Any]
    attempts: Counter[Any]
    redirections: Counter[Any]
    fas: Counter[int]
    proc_min: Counter[Any]
    punct_min: Counter[Any]
    sat5: Counter[Any]
    sat5_timing: Counter[str]
    sat72: Counter[Any]
    fu72_timing: Counter[str]
    sedation: Counter[str]
    fu: Counter[str]
    ae: Counter[str]
    ae_known: Counter[str]

    def __init__(self, n: int = 0, delivered: int = 0, **counters: Any) -> None:
        """An accumulator (empty counters to :meth:`merge` into), or the histograms
        given; those not given are empty and must not be added to."""
        self.n = n
        self.delivered = delivered
        self.patients = counters.pop("patients", None) or set()
        fresh = not counters
        for name in _COUNTERS:
            setattr(self, name, Counter() if fresh else counters.get(name, _NOTHING))

    def merge(self, other: _Acc) -> None:
        self.n += other.n
        self.delivered += other.delivered
        for name in _COUNTERS:
            getattr(self, name).update(getattr(other, name))
        self.patients |= other.patients


#: The histogram of fields an accumulator leaves out (never added to).
_NOTHING: Mapping[Any, int] = Counter()


_COUNTERS = (
    "attempts",
    "redirections",
    "fas",
    "proc_min",
    "punct_min",
    "sat5",
    "sat5_timing",
    "sat72",
    "fu72_timing",
    "sedation",
    "fu",
    "ae",
    "ae_known",
)


def _at_least_one(v: Any) -> bool:
    """An NRS of 1 or more (text in the column never counts)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1


# The rules of what each ended procedure contributes, written once and read by both
# units: the procedure histograms (:func:`_accumulate`) and the patient summaries
# (:meth:`_PatientFold.add_rows`).
def _punctured(rows: Sequence[Sequence[Any]], c: Columns) -> list[Sequence[Any]]:
    """Procedures with a needle insertion: the only ones with attempts, redirections
    and a first-attempt outcome."""
    att = c["attempts_n"]
    return [r for r in rows if r[att]]


def _redirections(punctured: Sequence[Sequence[Any]], c: Columns) -> list[Any]:
    """Punctured procedures' redirections (none recorded: 0)."""
    red = c["redirections_n"]
    return [r[red] or 0 for r in punctured]


def _fas_known(punctured: Sequence[Sequence[Any]], c: Columns) -> list[Sequence[Any]]:
    """Punctured procedures whose first-attempt outcome is known (truthy: success)."""
    fas = c["first_attempt_success"]
    return [r for r in punctured if r[fas] is not None]


def _done(rows: Sequence[Sequence[Any]], c: Columns) -> list[Sequence[Any]]:
    """Procedures whose 72-hour follow-up was completed."""
    state = c["fu72_state"]
    return [r for r in rows if r[state] == "done"]


def _adverse_events(
    done: Sequence[Sequence[Any]], c: Columns
) -> Iterator[tuple[str, list[Sequence[Any]], list[Sequence[Any]]]]:
    """Per adverse event: the completed follow-ups whose question was answered (unknown
    is not "no") and those that report the event (back pain: an NRS of 1 or more;
    "serious" is asked of the other-event answer)."""
    serious = c["other_event_serious"]
    for key, col in AE_COLUMNS.items():
        i = c[col]
        asked = [r for r in done if r[i] is not None]
        if key == "back_pain":
            hit = [r for r in asked if _at_least_one(r[i])]
        elif key == "other_event_serious":
            hit = [r for r in asked if r[serious]]
        else:
            hit = [r for r in asked if r[i]]
        yield key, asked, hit


def _sedations(rows: Sequence[Sequence[Any]], c: Columns) -> list[str]:
    """Each procedure's sedation code (none recorded: unknown)."""
    sed = c["sedation"]
    return [r[sed] or UNKNOWN for r in rows]


def _deepest(codes: Iterable[str]) -> str:
    """The deepest of a patient's sedations (unknown codes below every known one)."""
    return max(sorted(set(codes)), key=lambda k: _SEDATION_DEPTH.get(k, -1))


def _median(values: Sequence[Any]) -> Any:
    """``statistics.median`` of a few numbers (a patient's procedures): the same value
    :func:`median_counts` gives for their histogram."""
    s = sorted(values)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def _accumulate(rows: Sequence[Sequence[Any]], c: Columns, *, per_procedure: bool = True) -> _Acc:
    """The histograms of the procedures ``rows``: the rules above, column at a time
    (each rule is one pass over the rows), for the CLI and the report screen alike.

    ``per_procedure=False``: only the figures that stay per procedure in the patient
    unit (times, satisfaction, follow-ups); the patient figures come from
    :meth:`_PatientFold.add_rows`.
    """
    state = c["fu72_state"]
    done = _done(rows, c)
    acc = _Acc(len(rows), fu=Counter(r[state] or "none" for r in rows))
    # per procedure in both units: times, and satisfaction taken in its window
    for name, col in (("proc_min", "procedure_min"), ("punct_min", "puncture_min")):
        i = c[col]
        setattr(acc, name, Counter(r[i] for r in rows if r[i] is not None))
    s5, t5 = c["satisfaction_5min"], c["satisfaction_5min_timing"]
    scored = [r for r in rows if r[s5] is not None]
    acc.sat5_timing = Counter(r[t5] or UNKNOWN for r in scored)
    acc.sat5 = Counter(r[s5] for r in scored if r[t5] == "on_time")
    s72, t72 = c["satisfaction_72h"], c["fu72_timing"]
    acc.fu72_timing = Counter(r[t72] or UNKNOWN for r in done)
    acc.sat72 = Counter(r[s72] for r in done if r[s72] is not None and r[t72] == "on_time")
    if not per_procedure:
        return acc
    delivered, att, fas = c["drug_delivered"], c["attempts_n"], c["first_attempt_success"]
    punctured = _punctured(rows, c)
    acc.delivered = sum(1 for r in rows if r[delivered])
    acc.attempts = Counter(r[att] for r in punctured)
    acc.redirections = Counter(_redirections(punctured, c))
    acc.fas = Counter(1 if r[fas] else 0 for r in _fas_known(punctured, c))
    acc.sedation = Counter(_sedations(rows, c))
    acc.ae, acc.ae_known = Counter(), Counter()
    for key, asked, hit in _adverse_events(done, c):
        acc.ae_known[key] = len(asked)
        acc.ae[key] = len(hit)
    pid = c["patient_id"]
    acc.patients = {r[pid] for r in rows}
    return acc


def _pct_le(counts: Mapping[float, int], limit: float) -> Count:
    return Count(sum(c for v, c in counts.items() if v <= limit), sum(c for c in counts.values()))


def _proc_figures(acc: _Acc, patients_n: int) -> list[Figure]:
    P: Unit = "procedure"
    figs = [
        Figure("patients", "Patients, n", "patient", patients_n),
        Figure("procedures", "Procedures, n", P, acc.n),
        Figure("success", "Success (drug delivered), n/N (%)", P, Count(acc.delivered, acc.n)),
        Figure("attempts", "Attempts, median (IQR; range)", P, spread_counts(acc.attempts)),
        Figure(
            "first_attempt",
            "First-attempt success, n/N (%)",
            P,
            Count(acc.fas[1], acc.fas[0] + acc.fas[1]),
        ),
        Figure("attempts_le2", "≤ 2 attempts, n/N (%)", P, _pct_le(acc.attempts, 2)),
        Figure("attempts_le4", "≤ 4 attempts, n/N (%)", P, _pct_le(acc.attempts, 4)),
        Figure(
            "redirections", "Redirections, median (IQR; range)", P, spread_counts(acc.redirections)
        ),
    ]
    figs += _shared_figures(acc)
    figs += [
        Figure(f"sedation_{code}", f"Sedation: {text}, n (%)", P, Count(acc.sedation[code], acc.n))
        for code, text in (*vocab.SEDATION, (UNKNOWN, UNKNOWN_LABEL))
        if code != UNKNOWN or acc.sedation[UNKNOWN]
    ]
    figs += [
        Figure(key, f"{text}, n/N asked (%)", P, Count(acc.ae[key], acc.ae_known[key]))
        for key, text in ADVERSE_EVENTS
    ]
    figs += _followup_figures(acc)
    figs += _timing_figures(acc)
    return figs


def _shared_figures(acc: _Acc) -> list[Figure]:
    """Per-procedure figures in both units: times and satisfaction."""
    P: Unit = "procedure"
    return [
        Figure("procedure_min", "Procedure time, min", P, spread_counts(acc.proc_min)),
        Figure("puncture_min", "Puncture time, min", P, spread_counts(acc.punct_min)),
        Figure(
            "satisfaction_5min",
            "Satisfaction at 5 min (1–5), in window",
            P,
            spread_counts(acc.sat5),
        ),
        Figure(
            "satisfaction_72h",
            "Satisfaction at 72 h (1–5), in window",
            P,
            spread_counts(acc.sat72),
        ),
    ]


def _timing_figures(acc: _Acc) -> list[Figure]:
    """When scores were taken: early (confirmed) and late ones are left out of the
    satisfaction figures; their numbers are shown here (data quality)."""
    P: Unit = "procedure"
    scored = sum(acc.sat5_timing.values())
    called = sum(acc.fu72_timing.values())
    figs = []
    for code, words in TIMINGS[1:]:
        figs.append(
            Figure(
                f"score_5min_{code}",
                f"5-min scores taken {words} (not in the figure), n/N (%)",
                P,
                Count(acc.sat5_timing[code], scored),
            )
        )
    for code, words in TIMINGS[1:]:
        figs.append(
            Figure(
                f"followup_72h_{code}",
                f"72-h follow-ups done {words} (not in the figure), n/N (%)",
                P,
                Count(acc.fu72_timing[code], called),
            )
        )
    return figs


def _followup_figures(acc: _Acc) -> list[Figure]:
    P: Unit = "procedure"
    labels = {
        "done": "done",
        "open": "open",
        "unreachable": "not reachable",
        "declined": "declined",
    }
    return [
        Figure(f"followup_{s}", f"72-h follow-up {labels[s]}, n (%)", P, Count(acc.fu[s], acc.n))
        for s in FU_STATES
    ]


@dataclass
class _PatientFold:
    """Patient summaries of one group, folded in a batch of whole patients at a time.

    Holds counts and histograms only, so a report over any number of patients keeps
    constant memory when the rows come grouped by patient (one chunk of rows at a time).
    """

    n: int = 0
    success: int = 0
    medians_att: Counter[float] = field(default_factory=Counter)
    medians_red: Counter[float] = field(default_factory=Counter)
    fas_known: int = 0
    fas_every: int = 0
    deepest: Counter[str] = field(default_factory=Counter)
    followed: int = 0
    ae_any: Counter[str] = field(default_factory=Counter)
    ae_known: Counter[str] = field(default_factory=Counter)

    def add_rows(self, rows: Sequence[Sequence[Any]], c: Columns) -> None:
        """The patients of ``rows``, each summarised from their procedures by the
        per-patient rules of the module docstring over the same per-procedure rules as
        the procedure figures. Each patient's rows come together, and all of them (in
        this group): no patient is split between two calls.
        """
        pid = c["patient_id"]
        delivered, att, fas = c["drug_delivered"], c["attempts_n"], c["first_attempt_success"]
        patients = {r[pid] for r in rows}
        self.n += len(patients)
        self.success += len(patients) - len({r[pid] for r in rows if not r[delivered]})
        punctured = _punctured(rows, c)
        # a patient's value is the median over their punctured procedures
        attempts = [r[att] for r in punctured]
        redirections = _redirections(punctured, c)
        _require_numbers(*set(attempts), *set(redirections))
        i = 0
        for _, run in itertools.groupby(r[pid] for r in punctured):
            j = i + sum(1 for _ in run)
            self.medians_att[_median(attempts[i:j])] += 1
            self.medians_red[_median(redirections[i:j])] += 1
            i = j
        known = _fas_known(punctured, c)
        every = {r[pid] for r in known}
        self.fas_known += len(every)
        self.fas_every += len(every - {r[pid] for r in known if not r[fas]})
        sedations = _sedations(rows, c)
        i = 0
        for _, run in itertools.groupby(r[pid] for r in rows):
            j = i + sum(1 for _ in run)
            self.deepest[_deepest(sedations[i:j])] += 1
            i = j
        done = _done(rows, c)
        self.followed += len({r[pid] for r in done})
        for key, asked, hit in _adverse_events(done, c):
            self.ae_known[key] += len({r[pid] for r in asked})
            self.ae_any[key] += len({r[pid] for r in hit})


def _patient_figures(acc: _Acc, fold: _PatientFold) -> list[Figure]:
    """Per-patient figures of a group (see the module docstring for the rules)."""
    T: Unit = "patient"
    n = fold.n
    figs = [
        Figure("patients", "Patients, n", T, n),
        Figure("procedures", "Procedures, n", "procedure", acc.n),
        Figure("success", "Success (every dose delivered), n/N (%)", T, Count(fold.success, n)),
        Figure(
            "attempts",
            "Attempts (patient median), median (IQR; range)",
            T,
            spread_counts(fold.medians_att),
        ),
        Figure(
            "first_attempt",
            "First-attempt success every time, n/N (%)",
            T,
            Count(fold.fas_every, fold.fas_known),
        ),
        Figure(
            "attempts_le2",
            "≤ 2 attempts (patient median), n/N (%)",
            T,
            _pct_le(fold.medians_att, 2),
        ),
        Figure(
            "attempts_le4",
            "≤ 4 attempts (patient median), n/N (%)",
            T,
            _pct_le(fold.medians_att, 4),
        ),
        Figure(
            "redirections",
            "Redirections (patient median), median (IQR; range)",
            T,
            spread_counts(fold.medians_red),
        ),
    ]
    figs += _shared_figures(acc)
    figs += [
        Figure(
            f"sedation_{code}",
            f"Deepest sedation: {text}, n (%)",
            T,
            Count(fold.deepest[code], n),
        )
        for code, text in (*vocab.SEDATION, (UNKNOWN, UNKNOWN_LABEL))
        if code != UNKNOWN or fold.deepest[UNKNOWN]
    ]
    figs += [
        Figure(key, f"{text} (any), n/N asked (%)", T, Count(fold.ae_any[key], fold.ae_known[key]))
        for key, text in ADVERSE_EVENTS
    ]
    figs += _followup_figures(acc)
    figs += _timing_figures(acc)
    return figs


def group_key(row: Mapping[str, Any], by: str) -> str:
    """The group code of a row (a mapping) for grouping ``by``."""
    return _code(row[GROUPINGS[by][0]])


def _code(value: Any) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


def group_label(by: str | None, code: str) -> str:
    if code == UNKNOWN:
        return UNKNOWN_LABEL
    if by is None:
        return code
    choices = GROUPINGS[by][1]
    return vocab.label(choices, code) if choices else code


def _order(by: str, keys: Iterable[str]) -> list[str]:
    """Vocabulary order for coded groups, else sorted; "unknown" last."""
    keys = set(keys)
    codes = [str(c) for c in vocab.codes(GROUPINGS[by][1])]
    known = [c for c in codes if c in keys]
    rest = sorted(k for k in keys if k not in codes and k != UNKNOWN)
    return known + rest + ([UNKNOWN] if UNKNOWN in keys else [])


#: Separates the codes of a two-way group (``paramedian|severe``) in its key.
GROUP_SEP = "|"


def parse_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"approach,scoliosis"`` / ``["approach"]`` / None → the groupings, checked."""
    if by is None or by == "":
        return ()
    dims = tuple(d.strip() for d in by.split(",")) if isinstance(by, str) else tuple(by)
    for d in dims:
        if d not in GROUPINGS:
            raise ValueError(f"unknown grouping {d!r}; choose one of {', '.join(GROUPINGS)}")
    if len(set(dims)) != len(dims):
        raise ValueError("a grouping is given twice")
    return dims


def parse_where(where: Mapping[str, str | Sequence[str]] | None) -> dict[str, frozenset[str]]:
    """Filters ``grouping → allowed group codes`` (a code, or a label of the vocabulary,
    or "unknown"), checked against the groupings' vocabularies."""
    out: dict[str, frozenset[str]] = {}
    for dim, wanted in (where or {}).items():
        if dim not in GROUPINGS:
            raise ValueError(f"unknown grouping {dim!r}; choose one of {', '.join(GROUPINGS)}")
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        choices = GROUPINGS[dim][1]
        codes: set[str] = set()
        for value in values:
            v = value.strip()
            # a code or a label, in any case
            named = {str(code).lower(): str(code) for code in vocab.codes(choices)}
            named |= {text.lower(): str(code) for code, text in choices}
            named[UNKNOWN] = UNKNOWN
            if v.lower() in named:
                codes.add(named[v.lower()])
            elif choices:
                raise ValueError(
                    f"{dim}={v!r} is not a {dim}; choose one of "
                    + ", ".join(str(code) for code in vocab.codes(choices))
                )
            else:
                codes.add(v)
        out[dim] = out.get(dim, frozenset()) | frozenset(codes)
    return out


def row_filter(
    columns: Sequence[str], filters: Mapping[str, frozenset[str]]
) -> Callable[[Sequence[Any]], bool]:
    """Whether a row tuple (in the order of ``columns``) is kept by ``filters`` (from
    :func:`parse_where`): its group is one of the codes given, per grouping."""
    index = {name: i for i, name in enumerate(columns)}
    keep = [(index[GROUPINGS[d][0]], codes) for d, codes in filters.items()]
    if not keep:
        return lambda r: True
    return lambda r: all(_code(r[i]) in codes for i, codes in keep)


def _key_of(c: Columns, dims: tuple[str, ...]) -> Any:
    """A function giving a row tuple's group key for ``dims`` (one code, or several)."""
    idx = [c[GROUPINGS[d][0]] for d in dims]
    if len(idx) == 1:
        (i,) = idx
        return lambda r: _code(r[i])
    return lambda r: GROUP_SEP.join(_code(r[i]) for i in idx)


def _label(dims: tuple[str, ...], key: str) -> str:
    if len(dims) == 1:
        return group_label(dims[0], key)
    return " × ".join(group_label(d, k) for d, k in zip(dims, key.split(GROUP_SEP), strict=True))


def _ordered_keys(dims: tuple[str, ...], keys: Iterable[str]) -> list[str]:
    """Every dimension in its own order (vocabulary, then sorted, unknown last)."""
    keys = list(keys)
    if len(dims) == 1:
        return _order(dims[0], keys)
    parts = [k.split(GROUP_SEP) for k in keys]
    orders = [
        {code: i for i, code in enumerate(_order(d, {p[n] for p in parts}))}
        for n, d in enumerate(dims)
    ]
    return sorted(
        keys, key=lambda k: tuple(o[c] for o, c in zip(orders, k.split(GROUP_SEP), strict=True))
    )


#: Rows are summarised in chunks of this many: memory stays flat at any size.
CHUNK = 20_000


def summarise(
    rows: Iterable[Mapping[str, Any]],
    by: str | Sequence[str] | None = None,
    unit: Unit = "procedure",
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    grouped_by_patient: bool = False,
) -> Report:
    """The report's figures per group and overall, from rows given as mappings.

    See :func:`summarise_table` (this reads the same keys from each mapping).
    """
    it = iter(rows)
    first = next(it, None)
    if first is None:
        dims = [*parse_by(by), *parse_where(where)]
        names = list(dict.fromkeys([*NEEDED, *(GROUPINGS[d][0] for d in dims)]))
        return summarise_table(names, [], by, unit, where=where)
    names = list(first)
    return summarise_table(
        names,
        (tuple(r[n] for n in names) for r in itertools.chain([first], it)),
        by,
        unit,
        where=where,
        grouped_by_patient=grouped_by_patient,
    )


def summarise_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    by: str | Sequence[str] | None = None,
    unit: Unit = "procedure",
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    grouped_by_patient: bool = False,
) -> Report:
    """The report's figures per group (``by``: one grouping of :data:`GROUPINGS`, or
    several for a two-way table, e.g. ``"approach,scoliosis"``) and overall.

    ``rows`` are tuples in the order of ``columns`` (the keys of :data:`NEEDED` and of
    the groupings used). ``where`` keeps only rows whose group is one of the given codes
    per grouping (``{"approach": "paramedian"}``). Rows are read once, in chunks, so
    memory stays flat; with ``unit="patient"`` each patient is summarised from their
    own procedures (``grouped_by_patient``: the rows come with each patient's together,
    so patients are summarised a chunk at a time, column at a time, and only the last
    patient of a chunk is held over; otherwise every row is held until the end).
    """
    dims = parse_by(by)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose procedure or patient")
    filters = parse_where(where)
    c = Columns(columns)
    keep = row_filter(columns, filters) if filters else None
    key_of = _key_of(c, dims) if dims else None
    per_patient = unit == "patient"
    overall = _Acc()
    groups: dict[str, _Acc] = {}
    folds: dict[str, _PatientFold] = {}  # "" is overall
    pid = c["patient_id"]

    def parts_of(chunk: Sequence[Sequence[Any]]) -> dict[str, list[Sequence[Any]]]:
        """The rows of each group, in their order."""
        assert key_of is not None
        parts: dict[str, list[Sequence[Any]]] = {}
        for r in chunk:
            parts.setdefault(key_of(r), []).append(r)
        return parts

    def add(chunk: Sequence[Sequence[Any]]) -> None:
        # the patient unit reads only the per-procedure figures from the histograms
        overall.merge(_accumulate(chunk, c, per_procedure=not per_patient))
        if key_of is None:
            return
        for key, part in parts_of(chunk).items():
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = _Acc()
            acc.merge(_accumulate(part, c, per_procedure=not per_patient))

    def fold(batch: Sequence[Sequence[Any]]) -> None:
        """Patients whose rows are all in ``batch``, each patient's together."""
        folds.setdefault("", _PatientFold()).add_rows(batch, c)
        if key_of is None:
            return
        for key, part in parts_of(batch).items():
            folds.setdefault(key, _PatientFold()).add_rows(part, c)

    held: list[Sequence[Any]] = []  # rows of patients that may continue
    source = iter(rows)
    while chunk := list(itertools.islice(source, CHUNK)):
        if keep is not None:
            chunk = [r for r in chunk if keep(r)]
        add(chunk)
        if not per_patient or not chunk:
            continue
        held += chunk
        if grouped_by_patient:
            # every patient but the last is complete: summarise them, keep the last
            last, cut = held[-1][pid], len(held)
            while cut and held[cut - 1][pid] == last:
                cut -= 1
            if cut:
                fold(held[:cut])
                del held[:cut]
    if held:
        if not grouped_by_patient:  # bring each patient's rows together
            together: dict[Any, list[Sequence[Any]]] = {}
            for r in held:
                together.setdefault(r[pid], []).append(r)
            held = [r for own in together.values() for r in own]
        fold(held)

    def make(acc: _Acc, key: str) -> list[Figure]:
        if per_patient:
            return _patient_figures(acc, folds.get(key) or _PatientFold())
        return _proc_figures(acc, len(acc.patients))

    summaries = [
        GroupSummary(k, _label(dims, k), make(groups[k], k))
        for k in (_ordered_keys(dims, groups) if dims else [])
    ]
    return Report(
        ",".join(dims) or None,
        unit,
        summaries,
        GroupSummary("overall", "Overall", make(overall, "")),
        where={d: sorted(v) for d, v in filters.items()},
    )
