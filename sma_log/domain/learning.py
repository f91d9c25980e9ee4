"""Per-operator learning curves: the standard CUSUM of failure and the LC-CUSUM. Pure.

Outcome of one procedure (CLINICAL-NOTES: an *attempt* is a skin insertion, a
*pass* a redirection without leaving the skin), by the site's definition
(:data:`FAILURE_DEFINITIONS`):

* ``first-attempt``: failure = not a first-attempt success (CSF not obtained on the
  first skin insertion: a second insertion was needed, or the only one failed);
* ``first-pass``: failure = not a first-pass success (first-attempt success with no
  redirection on that attempt).

A procedure without a needle insertion (abandoned before the skin) has no such
outcome and is left out, as in the report's first-attempt figures.

Standard CUSUM (Kestin, Br J Anaesth 1995; Bolsin & Colson, Int J Qual Health Care
2000; the formulas of CLINICAL-NOTES §Learning curves), with acceptable failure rate
p0, unacceptable p1, type I error α and type II error β::

    P = ln(p1/p0)          Q = ln((1-p0)/(1-p1))        s = Q/(P+Q)
    a = ln((1-β)/α)        b = ln((1-α)/β)
    h1 = a/(P+Q)  (at or above: failure rate unacceptable)
    h0 = -b/(P+Q) (at or below: failure rate acceptable)
    C_0 = 0,  C_t = C_{t-1} + (1 - s) after a failure,  C_{t-1} - s after a success.

The chart is not reset (the anaesthesia convention of the papers above): the value is
the whole series' sum; the first procedure at which it reaches h1 (or h0) is reported.

LC-CUSUM (learning-curve CUSUM; Biau DJ, Williams SM, Schlup MM, Nizard RS, Porcher R.
Quantitative and individualized assessment of the learning curve using LC-CUSUM.
Br J Surg 2008;95:925-9; Biau DJ, Porcher R. Stat Med 2010;29:2871-81). Its null
hypothesis is that performance is *inadequate* (failure rate p1) against the
alternative that it is *adequate* (p0); the score is Page's one-sided CUSUM of the
log-likelihood ratio of the alternative to the null, held at 0 from below::

    W_t = ln(p0/p1) = -P after a failure,  ln((1-p0)/(1-p1)) = Q after a success
    S_0 = 0,  S_t = max(0, S_{t-1} + W_t);  signal (competence) when S_t >= h.

So W_t = (P+Q)·(s - x_t) with x_t = 1 for a failure: the LC-CUSUM is the standard
chart's steps turned over and scaled by P+Q, with a floor at 0.

The limit h: Biau et al. and the papers that use the LC-CUSUM set h by simulation for
their α and β (de Oliveira Filho & Benincá, Braz J Anesthesiol 2023, peribulbar blocks,
10 %/20 %, α = β = 10 %: "simulations were used to determine the proficiency limit";
their earliest proficient resident signalled at the 13th block, so with all successes
their h lay between 12·Q = 1.41 and 13·Q = 1.53). Without a simulation here, the
default h is the closed-form Wald boundary for the same α and β, h = ln((1-β)/α)
(= a; Wald, Sequential Analysis 1947): 2.20 for α = β = 0.10, i.e. 19 straight
successes at 10 %/20 % — more conservative than a simulated h. A calibrated h can be
given as ``Parameters.lc_limit``; every chart prints the h it used. (The papers' full
text was not at hand when this was written: the step form above is the one
CLINICAL-NOTES and the cited abstracts describe.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The outcome a curve counts as failure: (code, description).
FAILURE_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("first-attempt", "failure = not a first-attempt success (no CSF at the first skin insertion)"),
    ("first-pass", "failure = not a first-pass success (a second insertion or a redirection)"),
)
FAILURE_CODES: tuple[str, ...] = tuple(code for code, _ in FAILURE_DEFINITIONS)

#: Defaults: acceptable 10 %, unacceptable 20 % failure — the rates Kestin (Br J Anaesth
#: 1995;75:805, abstract) used for spinal anaesthesia, and de Oliveira Filho & Benincá
#: (Braz J Anesthesiol 2023) for their LC-CUSUM with α = β = 10 %, the error rates here.
DEFAULT_P0 = 0.10
DEFAULT_P1 = 0.20
DEFAULT_ALPHA = 0.10
DEFAULT_BETA = 0.10
DEFAULT_FAILURE = "first-attempt"

#: Parameter names as the messages and the settings say them.
NAMES = {"p0": "p0", "p1": "p1", "alpha": "α", "beta": "β"}


class LearningError(ValueError):
    """A parameter the charts cannot use: one readable sentence."""


def parameter_problem(name: str, value: Any) -> str | None:
    """Why one parameter (``p0``, ``p1``, ``alpha``, ``beta``) is unusable on its own,
    or None: each must be a finite number strictly between 0 and 1."""
    label = NAMES.get(name, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{label} must be a number between 0 and 1 (got {value!r})"
    if not math.isfinite(value) or not 0 < value < 1:
        return f"{label} must be between 0 and 1 (got {value:g})"
    return None


def failure_problem(value: Any) -> str | None:
    """Why ``value`` is not a failure definition, or None."""
    if value in FAILURE_CODES:
        return None
    return f"the failure definition must be {' or '.join(FAILURE_CODES)} (got {value!r})"


@dataclass(frozen=True)
class Parameters:
    """p0 (acceptable failure rate) < p1 (unacceptable), α, β; checked when made."""

    p0: float = DEFAULT_P0
    p1: float = DEFAULT_P1
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    #: The LC-CUSUM's limit h when calibrated elsewhere (None: ln((1-β)/α)).
    lc_limit: float | None = None

    def __post_init__(self) -> None:
        problem = parameters_problem(self.p0, self.p1, self.alpha, self.beta)
        if problem is None and self.lc_limit is not None:
            h = self.lc_limit
            if isinstance(h, bool) or not isinstance(h, int | float):
                problem = f"the LC-CUSUM limit h must be a number (got {h!r})"
            elif not math.isfinite(h) or h <= 0:
                problem = f"the LC-CUSUM limit h must be above 0 (got {h:g})"
        if problem:
            raise LearningError(problem)

    @property
    def P(self) -> float:
        return math.log(self.p1 / self.p0)

    @property
    def Q(self) -> float:
        return math.log((1 - self.p0) / (1 - self.p1))

    @property
    def s(self) -> float:
        """The step down after a success (a failure adds 1 − s)."""
        return self.Q / (self.P + self.Q)

    @property
    def a(self) -> float:
        return math.log((1 - self.beta) / self.alpha)

    @property
    def b(self) -> float:
        return math.log((1 - self.alpha) / self.beta)

    @property
    def h1(self) -> float:
        """Upper decision limit: at or above, the failure rate is unacceptable (p1)."""
        return self.a / (self.P + self.Q)

    @property
    def h0(self) -> float:
        """Lower decision limit: at or below, the failure rate is acceptable (p0)."""
        return -self.b / (self.P + self.Q)

    @property
    def lc_h(self) -> float:
        """The LC-CUSUM's limit: at or above, performance is adequate (see module)."""
        return self.a if self.lc_limit is None else float(self.lc_limit)

    def as_dict(self) -> dict[str, float]:
        return {
            "p0": self.p0,
            "p1": self.p1,
            "alpha": self.alpha,
            "beta": self.beta,
            "P": self.P,
            "Q": self.Q,
            "s": self.s,
            "h0": self.h0,
            "h1": self.h1,
            "lc_h": self.lc_h,
        }


