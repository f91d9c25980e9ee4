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
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
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


def ae_reported(key: str, row: Mapping[str, Any]) -> bool:
    """Whether the row reports adverse event ``key`` (back pain: an NRS of 1 or more)."""
    if key == "back_pain":
        return _at_least_one(row["back_pain_nrs"])
    if key == "other_event_serious":
        return bool(row["other_event_serious"])
    return bool(row[AE_COLUMNS[key]])


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


def _sorted_counts(counts: Mapping[Any, int]) -> tuple[list[Any], list[int]]:
    """Distinct values in order and the running total of their counts."""
    values, cum, total = [], [], 0
    present = [k for k, c in counts.items() if c > 0]
    _require_numbers(*present)
    for v in sorted(present):
        total += counts[v]
        values.append(v)
        cum.append(total)
    return values, cum


def _nth(values: list[Any], cum: list[int], k: int) -> Any:
    """``data[k]`` of the sorted data the histogram stands for (0-based)."""
    return values[bisect.bisect_right(cum, k)]


def median_counts(counts: Mapping[Any, int]) -> float | None:
    """``statistics.median`` of the data a histogram stands for (None when empty)."""
    values, cum = _sorted_counts(counts)
    if not values:
        return None
    n = cum[-1]
    if n % 2:
        return _nth(values, cum, n // 2)
    return (_nth(values, cum, n // 2 - 1) + _nth(values, cum, n // 2)) / 2


def spread_counts(counts: Mapping[Any, int]) -> Spread:
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
    #: Counts about the records the figures leave out (e.g. ``cancelled``: starts
    #: cancelled before the first puncture), filled by whoever reads the file.
    quality: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "unit": self.unit,
            "groups": [g.as_dict() for g in self.groups],
            "overall": self.overall.as_dict(),
            "data_quality": dict(self.quality),
        }

    def quality_lines(self) -> list[str]:
        """The data-quality lines printed under the table."""
        n = self.quality.get("cancelled")
        if n is None:
            return []
        return [
            f"Cancelled before the first skin puncture (in no figure): {n} procedure(s)",
        ]


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


# ---------------------------------------------------------------- accumulation
@dataclass
class _Acc:
    """Histograms of one group (or of one patient within a group).

    Filled row by row (:meth:`add`) or, for the whole-file report, from the cells the
    database keeps (:meth:`add_cell`); :data:`CELL_RULES` states :meth:`add`'s rules
    in SQL, and a property test holds the two to the same figures.
    """

    n: int = 0
    delivered: int = 0
    attempts: Counter[int] = field(default_factory=Counter)
    redirections: Counter[int] = field(default_factory=Counter)
    fas: Counter[int] = field(default_factory=Counter)  # 1 success, 0 not
    proc_min: Counter[float] = field(default_factory=Counter)
    punct_min: Counter[float] = field(default_factory=Counter)
    sat5: Counter[int] = field(default_factory=Counter)  # taken in its window
    sat5_timing: Counter[str] = field(default_factory=Counter)  # every score taken
    sat72: Counter[int] = field(default_factory=Counter)  # taken in its window
    fu72_timing: Counter[str] = field(default_factory=Counter)  # every completed call
    sedation: Counter[str] = field(default_factory=Counter)
    fu: Counter[str] = field(default_factory=Counter)
    ae: Counter[str] = field(default_factory=Counter)
    ae_known: Counter[str] = field(default_factory=Counter)  # the question was answered
    patients: dict[Any, Any] | None = None  # patient → _PatientAcc (or None: counted)
    patients_n: int = 0

    def add(self, r: Mapping[str, Any]) -> None:
        self.n += 1
        if r["drug_delivered"]:
            self.delivered += 1
        v = r["attempts_n"]
        if v:  # at least one needle insertion
            self.attempts[v] += 1
            self.redirections[r["redirections_n"] or 0] += 1
            f = r["first_attempt_success"]
            if f is not None:
                self.fas[1 if f else 0] += 1
        v = r["procedure_min"]
        if v is not None:
            self.proc_min[v] += 1
        v = r["puncture_min"]
        if v is not None:
            self.punct_min[v] += 1
        v = r["satisfaction_5min"]
        if v is not None:
            timing = r["satisfaction_5min_timing"] or UNKNOWN
            self.sat5_timing[timing] += 1
            if timing == "on_time":
                self.sat5[v] += 1
        self.sedation[r["sedation"] or UNKNOWN] += 1
        state = r["fu72_state"] or "none"
        self.fu[state] += 1
        if state == "done":
            timing = r["fu72_timing"] or UNKNOWN
            self.fu72_timing[timing] += 1
            v = r["satisfaction_72h"]
            if v is not None and timing == "on_time":
                self.sat72[v] += 1
            for key, col in AE_COLUMNS.items():
                if r[col] is not None:
                    self.ae_known[key] += 1
                    if ae_reported(key, r):
                        self.ae[key] += 1

    def add_cell(self, metric: str, value: Any, n: int) -> None:
        """Add ``n`` procedures whose ``metric`` had ``value`` (one cell of the cache)."""
        if metric == "n":
            self.n += n
        elif metric == "delivered":
            self.delivered += n
        elif metric == "patients":  # distinct patients of the group
            self.patients_n += n
        else:
            getattr(self, _CELL_FIELDS[metric])[value] += n


def _truthy(x: str) -> str:
    """Python's truth of a value of a numeric column, in SQL: not NULL, not 0, not ''.

    (A third-party tool can store text such as 'yes' in an INTEGER column: Python
    counts it as true, and so must the cells.)
    """
    return f"({x} IS NOT NULL AND {x} != 0 AND {x} != '')"


def _at_least_one(v: Any) -> bool:
    """An NRS of 1 or more (text in the column never counts)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1


#: One ended procedure's contribution to the report cells kept in the database, in SQL
#: over the columns of its fact row (``{column}`` placeholders): (metric, value,
#: condition). Exactly :meth:`_Acc.add`'s rules. (A ``patients`` cell per group holds
#: its number of distinct patients; see :mod:`sma_log.storage.reportcache`.)
CELL_RULES: tuple[tuple[str, str, str], ...] = (
    ("n", "''", "1"),
    ("delivered", "''", _truthy("{drug_delivered}")),
    ("attempts", "{attempts_n}", _truthy("{attempts_n}")),
    (
        "redirections",
        f"CASE WHEN {_truthy('{redirections_n}')} THEN {{redirections_n}} ELSE 0 END",
        _truthy("{attempts_n}"),
    ),
    (
        "fas",
        f"CASE WHEN {_truthy('{first_attempt_success}')} THEN 1 ELSE 0 END",
        f"{_truthy('{attempts_n}')} AND {{first_attempt_success}} IS NOT NULL",
    ),
    ("procedure_min", "{procedure_min}", "{procedure_min} IS NOT NULL"),
    ("puncture_min", "{puncture_min}", "{puncture_min} IS NOT NULL"),
    (
        "sat5",
        "{satisfaction_5min}",
        "{satisfaction_5min} IS NOT NULL AND {satisfaction_5min_timing} = 'on_time'",
    ),
    (
        "sat5_timing",
        f"coalesce(nullif({{satisfaction_5min_timing}}, ''), '{UNKNOWN}')",
        "{satisfaction_5min} IS NOT NULL",
    ),
    ("sedation", f"coalesce(nullif({{sedation}}, ''), '{UNKNOWN}')", "1"),
    ("fu", "coalesce(nullif({fu72_state}, ''), 'none')", "1"),
    (
        "fu72_timing",
        f"coalesce(nullif({{fu72_timing}}, ''), '{UNKNOWN}')",
        "{fu72_state} = 'done'",
    ),
    (
        "sat72",
        "{satisfaction_72h}",
        "{fu72_state} = 'done' AND {satisfaction_72h} IS NOT NULL AND {fu72_timing} = 'on_time'",
    ),
    *(
        ("ae_known", f"'{key}'", f"{{fu72_state}} = 'done' AND {{{col}}} IS NOT NULL")
        for key, col in AE_COLUMNS.items()
    ),
    ("ae", "'pdph'", f"{{fu72_state}} = 'done' AND {_truthy('{pdph}')}"),
    (
        "ae",
        "'back_pain'",
        "{fu72_state} = 'done' AND typeof({back_pain_nrs}) IN ('integer', 'real') "
        "AND {back_pain_nrs} >= 1",
    ),
    ("ae", "'radicular_pain'", f"{{fu72_state}} = 'done' AND {_truthy('{radicular_pain}')}"),
    ("ae", "'nausea_vomiting'", f"{{fu72_state}} = 'done' AND {_truthy('{nausea_vomiting}')}"),
    (
        "ae",
        "'other_event'",
        f"{{fu72_state}} = 'done' AND {{other_event_any}} IS NOT NULL "
        f"AND {_truthy('{other_event_any}')}",
    ),
    (
        "ae",
        "'other_event_serious'",
        "{fu72_state} = 'done' AND {other_event_any} IS NOT NULL "
        f"AND {_truthy('{other_event_serious}')}",
    ),
)
_CELL_FIELDS = {
    "attempts": "attempts",
    "redirections": "redirections",
    "fas": "fas",
    "procedure_min": "proc_min",
    "puncture_min": "punct_min",
    "sat5": "sat5",
    "sat72": "sat72",
    "sat5_timing": "sat5_timing",
    "fu72_timing": "fu72_timing",
    "sedation": "sedation",
    "fu": "fu",
    "ae": "ae",
    "ae_known": "ae_known",
}


def group_sql(column: str) -> str:
    """:func:`group_key` in SQL: the group code of a column's value."""
    return (
        f"CASE WHEN {column} IS NULL OR {column} = '' THEN '{UNKNOWN}' "
        f"ELSE CAST({column} AS TEXT) END"
    )


def _pct_le(counts: Mapping[Any, int], limit: float) -> Count:
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


class _PatientAcc:
    """One patient's procedures within one group: only what the per-patient rules read."""

    __slots__ = (
        "ae",
        "ae_known",
        "attempts",
        "delivered",
        "done",
        "fas_failed",
        "fas_known",
        "n",
        "redirections",
        "sedation",
    )

    def __init__(self) -> None:
        self.n = self.delivered = self.fas_known = self.fas_failed = 0
        self.attempts: list[int] = []
        self.redirections: list[int] = []
        self.sedation: set[str] = set()
        self.done = False
        self.ae: set[str] = set()
        self.ae_known: set[str] = set()

    def add(self, r: Mapping[str, Any]) -> None:
        """The rules of :meth:`_Acc.add`, kept to what :class:`_PatientFold` needs."""
        self.n += 1
        if r["drug_delivered"]:
            self.delivered += 1
        v = r["attempts_n"]
        if v:
            red = r["redirections_n"] or 0
            _require_numbers(v, red)
            self.attempts.append(v)
            self.redirections.append(red)
            f = r["first_attempt_success"]
            if f is not None:
                self.fas_known += 1
                if not f:
                    self.fas_failed += 1
        self.sedation.add(r["sedation"] or UNKNOWN)
        if r["fu72_state"] == "done":
            self.done = True
            for key, col in AE_COLUMNS.items():
                if r[col] is not None:
                    self.ae_known.add(key)
                    if ae_reported(key, r):
                        self.ae.add(key)


@dataclass
class _PatientFold:
    """Patient summaries of one group, folded in one patient at a time.

    Holds counts and histograms only, so a report over any number of patients keeps
    constant memory when the rows come grouped by patient.
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

    def add(self, p: _PatientAcc) -> None:
        self.n += 1
        if p.delivered == p.n:
            self.success += 1
        if p.attempts:
            self.medians_att[statistics.median(p.attempts)] += 1
            self.medians_red[statistics.median(p.redirections)] += 1
        if p.fas_known:
            self.fas_known += 1
            if not p.fas_failed:
                self.fas_every += 1
        if p.sedation:
            self.deepest[max(sorted(p.sedation), key=lambda k: _SEDATION_DEPTH.get(k, -1))] += 1
        if p.done:
            self.followed += 1
            for key in p.ae:
                self.ae_any[key] += 1
            for key in p.ae_known:
                self.ae_known[key] += 1


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
    value = row[GROUPINGS[by][0]]
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


def summarise(
    rows: Iterable[Mapping[str, Any]],
    by: str | None = None,
    unit: Unit = "procedure",
    *,
    grouped_by_patient: bool = False,
) -> Report:
    """The report's figures per group (``by``, one of :data:`GROUPINGS`) and overall.

    Rows are read once (streamed); only :data:`NEEDED` keys and the group key are used.
    ``grouped_by_patient``: the rows come with each patient's procedures together, so
    each patient is summarised as soon as their rows end and memory stays constant
    (otherwise every patient's summary is held until the end).
    """
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}")
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose procedure or patient")
    per_patient = unit == "patient"
    overall = _Acc(patients={})
    groups: dict[str, _Acc] = {}
    folds: dict[int, _PatientFold] = {}  # by id() of the group's accumulator
    col = GROUPINGS[by][0] if by else None
    current: Any = object()

    def flush() -> None:
        for acc in (overall, *groups.values()):
            pats = acc.patients
            assert pats is not None
            if per_patient:
                fold = folds.get(id(acc))
                if fold is None:
                    fold = folds[id(acc)] = _PatientFold()
                for p in pats.values():
                    fold.add(p)
            else:
                acc.patients_n += len(pats)
            pats.clear()

    for r in rows:
        pid = r["patient_id"]
        if grouped_by_patient and pid != current:
            flush()
            current = pid
        accs = [overall]
        if col is not None:
            value = r[col]
            key = UNKNOWN if value is None or value == "" else str(value)
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = _Acc(patients={})
            accs.append(acc)
        for acc in accs:
            acc.add(r)
            pats = acc.patients
            assert pats is not None
            if per_patient:
                p = pats.get(pid)
                if p is None:
                    p = pats[pid] = _PatientAcc()
                p.add(r)
            else:
                pats[pid] = None  # type: ignore[assignment]  # only counted
    flush()

    def make(acc: _Acc) -> list[Figure]:
        if per_patient:
            return _patient_figures(acc, folds.get(id(acc)) or _PatientFold())
        return _proc_figures(acc, acc.patients_n)

    summaries = [
        GroupSummary(k, group_label(by, k), make(groups[k]))
        for k in (_order(by, groups) if by else [])
    ]
    return Report(by, unit, summaries, GroupSummary("overall", "Overall", make(overall)))


#: The dimension of the overall figures among the cells (besides the GROUPINGS).
OVERALL = "overall"


def summarise_cells(cells: Iterable[tuple[str, str, str, Any, int]], by: str | None) -> Report:
    """The procedure-unit report from cells ``(dimension, group, metric, value, n)``.

    The database keeps these cells for every grouping (see
    :mod:`sma_log.storage.reportcache`), so the whole-file report reads a few thousand
    histogram cells instead of one row per procedure. The figures are those
    :func:`summarise` gives over the same procedures (a property test checks it).
    Cells of other dimensions are ignored.
    """
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}")
    overall = _Acc()
    groups: dict[str, _Acc] = {}
    for dim, grp, metric, value, n in cells:
        if n <= 0:
            continue
        if dim == OVERALL:
            acc = overall
        elif dim == by:
            acc = groups.get(grp) or groups.setdefault(grp, _Acc())
        else:
            continue
        acc.add_cell(metric, value, n)
    summaries = [
        GroupSummary(k, group_label(by, k), _proc_figures(groups[k], groups[k].patients_n))
        for k in (_order(by, groups) if by else [])
    ]
    overall_fig = _proc_figures(overall, overall.patients_n)
    return Report(by, "procedure", summaries, GroupSummary("overall", "Overall", overall_fig))
