"""Learning curves (domain/learning.py): the CUSUM and LC-CUSUM arithmetic, checked
against values worked out by hand (written out below), a published figure, and
properties (hypothesis). Every number here was computed on paper / a calculator from
the formulas, not by calling the code under test.

Sources:
* Formulas: CLINICAL-NOTES §Learning curves (Bolsin & Colson, Int J Qual Health Care
  2000; Kestin, Br J Anaesth 1995): P = ln(p1/p0), Q = ln((1-p0)/(1-p1)),
  s = Q/(P+Q), h1 = ln((1-β)/α)/(P+Q), h0 = -ln((1-α)/β)/(P+Q).
* Rates: Kestin 1995 (abstract): spinal anaesthesia, acceptable 10 %, unacceptable 20 %;
  obstetric extradural 5 % / 10 %.
* LC-CUSUM (Biau et al., Br J Surg 2008): Page's CUSUM of the log-likelihood ratio of
  "adequate" (p0) to "inadequate" (p1), floored at 0. Published figure used:
  de Oliveira Filho & Benincá, Braz J Anesthesiol 2023 (peribulbar blocks, LC-CUSUM,
  10 %/20 %, α = β = 10 %, h from simulation): the earliest residents reached
  proficiency at the 13th block — with no failure that is 13 steps of Q, so a limit h
  between 12·Q and 13·Q signals at exactly the 13th success.
* LC-CUSUM step as printed by Verhaeghe et al., BMC Med Educ 2021 (quoted at its test).
* No published table of s, h0, h1 (nor a published worked series) could be retrieved from
  the sources at hand: the limits above stay checked by hand only.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sma_log.domain import learning
from sma_log.domain.learning import LearningError, Parameters

# ---------------------------------------------------------------- hand-computed constants
# p0 = 0.10, p1 = 0.20, α = β = 0.10:
#   P = ln 2 = 0.693147;  Q = ln(0.9/0.8) = ln 1.125 = 0.117783;  P + Q = 0.810930
#   s = 0.117783 / 0.810930 = 0.145244;  1 - s = 0.854756
#   a = b = ln(0.9/0.1) = ln 9 = 2.197225
#   h1 = 2.197225 / 0.810930 = 2.709511;  h0 = -2.709511
SPINAL = dict(P=0.693147, Q=0.117783, s=0.145244, h1=2.709511, h0=-2.709511, lc_h=2.197225)
# p0 = 0.05, p1 = 0.10 (Kestin's obstetric extradural rates), α = β = 0.10:
#   P = ln 2 = 0.693147;  Q = ln(0.95/0.90) = 0.054067;  P + Q = 0.747214
#   s = 0.054067 / 0.747214 = 0.072358;  h1 = 2.197225 / 0.747214 = 2.940554
EXTRADURAL = dict(P=0.693147, Q=0.054067, s=0.072358, h1=2.940554, h0=-2.940554)
# p0 = 0.20, p1 = 0.40, α = 0.05, β = 0.20 (unequal errors: a ≠ b):
#   P = ln 2 = 0.693147;  Q = ln(0.8/0.6) = 0.287682;  P + Q = 0.980829
#   s = 0.287682 / 0.980829 = 0.293305
#   a = ln(0.8/0.05) = ln 16 = 2.772589;  b = ln(0.95/0.2) = ln 4.75 = 1.558145
#   h1 = 2.772589 / 0.980829 = 2.826781;  h0 = -1.558145 / 0.980829 = -1.588600
UNEQUAL = dict(P=0.693147, Q=0.287682, s=0.293305, h1=2.826781, h0=-1.588600, lc_h=2.772589)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (Parameters(0.10, 0.20, 0.10, 0.10), SPINAL),
        (Parameters(0.05, 0.10, 0.10, 0.10), EXTRADURAL),
        (Parameters(0.20, 0.40, 0.05, 0.20), UNEQUAL),
    ],
)
def test_limits_and_step_by_hand(params: Parameters, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert getattr(params, name) == pytest.approx(value, abs=2e-6), name


def test_defaults_are_the_literature_s() -> None:
    p = Parameters()
    assert (p.p0, p.p1, p.alpha, p.beta) == (0.10, 0.20, 0.10, 0.10)
    assert learning.DEFAULT_FAILURE == "first-attempt"


# ---------------------------------------------------------------- a short sequence by hand
#   outcome      F          F          S          F          S          S          S
#   CUSUM     0.854756   1.709512   1.564268   2.419024   2.273780   2.128536   1.983292
#   (+1-s after F, -s after S; s = 0.145244)
#   LC-CUSUM  max(0, S + (-P after F | +Q after S)); P = 0.693147, Q = 0.117783
#             0          0          0.117783   0          0.117783   0.235566   0.353349
FFSFSSS = [1, 1, 0, 1, 0, 0, 0]
CUSUM_FFSFSSS = [0.854756, 1.709512, 1.564268, 2.419024, 2.273780, 2.128536, 1.983292]
LC_FFSFSSS = [0.0, 0.0, 0.117783, 0.0, 0.117783, 0.235566, 0.353349]
#   S S S F S:  CUSUM -0.145244 -0.290488 -0.435732 0.419024 0.273780
#               LC     0.117783  0.235566  0.353349 0 (0.353349-0.693147 < 0) 0.117783
SSSFS = [0, 0, 0, 1, 0]
CUSUM_SSSFS = [-0.145244, -0.290488, -0.435732, 0.419024, 0.273780]
LC_SSSFS = [0.117783, 0.235566, 0.353349, 0.0, 0.117783]


@pytest.mark.parametrize(
    ("xs", "cusum", "lc"),
    [(FFSFSSS, CUSUM_FFSFSSS, LC_FFSFSSS), (SSSFS, CUSUM_SSSFS, LC_SSSFS)],
)
def test_a_short_sequence_by_hand(xs: list[int], cusum: list[float], lc: list[float]) -> None:
    p = Parameters(0.10, 0.20, 0.10, 0.10)
    assert learning.cusum_values(xs, p) == pytest.approx(cusum, abs=3e-6)
    assert learning.lc_cusum_values(xs, p) == pytest.approx(lc, abs=3e-6)


def test_the_crossings_of_a_curve_by_hand() -> None:
    """Four failures then successes at 10 %/20 %: the CUSUM is 4 × 0.854756 = 3.419024
    after the 4th procedure, past h1 = 2.709511 (it was 2.564268 < h1 after the 3rd);
    it then falls by 0.145244 a success and reaches h0 = -2.709511 when
    3.419024 - 0.145244·k ≤ -2.709511, k ≥ 42.195…, so at k = 43: procedure 47.
    The LC-CUSUM is 0 after the failures and Q·k after k successes; it reaches
    h = ln 9 = 2.197225 when k ≥ 18.655…, so at k = 19: procedure 23."""
    xs = [1, 1, 1, 1] + [0] * 60
    rows = [(f"P{i:02d}", f"2026-01-{1 + i // 3:02d}T09:00:00Z", x) for i, x in enumerate(xs)]
    c = learning.curve("Dr Test", rows, Parameters(0.10, 0.20, 0.10, 0.10))
    assert c.n == 64 and c.failures == 4 and c.failure_rate == pytest.approx(4 / 64)
    assert c.h1_crossed is not None and c.h1_crossed.number == 4
    assert c.h1_crossed.procedure_id == "P03"
    assert c.h0_crossed is not None and c.h0_crossed.number == 47
    assert c.lc_signal is not None and c.lc_signal.number == 23
    assert c.points[3].cusum == pytest.approx(3.419024, abs=3e-6)
    doc = c.as_dict()
    assert doc["h1_crossed"] == {
        "number": 4,
        "procedure_id": "P03",
        "started_at": rows[3][1],
    }
    assert [p["failure"] for p in doc["series"]] == xs


def test_published_lc_cusum_proficiency_at_the_13th_block() -> None:
    """de Oliveira Filho & Benincá 2023: 10 %/20 %, α = β = 10 %, simulated h; the
    first proficient residents signalled at block 13. With all successes the score is
    Q·k (Q = 0.117783): 12·Q = 1.413396 and 13·Q = 1.531179, so an h in that interval
    (e.g. 1.5) signals at 13 — the published minimum — and ours is in that bracket only
    if the success step is Q = ln((1-p0)/(1-p1)), floored, not reset, not scaled."""
    p = Parameters(0.10, 0.20, 0.10, 0.10, lc_limit=1.5)
    rows = [(f"B{i}", "2023-01-01T00:00:00Z", 0) for i in range(30)]
    c = learning.curve("resident", rows, p)
    assert c.lc_signal is not None and c.lc_signal.number == 13
    assert 12 * p.Q < 1.5 <= 13 * p.Q
    # the closed-form default (ln 9 = 2.197225) needs 19 successes: more conservative
    assert learning.curve("resident", rows, Parameters()).lc_signal.number == 19  # type: ignore[union-attr]


# ---------------------------------------------------------------- published LC-CUSUM step
# Verhaeghe C, El Hachem H, Inchboard L, Corroenne R, Dreux C, Jeanneteau P, Legendre G,
# Descamps P, Saulnier P, May-Panloup P, Bouet PE. Assessment of operator performance during
# oocyte retrievals: residents' learning curve and continuous monitoring of senior
# physicians. BMC Med Educ 2021;21 (doi:10.1186/s12909-021-02615-w), Methods, quoted:
#   "W = log((1-p0)/(1 - p0 - d)) in case of success, and W = log (p0/ p0 + d) in case of
#    failure; p0 = acceptable failure rate; d = acceptable deviance from acceptable
#    performance to be detected" ... "The score increases with success and decreases with
#    failure." (printed there as "St = min(0, St - 1 + Wt)": a misprint, since a score held
#    at or below 0 could never rise to their positive limit h = 6; Biau's LC-CUSUM is
#    max(0, ...), as here.)
# With p1 = p0 + d this is W = Q after a success and W = -P after a failure. The paper
# gives the formula, not decimals, so the expected values are its formula evaluated here.
# Rates: Je S, Cho Y, Choi HJ, Kang B, Lim T, Kang H. Emerg Med J 2015;32:291-4 (LC-CUSUM,
# intubation; abstract: 90 % success adequate, 80 % inadequate: p0 = 0.10, d = 0.10), and
# Kestin's obstetric extradural 5 %/10 % (Br J Anaesth 1995;75:805-9, abstract), and
# Verhaeghe's own (p0 = 0.40, d = 0.15, as read from "adequate if at least 60% of retrievals
# were successful with a standard deviation of 15%").
@pytest.mark.parametrize(
    ("p0", "d", "source"),
    [(0.10, 0.10, "Je et al. 2015"), (0.05, 0.05, "Kestin 1995"), (0.40, 0.15, "Verhaeghe 2021")],
)
def test_lc_cusum_step_is_the_published_formula(p0: float, d: float, source: str) -> None:
    w_success = math.log((1 - p0) / (1 - p0 - d))
    w_failure = math.log(p0 / (p0 + d))
    p = Parameters(p0, p0 + d, 0.10, 0.10)
    # success, success, failure (floored at 0 if it would go below), success
    expected: list[float] = []
    v = 0.0
    for w in (w_success, w_success, w_failure, w_success):
        v = max(0.0, v + w)
        expected.append(v)
    assert learning.lc_cusum_values([0, 0, 1, 0], p) == pytest.approx(expected, abs=1e-12), source
    assert math.isclose(p.Q, w_success) and math.isclose(-p.P, w_failure)


# ---------------------------------------------------------------- failure definitions
@pytest.mark.parametrize(
    ("definition", "fas", "redirections", "expected"),
    [
        ("first-attempt", 1, 0, False),
        ("first-attempt", 1, 3, False),  # redirections do not matter for first-attempt
        ("first-attempt", 0, 0, True),
        ("first-pass", 1, 0, False),
        ("first-pass", 1, 1, True),  # CSF at the first insertion, but after a redirection
        ("first-pass", 0, 0, True),
        ("first-attempt", None, 0, None),  # no insertion: no outcome, not charted
        ("first-pass", None, 0, None),
    ],
)
def test_failure_definitions(
    definition: str, fas: int | None, redirections: int, expected: bool | None
) -> None:
    assert learning.is_failure(definition, fas, redirections) is expected


def test_curves_group_by_operator_in_the_given_order_and_skip_unknowns() -> None:
    rows = [
        {"operator": "B", "procedure_id": "1", "started_at": "t1", "first_attempt_success": 1,
         "redirections_n": 2},
        {"operator": "A", "procedure_id": "2", "started_at": "t2", "first_attempt_success": 0,
         "redirections_n": 0},
        {"operator": None, "procedure_id": "3", "started_at": "t3", "first_attempt_success": 0,
         "redirections_n": 0},
        {"operator": "B", "procedure_id": "4", "started_at": "t4", "first_attempt_success": None,
         "redirections_n": 0},
        {"operator": "B", "procedure_id": "5", "started_at": "t5", "first_attempt_success": 1,
         "redirections_n": 0},
    ]  # fmt: skip
    attempt = learning.curves(rows, Parameters(), "first-attempt")
    assert [c.operator for c in attempt] == ["A", "B"]
    assert [(p.procedure_id, p.failure) for p in attempt[1].points] == [("1", 0), ("5", 0)]
    first_pass = learning.curves(rows, Parameters(), "first-pass")
    assert [(p.procedure_id, p.failure) for p in first_pass[1].points] == [("1", 1), ("5", 0)]
    with pytest.raises(LearningError, match="first-attempt or first-pass"):
        learning.curves(rows, Parameters(), "second-attempt")


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.2}, "α must be between 0 and 1 (got 1.2)"),
        ({"alpha": 0.0}, "α must be between 0 and 1 (got 0)"),
        ({"beta": 1.0}, "β must be between 0 and 1 (got 1)"),
        ({"p0": -0.1}, "p0 must be between 0 and 1 (got -0.1)"),
        ({"p1": float("nan")}, "p1 must be between 0 and 1 (got nan)"),
        ({"p0": 0.3, "p1": 0.2}, "p0 (acceptable failure rate, 0.3) must be below p1"),
        ({"p0": 0.2, "p1": 0.2}, "must be below p1 (unacceptable, 0.2)"),
        ({"p0": "0.1"}, "p0 must be a number between 0 and 1 (got '0.1')"),
        ({"lc_limit": 0.0}, "the LC-CUSUM limit h must be above 0 (got 0)"),
    ],
)
def test_bad_parameters_are_one_domain_sentence(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LearningError) as info:
        Parameters(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- properties
rates = st.floats(min_value=0.001, max_value=0.999, allow_nan=False)
errors = st.floats(min_value=0.001, max_value=0.499, allow_nan=False)


@st.composite
def parameters(draw: st.DrawFn) -> Parameters:
    p0, p1 = sorted(draw(st.lists(rates, min_size=2, max_size=2, unique=True)))
    # Rates a few ulps apart (found: p0 = 0.001, p1 = 0.001 + 2e-19) make Q round to 0.0
    # and s = 0 exactly; Parameters accepts them (only p0 < p1 is checked). Real charts
    # have p1 - p0 >= 0.01, so the properties are drawn from rates at least 1e-6 apart.
    assume(p1 - p0 >= 1e-6)
    return Parameters(p0, p1, draw(errors), draw(errors))


@settings(max_examples=200, deadline=None)
@given(parameters(), st.lists(st.integers(0, 1), max_size=80))
def test_cusum_steps_are_exactly_one_minus_s_and_minus_s(p: Parameters, xs: list[int]) -> None:
    values = learning.cusum_values(xs, p)
    previous = 0.0
    for x, v in zip(xs, values, strict=True):
        assert v - previous == pytest.approx((1 - p.s) if x else -p.s, abs=1e-9)
        previous = v
    # the sum is failures - s·n, whatever the order
    assert (values[-1] if values else 0.0) == pytest.approx(sum(xs) - p.s * len(xs), abs=1e-7)


@settings(max_examples=200, deadline=None)
@given(parameters(), st.integers(0, 300))
def test_all_successes_never_cross_h1_and_lc_only_rises(p: Parameters, n: int) -> None:
    c = learning.curve("x", [(str(i), "t", 0) for i in range(n)], p)
    assert c.h1_crossed is None
    assert all(b.lc_cusum > a.lc_cusum for a, b in zip(c.points, c.points[1:], strict=False))
    assert all(pt.cusum < 0 for pt in c.points)


@settings(max_examples=200, deadline=None)
@given(parameters(), st.lists(st.integers(0, 1), max_size=80))
def test_lc_cusum_is_the_floored_llr_of_the_standard_steps(p: Parameters, xs: list[int]) -> None:
    """LC step = (P+Q)·(s - x): the standard chart turned over and scaled, floored at 0."""
    lc = learning.lc_cusum_values(xs, p)
    v = 0.0
    for x, got in zip(xs, lc, strict=True):
        v = max(0.0, v + (p.P + p.Q) * (p.s - x))
        assert got == pytest.approx(v, abs=1e-9)
        assert got >= 0.0


@settings(max_examples=200, deadline=None)
@given(parameters())
def test_limits_are_symmetric_only_when_alpha_equals_beta(p: Parameters) -> None:
    assert p.h1 > 0 > p.h0
    assert 0 < p.s < 1
    if math.isclose(p.alpha, p.beta):
        assert p.h1 == pytest.approx(-p.h0)