def parameters_problem(p0: Any, p1: Any, alpha: Any, beta: Any) -> str | None:
    """The first reason the four parameters cannot make a chart, or None."""
    for name, value in (("p0", p0), ("p1", p1), ("alpha", alpha), ("beta", beta)):
        problem = parameter_problem(name, value)
        if problem:
            return problem
    if not p0 < p1:
        return f"p0 (acceptable failure rate, {p0:g}) must be below p1 (unacceptable, {p1:g})"
    if not alpha + beta < 1:
        return f"α + β must be below 1 (got {alpha:g} + {beta:g}): the limits would swap"
    return None


def is_failure(definition: str, first_attempt_success: Any, redirections_n: Any) -> bool | None:
    """Whether a procedure is a failure by ``definition``; None when it has no outcome
    (no first-attempt outcome recorded). ``redirections_n`` is the procedure's
    redirections: after a first-attempt success there was only one attempt, so they
    are the first attempt's."""
    if first_attempt_success is None:
        return None
    if definition == "first-attempt":
        return not first_attempt_success
    if definition == "first-pass":
        return not (first_attempt_success and not redirections_n)
    raise LearningError(failure_problem(definition) or definition)


@dataclass(frozen=True)
class Point:
    number: int  # the operator's procedure number (1, 2, …) among charted procedures
    procedure_id: str
    started_at: str
    failure: int  # 1 failure, 0 success
    cusum: float
    lc_cusum: float


