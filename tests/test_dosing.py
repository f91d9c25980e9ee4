"""Next-dose arithmetic against hand-worked label examples.

Worked dates are written next to each case (Date(y, m, d) below is pendulum.Date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sma_log.domain.dosing import (
    EU_MISSED_WARNING,
    HIGH_MISSED_WARNING,
    MISSED_LOADING,
    MISSED_RULES,
    NextDose,
    describe,
    missed_tier,
    months_between,
    next_dose,
)

D = pendulum.Date


@pytest.fixture
def clock() -> Iterator[None]:
    yield
    pendulum.travel_back()


# --------------------------------------------------------------------------- loading


def test_no_doses_starts_loading_today() -> None:
    nd = next_dose([], today=D(2026, 1, 5))
    assert (nd.due, nd.regimen) == (D(2026, 1, 5), "std_loading_1")
    nd = next_dose([], today=D(2026, 1, 5), switch_to_high_dose=True)
    assert (nd.due, nd.regimen) == (D(2026, 1, 5), "high_loading_1")


def test_eu_loading_days_0_14_28_63() -> None:
    # L1 Mon 5 Jan 2026 (day 0)
    # L2 day 14 = 19 Jan; L3 day 28 = 2 Feb; L4 day 63 = 2 Feb + 35 = 9 Mar
    # (Feb 2026 has 28 days: 2 Feb + 26 = 28 Feb, + 9 = 9 Mar)
    today = D(2026, 1, 5)
    doses = [(D(2026, 1, 5), "std_loading_1")]
    nd = next_dose(doses, "eu", today)
    assert (nd.due, nd.regimen, nd.missed_rule) == (D(2026, 1, 19), "std_loading_2", None)
    doses.append((D(2026, 1, 19), "std_loading_2"))
    nd = next_dose(doses, "eu", today)
    assert (nd.due, nd.regimen) == (D(2026, 2, 2), "std_loading_3")
    doses.append((D(2026, 2, 2), "std_loading_3"))
    nd = next_dose(doses, "eu", D(2026, 2, 2))
    assert (nd.due, nd.regimen) == (D(2026, 3, 9), "std_loading_4")
    assert (nd.due - D(2026, 1, 5)).in_days() == 63
    assert nd.warnings == [] and nd.missed_rule is None


def test_us_fourth_loading_dose_day_58() -> None:
    # US: L4 30 days after L3: 2 Feb + 30 = 4 Mar 2026 = day 58 from 5 Jan
    doses = [
        (D(2026, 1, 5), "std_loading_1"),
        (D(2026, 1, 19), "std_loading_2"),
        (D(2026, 2, 2), "std_loading_3"),
    ]
    nd = next_dose(doses, "us", D(2026, 2, 2))
    assert (nd.due, nd.regimen) == (D(2026, 3, 4), "std_loading_4")
    assert (nd.due - D(2026, 1, 5)).in_days() == 58


def test_maintenance_every_four_calendar_months() -> None:
    # EU L4 9 Mar 2026 -> M 9 Jul 2026 -> M 9 Nov 2026
    doses = [(D(2026, 3, 9), "std_loading_4")]
    nd = next_dose(doses, "eu", D(2026, 3, 9))
    assert (nd.due, nd.regimen) == (D(2026, 7, 9), "std_maintenance")
    doses.append((D(2026, 7, 9), "std_maintenance"))
    assert next_dose(doses, "eu", D(2026, 7, 9)).due == D(2026, 11, 9)
    # month end: 31 Oct 2025 + 4 months = 28 Feb 2026 (no 31 Feb)
    assert next_dose([(D(2025, 10, 31), "std_maintenance")], "us", D(2025, 11, 1)).due == D(
        2026, 2, 28
    )


def test_late_loading_dose_keeps_14_days_and_missed_loading_rule() -> None:
    # L1 5 Jan, L2 given late on 25 Jan -> L3 due 25 Jan + 14 = 8 Feb (not day 28 = 2 Feb,
    # which would be only 8 days after L2)
    doses = [(D(2026, 1, 5), "std_loading_1"), (D(2026, 1, 25), "std_loading_2")]
    assert next_dose(doses, "eu", D(2026, 1, 25)).due == D(2026, 2, 8)
    # L2 due 19 Jan, nothing given by 1 Feb: overdue, give as soon as possible
    nd = next_dose(doses[:1], "us", D(2026, 2, 1))
    assert nd.due == D(2026, 1, 19) and nd.regimen == "std_loading_2"
    assert nd.missed_rule == MISSED_LOADING
    assert "at least 14 days after the previous dose" in MISSED_LOADING


def test_interval_under_14_days_warns() -> None:
    # L1 5 Jan, L2 12 Jan: 7 days apart
    doses = [(D(2026, 1, 12), "std_loading_2"), (D(2026, 1, 5), "std_loading_1")]  # any order
    nd = next_dose(doses, "eu", D(2026, 1, 12))
    assert nd.warnings == ["doses on 2026-01-05 and 2026-01-12 are 7 days apart (minimum 14)"]
    assert nd.due == D(2026, 1, 26)  # still 14 days after the last dose


def test_accepts_datetimes_and_rejects_bad_input() -> None:
    nd = next_dose([(pendulum.datetime(2026, 1, 5, 10, tz="Europe/Rome"), "std_loading_1")], "eu")
    assert nd.due == D(2026, 1, 19)
    with pytest.raises(ValueError, match="unknown regimen"):
        next_dose([(D(2026, 1, 5), "std_loading_9")])
    with pytest.raises(ValueError, match="label"):
        next_dose([], label="uk")


# --------------------------------------------------------------------------- missed maintenance

LAST = D(2025, 1, 10)  # last 12 mg maintenance dose; next due 10 May 2025


@pytest.mark.parametrize(
    ("today", "tier"),
    [
        (D(2025, 5, 11), "lt8"),  # 4 months 1 day
        (D(2025, 9, 9), "lt8"),  # 7 months 30 days
        (D(2025, 9, 10), "8to16"),  # exactly 8 months
        (D(2026, 5, 9), "8to16"),  # 15 months 29 days
        (D(2026, 5, 10), "16to40"),  # exactly 16 months
        (D(2028, 5, 9), "16to40"),  # 39 months 29 days
        (D(2028, 5, 10), "ge40"),  # exactly 40 months
    ],
)
def test_missed_maintenance_tiers(today: pendulum.Date, tier: str) -> None:
    nd = next_dose([(LAST, "std_maintenance")], "us", today)
    assert nd.due == D(2025, 5, 10)
    assert nd.missed_rule == MISSED_RULES[tier]
    assert nd.regimen == ("std_loading_1" if tier == "ge40" else "std_maintenance")
    assert EU_MISSED_WARNING not in nd.warnings


def test_months_between_regression_pendulum_in_months() -> None:
    # pendulum 3.3 says Date(2025,1,10).diff(Date(2025,9,9)).in_months() == 8; it is
    # 7 months and 30 days (10 Aug + 30 days = 9 Sep). Same for 10 Jan -> 9 Apr (2, not 3).
    assert months_between(D(2025, 1, 10), D(2025, 9, 9)) == 7
    assert months_between(D(2025, 1, 10), D(2025, 4, 9)) == 2
    assert months_between(D(2025, 1, 10), D(2025, 9, 10)) == 8
    # month end: 31 Oct + 4 months = 28 Feb, so 31 Oct -> 28 Feb is 4 whole months
    assert months_between(D(2025, 10, 31), D(2026, 2, 28)) == 4
    assert months_between(D(2025, 10, 31), D(2026, 2, 27)) == 3


@given(
    a=st.dates(min_value=D(2000, 1, 1), max_value=D(2060, 1, 1)),
    days=st.integers(min_value=0, max_value=5000),
)
def test_months_between_matches_add_months(a: dt.date, days: int) -> None:
    start = D(a.year, a.month, a.day)
    end = start.add(days=days)
    n = months_between(start, end)
    assert start.add(months=n) <= end < start.add(months=n + 1)


def test_missed_rule_texts_and_eu_warning() -> None:
    assert "give the missed dose now" in MISSED_RULES["lt8"]
    assert "one more dose 14 days later" in MISSED_RULES["8to16"]
    assert "two more doses 14 days apart" in MISSED_RULES["16to40"]
    assert "restart the full loading schedule" in MISSED_RULES["ge40"]
    assert [missed_tier(m) for m in (0, 7, 8, 15, 16, 39, 40)] == [
        "lt8",
        "lt8",
        "8to16",
        "8to16",
        "16to40",
        "16to40",
        "ge40",
    ]
    nd = next_dose([(LAST, "std_maintenance")], "eu", D(2025, 6, 1))
    assert EU_MISSED_WARNING in nd.warnings
    assert next_dose([(LAST, "std_maintenance")], "eu", D(2025, 5, 10)).missed_rule is None


def test_late_dose_under_8_months_returns_to_original_schedule() -> None:
    # M 10 Jan 2025, due 10 May; given late 1 Jul (5 months 21 days) -> next on the original
    # schedule: 10 May + 4 months = 10 Sep 2025 (72 days after 1 Jul, >= 14)
    doses = [(LAST, "std_maintenance"), (D(2025, 7, 1), "std_maintenance")]
    assert next_dose(doses, "us", D(2025, 7, 1)).due == D(2025, 9, 10)
    # given 1 Sep (7 months 22 days): original 10 Sep is only 9 days later -> 1 Sep + 14 = 15 Sep
    doses = [(LAST, "std_maintenance"), (D(2025, 9, 1), "std_maintenance")]
    assert next_dose(doses, "us", D(2025, 9, 1)).due == D(2025, 9, 15)


def test_catch_up_8_to_16_months_one_more_dose() -> None:
    # M 10 Jan 2025; late dose 1 Oct 2025 (8 months 21 days) -> one more 14 days later,
    # 15 Oct 2025, then every 4 months: 15 Feb 2026
    doses = [(LAST, "std_maintenance"), (D(2025, 10, 1), "std_maintenance")]
    nd = next_dose(doses, "us", D(2025, 10, 1))
    assert (nd.due, nd.regimen) == (D(2025, 10, 15), "std_maintenance")
    assert "catch-up dose 1 of 1" in nd.reason
    doses.append((D(2025, 10, 15), "std_maintenance"))
    assert next_dose(doses, "us", D(2025, 10, 15)).due == D(2026, 2, 15)


def test_catch_up_16_to_40_months_two_more_doses() -> None:
    # M 10 Jan 2025; late dose 1 Jul 2026 (17 months 21 days) -> 15 Jul, 29 Jul 2026,
    # then 4 months after the last catch-up: 29 Nov 2026
    doses = [(LAST, "std_maintenance"), (D(2026, 7, 1), "std_maintenance")]
    assert next_dose(doses, "us", D(2026, 7, 1)).due == D(2026, 7, 15)
    doses.append((D(2026, 7, 15), "std_maintenance"))
    assert next_dose(doses, "us", D(2026, 7, 15)).due == D(2026, 7, 29)
    doses.append((D(2026, 7, 29), "std_maintenance"))
    nd = next_dose(doses, "us", D(2026, 7, 29))
    assert (nd.due, nd.regimen) == (D(2026, 11, 29), "std_maintenance")
    # a catch-up dose not given on time
    nd = next_dose(doses[:2], "us", D(2026, 8, 1))
    assert nd.due == D(2026, 7, 15) and nd.missed_rule is not None
    assert "catch-up" in nd.missed_rule


def test_restart_after_40_months_continues_as_loading() -> None:
    # M 10 Jan 2025; restart L1 on 1 Jun 2028 (40 months 22 days) -> L2 15 Jun 2028
    doses = [(LAST, "std_maintenance"), (D(2028, 6, 1), "std_loading_1")]
    nd = next_dose(doses, "eu", D(2028, 6, 1))
    assert (nd.due, nd.regimen) == (D(2028, 6, 15), "std_loading_2")
    # recorded as maintenance instead: counted as loading dose 1, with a warning
    doses = [(LAST, "std_maintenance"), (D(2028, 6, 1), "std_maintenance")]
    nd = next_dose(doses, "eu", D(2028, 6, 1))
    assert (nd.due, nd.regimen) == (D(2028, 6, 15), "std_loading_2")
    assert any("restarts loading" in w for w in nd.warnings)


# --------------------------------------------------------------------------- high dose


def test_high_dose_naive_loading_then_maintenance() -> None:
    # H1 5 Jan 2026 -> H2 19 Jan 2026 -> 28 mg 19 May 2026 -> 19 Sep 2026
    doses = [(D(2026, 1, 5), "high_loading_1")]
    nd = next_dose(doses, "eu", D(2026, 1, 5))
    assert (nd.due, nd.regimen) == (D(2026, 1, 19), "high_loading_2")
    doses.append((D(2026, 1, 19), "high_loading_2"))
    assert next_dose(doses, "eu", D(2026, 1, 19)).due == D(2026, 5, 19)
    doses.append((D(2026, 5, 19), "high_maintenance"))
    nd = next_dose(doses, "eu", D(2026, 5, 19))
    assert (nd.due, nd.regimen) == (D(2026, 9, 19), "high_maintenance")


def test_switch_from_12mg_maintenance_to_high_dose() -> None:
    # 12 mg maintenance 10 Jan 2026; the next 12 mg dose would be 10 May 2026.
    # Switch: one 50 mg dose on that same date (high_loading_1), then 28 mg 4 months later
    # (10 Sep 2026), no second 50 mg dose.
    doses = [(D(2025, 9, 10), "std_maintenance"), (D(2026, 1, 10), "std_maintenance")]
    nd = next_dose(doses, "eu", D(2026, 3, 1), switch_to_high_dose=True)
    assert (nd.due, nd.regimen) == (D(2026, 5, 10), "high_loading_1")
    assert "in place of the next 12 mg dose" in nd.reason and nd.warnings == []
    doses.append((D(2026, 5, 10), "high_loading_1"))
    nd = next_dose(doses, "eu", D(2026, 5, 10))
    assert (nd.due, nd.regimen) == (D(2026, 9, 10), "high_maintenance")


def test_switch_during_loading_warns_and_overdue_high_dose_warns() -> None:
    # L1 5 Jan, L2 19 Jan; switch -> 50 mg on 2 Feb (where L3 would be), with a warning;
    # then treated as a new high-dose loading: H2 16 Feb
    doses = [(D(2026, 1, 5), "std_loading_1"), (D(2026, 1, 19), "std_loading_2")]
    nd = next_dose(doses, "us", D(2026, 1, 20), switch_to_high_dose=True)
    assert (nd.due, nd.regimen) == (D(2026, 2, 2), "high_loading_1")
    assert any("not covered" in w for w in nd.warnings)
    doses.append((D(2026, 2, 2), "high_loading_1"))
    assert next_dose(doses, "us", D(2026, 2, 2)).regimen == "high_loading_2"
    # 28 mg maintenance overdue: no rule in the notes, a warning instead
    nd = next_dose([(D(2026, 1, 10), "high_maintenance")], "us", D(2026, 6, 1))
    assert nd.missed_rule is None and HIGH_MISSED_WARNING in nd.warnings


# --------------------------------------------------------------------------- today / describe


def test_today_defaults_to_the_travelled_clock(clock: None) -> None:
    doses = [(LAST, "std_maintenance")]
    pendulum.travel_to(pendulum.datetime(2025, 5, 1, 12, tz="UTC"), freeze=True)
    nd = next_dose(doses, "us")
    assert nd.missed_rule is None
    assert describe(nd) == "next dose due 10 May, in 9 days"
    pendulum.travel_to(pendulum.datetime(2025, 5, 13, 12, tz="UTC"), freeze=True)
    nd = next_dose(doses, "us")
    assert nd.missed_rule == MISSED_RULES["lt8"]
    assert describe(nd, tz="Europe/Rome") == "next dose overdue by 3 days (due 10 May)"


def test_describe() -> None:
    nd = NextDose(D(2026, 3, 14), "std_maintenance", "r")
    assert describe(nd, D(2026, 3, 5)) == "next dose due 14 Mar, in 9 days"
    assert describe(nd, D(2026, 3, 13)) == "next dose due 14 Mar, in 1 day"
    assert describe(nd, D(2026, 3, 14)) == "next dose due today (14 Mar)"
    assert describe(nd, D(2026, 3, 17)) == "next dose overdue by 3 days (due 14 Mar)"
    assert describe(nd, D(2025, 12, 30)) == "next dose due 14 Mar 2026, in 74 days"
