"""Follow-up scheduling: 72 elapsed hours across DST, status as the clock travels,
display in other time zones, localised phrases and form validation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sma_log.domain import schedule
from sma_log.domain.schedule import (
    STATUS_ORDER,
    Window,
    due_at,
    format_local,
    parse_field,
    queue_key,
    relative_phrase,
    status,
    to_local,
    validate_followup,
    validate_timezone,
)

ROME = "Europe/Rome"


@pytest.fixture
def clock() -> Iterator[None]:
    """Make sure every test that travels comes back."""
    yield
    pendulum.travel_back()


# --------------------------------------------------------------------------- due times


def test_day3_across_spring_forward_is_11_local() -> None:
    # 2026-03-27 10:00 CET (09:00 UTC); clocks go forward on Sun 29 March;
    # +72 h = 2026-03-30 09:00 UTC = 11:00 CEST.
    end = pendulum.datetime(2026, 3, 27, 10, 0, tz=ROME)
    due = due_at("day3", end)
    assert due == pendulum.datetime(2026, 3, 30, 9, 0, tz="UTC")
    assert due.timezone_name == "UTC"
    local = to_local(due, ROME)
    assert (local.year, local.month, local.day, local.hour, local.minute) == (2026, 3, 30, 11, 0)
    assert (due - end).in_seconds() == 72 * 3600


def test_day3_across_fall_back_is_09_local() -> None:
    # 2026-10-23 10:00 CEST (08:00 UTC); clocks go back on Sun 25 October;
    # +72 h = 2026-10-26 08:00 UTC = 09:00 CET.
    end = pendulum.datetime(2026, 10, 23, 10, 0, tz=ROME)
    due = due_at("day3", end)
    assert format_local(due, ROME, "YYYY-MM-DD HH:mm") == "2026-10-26 09:00"
    assert (due - end).in_seconds() == 72 * 3600


def test_score_5min_due() -> None:
    end = pendulum.datetime(2026, 3, 27, 10, 0, tz=ROME)
    assert format_local(due_at("score_5min", end), ROME, "HH:mm") == "10:05"


def test_unknown_kind_and_naive_input_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown follow-up kind"):
        due_at("day7", pendulum.datetime(2026, 1, 1, tz=ROME))
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at("day3", dt.datetime(2026, 1, 1, 10, 0))  # type: ignore[arg-type]


TZ_NAMES = ["Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@settings(max_examples=200, deadline=None)
@given(
    naive=st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2060, 1, 1)),
    tz_name=st.sampled_from(TZ_NAMES),
)
def test_due_at_is_always_exactly_72_hours_later(naive: dt.datetime, tz_name: str) -> None:
    end = pendulum.instance(naive, tz=tz_name)
    due = due_at("day3", end)
    assert due.timezone_name == "UTC"
    gap = due.naive() - end.in_timezone("UTC").naive()
    assert gap == dt.timedelta(hours=72)


# --------------------------------------------------------------------------- status


def test_status_travels_upcoming_due_overdue_missed(clock: None) -> None:
    end = pendulum.datetime(2026, 3, 27, 10, 0, tz=ROME)
    due = due_at("day3", end)  # 2026-03-30 09:00 UTC, default window 12 h before / 24 h after
    expected = [
        (due.subtract(hours=12, seconds=1), "upcoming"),
        (due.subtract(hours=12), "due"),
        (due, "due"),
        (due.add(seconds=1), "overdue"),
        (due.add(hours=24), "overdue"),
        (due.add(hours=24, seconds=1), "missed"),
    ]
    for when, state in expected:
        pendulum.travel_to(when, freeze=True)
        assert pendulum.now("UTC") == when
        assert status("day3", due) == state, when


def test_status_with_custom_window_and_score_window(clock: None) -> None:
    end = pendulum.datetime(2026, 3, 27, 10, 0, tz=ROME)
    due = due_at("day3", end)
    narrow = Window(before_hours=1, after_hours=2)
    assert status("day3", due, due.subtract(hours=2), narrow) == "upcoming"
    assert status("day3", due, due.add(hours=3), narrow) == "missed"

    score_due = due_at("score_5min", end)
    pendulum.travel_to(end.subtract(minutes=1), freeze=True)
    assert status("score_5min", score_due) == "upcoming"
    # The 5-minute score opens 4 minutes after the end (issue 9), not at the end.
    pendulum.travel_to(end, freeze=True)
    assert status("score_5min", score_due) == "upcoming"
    pendulum.travel_to(end.add(minutes=4).subtract(seconds=1), freeze=True)
    assert status("score_5min", score_due) == "upcoming"
    pendulum.travel_to(end.add(minutes=4), freeze=True)
    assert status("score_5min", score_due) == "due"
    pendulum.travel_to(end.add(hours=1), freeze=True)
    assert status("score_5min", score_due) == "overdue"
    pendulum.travel_to(end.add(hours=2, minutes=6), freeze=True)
    assert status("score_5min", score_due) == "missed"


def test_queue_order() -> None:
    assert STATUS_ORDER == ("overdue", "due", "upcoming", "missed")
    t = pendulum.datetime(2026, 1, 1, tz="UTC")
    items = [
        ("missed", t),
        ("done", t),
        ("upcoming", t),
        ("due", t.add(hours=1)),
        ("due", t),
        ("overdue", t),
    ]
    ordered = sorted(items, key=lambda i: queue_key(*i))
    assert [s for s, _ in ordered] == ["overdue", "due", "due", "upcoming", "missed", "done"]
    assert ordered[1][1] == t


# --------------------------------------------------------------------------- display


def test_followup_shown_in_another_time_zone() -> None:
    # Recorded in Rome, shown with the setting America/New_York (EDT from 8 March 2026)
    # and Asia/Tokyo (no DST): 2026-03-30 09:00 UTC.
    due = due_at("day3", pendulum.datetime(2026, 3, 27, 10, 0, tz=ROME))
    assert format_local(due, "America/New_York", "YYYY-MM-DD HH:mm zz") == "2026-03-30 05:00 EDT"
    assert format_local(due, "Asia/Tokyo", "YYYY-MM-DD HH:mm") == "2026-03-30 18:00"
    assert format_local(due, ROME) == "Mon 30 Mar 2026 11:00"
    assert format_local(due, ROME, "dddd D MMMM", locale="it") == "lunedì 30 marzo"
    with pytest.raises(ValueError, match="Unknown time zone"):
        to_local(due, "Mars/Olympus_Mons")


def test_relative_phrase(clock: None) -> None:
    due = pendulum.datetime(2026, 3, 30, 9, 0, tz="UTC")
    assert relative_phrase(due, due.subtract(hours=5)) == "due in 5 hours"
    assert relative_phrase(due, due.add(hours=2)) == "overdue by 2 hours"
    assert relative_phrase(due, due) == "due now"
    assert relative_phrase(due, due.subtract(hours=5), locale="it") == "scade tra 5 ore"
    assert relative_phrase(due, due.add(hours=2), locale="it") == "in ritardo di 2 ore"
    # pendulum locale without our own wording: pendulum's relative phrase
    assert relative_phrase(due, due.subtract(hours=5), locale="de") == "in 5 Stunden"
    assert relative_phrase(due, due.add(hours=2), locale="de") == "vor 2 Stunden"
    # region variants and unknown locales
    assert relative_phrase(due, due.subtract(hours=5), locale="en-GB") == "due in 5 hours"
    assert relative_phrase(due, due.subtract(hours=5), locale="xx") == "due in 5 hours"
    assert relative_phrase(due, due.subtract(hours=5), locale="it_CH") == "scade tra 5 ore"
    # default now is the (travelled) clock
    pendulum.travel_to(due.subtract(days=2), freeze=True)
    assert relative_phrase(due) == "due in 2 days"


# --------------------------------------------------------------------------- validation


def test_validate_timezone() -> None:
    assert validate_timezone("Europe/Rome") is None
    assert validate_timezone("UTC") is None
    msg = validate_timezone("Mars/Olympus_Mons")
    assert msg is not None and "Unknown time zone 'Mars/Olympus_Mons'" in msg
    assert "did you mean Europe/Rome" in (validate_timezone("europe/rome") or "")
    assert "required" in (validate_timezone("") or "")
    assert validate_timezone("../etc/passwd") is not None


@pytest.mark.parametrize("bad", [0, 6, "0", "6", "abc", "7.5", "4.5", "", " ", "-3", True, None])
def test_satisfaction_rejects(bad: object) -> None:
    assert parse_field("satisfaction", bad) == (None, "Score must be a whole number from 1 to 5")


@pytest.mark.parametrize("good", [1, 5, "4", " 3 ", 2.0])
def test_satisfaction_accepts(good: object) -> None:
    value, err = parse_field("satisfaction", good)
    assert err is None and isinstance(value, int) and 1 <= value <= 5


def test_field_messages() -> None:
    assert parse_field("back_pain_nrs", 11)[1] == "Back pain must be a whole number from 0 to 10"
    assert parse_field("back_pain_nrs", "0") == (0, None)
    assert parse_field("pdph_severity", "11")[1] == "Severity must be a whole number from 0 to 10"
    assert parse_field("pdph_onset_hours", "-3")[1] == (
        "Onset must be a whole number from 0 to 120 h"
    )
    assert parse_field("pdph_onset_hours", 121)[1] is not None
    assert parse_field("pdph_onset_hours", "120") == (120, None)
    assert parse_field("pdph", "yes") == (True, None)
    assert parse_field("pdph", "maybe")[1] == "PDPH: answer yes or no"
    assert parse_field("pdph_treatment", "blood_patch") == ("blood_patch", None)
    assert "Treatment: choose one of" in (parse_field("pdph_treatment", "surgery")[1] or "")
    assert "Contact: choose one of" in (parse_field("contact_method", "email")[1] or "")


def test_validate_followup_form() -> None:
    form = {
        "satisfaction": "5",
        "pdph": "yes",
        "pdph_onset_hours": "24",
        "pdph_orthostatic": "yes",
        "pdph_severity": "6",
        "pdph_treatment": "caffeine",
        "pdph_resolved": "no",
        "back_pain_nrs": "2",
        "radicular_pain": "no",
        "nausea_vomiting": "no",
        "other_event": "",
        "other_event_serious": "no",
        "contact_method": "phone",
        "assessor": "Dr Rossi",
    }
    assert validate_followup(form) == {}
    clean, _ = schedule.clean_followup(form)
    assert clean["satisfaction"] == 5 and clean["pdph"] is True and "other_event" not in clean

    errors = validate_followup(
        {**form, "satisfaction": "6", "back_pain_nrs": "11", "pdph_onset_hours": "-3"}
    )
    assert errors == {
        "satisfaction": "Score must be a whole number from 1 to 5",
        "back_pain_nrs": "Back pain must be a whole number from 0 to 10",
        "pdph_onset_hours": "Onset must be a whole number from 0 to 120 h",
    }


def test_validate_followup_required_and_consistency() -> None:
    assert "assessor" in validate_followup({"satisfaction": "4"})
    assert "assessor" in validate_followup({"satisfaction": "4", "assessor": "  "})
    assert validate_followup({"satisfaction": "4"}, completing=False) == {}
    # PDPH details without PDPH
    errors = validate_followup({"pdph": "no", "pdph_severity": "5"}, completing=False)
    assert errors == {"pdph_severity": "Only record PDPH details when PDPH is yes"}
    # ...but an unticked box or "none" from the same form is fine
    assert (
        validate_followup(
            {"pdph": "no", "pdph_orthostatic": "no", "pdph_treatment": "none"}, completing=False
        )
        == {}
    )
    assert "other_event" in validate_followup({"other_event_serious": "yes"}, completing=False)
    assert "colour" in validate_followup({"colour": "blue"}, completing=False)


def test_a_missed_followup_leaves_the_queue_after_the_setting() -> None:
    """Missed at due + window.after; long missed (out of the queue) missed_after_days
    later; at exactly that instant it stays."""
    due = pendulum.datetime(2026, 5, 1, 10, tz="UTC")
    window = schedule.Window(12, 24)
    closes = due.add(hours=24)
    assert schedule.status("day3", due, closes.add(seconds=1), window) == "missed"
    cut = closes.add(days=14)
    assert not schedule.long_missed("day3", due, cut, window, 14)
    assert schedule.long_missed("day3", due, cut.add(seconds=1), window, 14)
    assert schedule.queue_cutoff("day3", cut, window, 14) == due
    # 0 days: it leaves the queue the moment it is missed
    assert schedule.long_missed("day3", due, closes.add(seconds=1), window, 0)
    assert not schedule.long_missed("day3", due, closes, window, 0)
    # fractions of a day; the 5-minute score by its own window
    score = schedule.DEFAULT_WINDOWS["score_5min"]
    end = due.subtract(minutes=5)
    leaves = due.add(hours=2).add(hours=12)
    assert not schedule.long_missed("score_5min", due, leaves, score, 0.5)
    assert schedule.long_missed("score_5min", due, leaves.add(seconds=1), score, 0.5)
    assert schedule.queue_cutoff("score_5min", leaves, score, 0.5) == end.add(minutes=5)
    with pytest.raises(ValueError):
        schedule.queue_cutoff("day3", cut, window, -1)
    with pytest.raises(ValueError):
        schedule.queue_cutoff("day9", cut, window, 14)