@dataclass(frozen=True)
class Curve:
    operator: str
    params: Parameters
    definition: str
    points: list[Point] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.points)

    @property
    def failures(self) -> int:
        return sum(p.failure for p in self.points)

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.n if self.n else None

    def _first(self, test: Any) -> Point | None:
        return next((p for p in self.points if test(p)), None)

    @property
    def h1_crossed(self) -> Point | None:
        """The first procedure at which the CUSUM reached h1 (unacceptable), or None."""
        h1 = self.params.h1
        return self._first(lambda p: p.cusum >= h1)

    @property
    def h0_crossed(self) -> Point | None:
        """The first procedure at which the CUSUM reached h0 (acceptable), or None."""
        h0 = self.params.h0
        return self._first(lambda p: p.cusum <= h0)

    @property
    def lc_signal(self) -> Point | None:
        """The first procedure at which the LC-CUSUM reached its h (adequate), or None."""
        h = self.params.lc_h
        return self._first(lambda p: p.lc_cusum >= h)

    def as_dict(self) -> dict[str, Any]:
        def at(p: Point | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {"number": p.number, "procedure_id": p.procedure_id, "started_at": p.started_at}

        return {
            "operator": self.operator,
            "n": self.n,
            "failures": self.failures,
            "failure_rate": self.failure_rate,
            "h1_crossed": at(self.h1_crossed),
            "h0_crossed": at(self.h0_crossed),
            "lc_signal": at(self.lc_signal),
            "series": [
                {
                    "number": p.number,
                    "procedure_id": p.procedure_id,
                    "started_at": p.started_at,
                    "failure": p.failure,
                    "cusum": p.cusum,
                    "lc_cusum": p.lc_cusum,
                }
                for p in self.points
            ],
        }


def cusum_values(failures: Iterable[int], params: Parameters) -> list[float]:
    """The standard CUSUM after each outcome (1 failure, 0 success), from 0."""
    s = params.s
    out: list[float] = []
    c = 0.0
    for x in failures:
        c += (1 - s) if x else -s
        out.append(c)
    return out


def lc_cusum_values(failures: Iterable[int], params: Parameters) -> list[float]:
    """The LC-CUSUM after each outcome: max(0, S + W), W = −P (failure) or Q (success)."""
    fail_step, success_step = -params.P, params.Q
    out: list[float] = []
    v = 0.0
    for x in failures:
        v = max(0.0, v + (fail_step if x else success_step))
        out.append(v)
    return out


def curve(
    operator: str,
    outcomes: Iterable[tuple[str, str, int]],
    params: Parameters,
    definition: str = DEFAULT_FAILURE,
) -> Curve:
    """One operator's curve from ``(procedure_id, started_at, failure)`` in order."""
    rows = list(outcomes)
    xs = [int(bool(x)) for _, _, x in rows]
    cus = cusum_values(xs, params)
    lcs = lc_cusum_values(xs, params)
    points = [
        Point(i + 1, pid, started, x, c, lc)
        for i, ((pid, started, _), x, c, lc) in enumerate(zip(rows, xs, cus, lcs, strict=True))
    ]
    return Curve(operator, params, definition, points)


def curves(
    rows: Iterable[Mapping[str, Any]],
    params: Parameters,
    definition: str = DEFAULT_FAILURE,
) -> list[Curve]:
    """Every operator's curve from procedure rows in start order (keys ``operator``,
    ``procedure_id``, ``started_at``, ``first_attempt_success``, ``redirections_n``);
    rows without an operator or an outcome are left out. Operators by name."""
    problem = failure_problem(definition)
    if problem:
        raise LearningError(problem)
    series: dict[str, list[tuple[str, str, int]]] = {}
    for r in rows:
        op = r.get("operator")
        failed = is_failure(definition, r.get("first_attempt_success"), r.get("redirections_n"))
        if not op or failed is None:
            continue
        series.setdefault(str(op), []).append(
            (str(r["procedure_id"]), str(r["started_at"]), int(failed))
        )
    return [curve(op, series[op], params, definition) for op in sorted(series)]
