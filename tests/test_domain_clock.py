"""Clock: the one stored text form, and elapsed times that survive wall-clock jumps."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sma_log.domain import clock
from sma_log.domain.clock import (
    STORED_FORMAT_LEN,
    Anchor,
    Clock,
    format_elapsed,
    from_text,
    instant_fields,
    now_text,
    stored_fields,
    to_text,
)

T0 = pendulum.datetime(2026, 3, 27, 9, 0, 0, tz="UTC")


@pytest.fixture(autouse=True)
def _travel_back() -> Iterator[None]:
    yield
    pendulum.travel_back()


# ---------------------------------------------------------------- stored form
def test_stored_form_is_fixed_width_utc() -> None:
    assert STORED_FORMAT_LEN == 27
    assert to_text(T0) == "2026-03-27T09:00:00.000000Z"
    rome = pendulum.datetime(2026, 3, 27, 10, 0, 0, 123, tz="Europe/Rome")
    assert to_text(rome) == "2026-03-27T09:00:00.000123Z"
    assert len(to_text(pendulum.datetime(2026, 1, 1, tz="America/Los_Angeles"))) == 27


def test_now_text_uses_the_travelled_clock() -> None:
    pendulum.travel_to(T0.add(microseconds=5), freeze=True)
    assert now_text() == "2026-03-27T09:00:00.000005Z"


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=pendulum.datetime(1900, 1, 1).naive(),
        max_value=pendulum.datetime(2200, 1, 1).naive(),
    )
)
def test_round_trip_and_width(naive: object) -> None:
    dt = pendulum.instance(naive, tz="UTC")
    text = to_text(dt)
    assert len(text) == 27
    back = from_text(text)
    assert back == dt
    assert back.timezone_name == "UTC"
    assert to_text(back) == text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.datetimes(
            min_value=pendulum.datetime(1990, 1, 1).naive(),
            max_value=pendulum.datetime(2100, 1, 1).naive(),
            timezones=st.sampled_from(
                [pendulum.timezone(z) for z in ("UTC", "Europe/Rome", "Asia/Kolkata")]
            ),
        ),
        min_size=2,
        max_size=10,
    )
)
def test_text_sorts_like_instants(dts: list[object]) -> None:
    instants = [pendulum.instance(d) for d in dts]
    by_text = sorted(instants, key=to_text)
    assert [to_text(d) for d in by_text] == sorted(to_text(d) for d in instants)
    assert by_text == sorted(instants)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-27T09:00:00Z",
        "2026-03-27T09:00:00.000000+00:00",
        "2026-03-27T09:00:00.000000",
        "2026-03-27 09:00:00.000000Z",  # right width, wrong separator
        "2026/03/27T09:00:00.000000Z",
        "2026-03-27T09:00:00,000000Z",
        "2026-13-27T09:00:00.000000Z",
        "2026-02-30T09:00:00.000000Z",
        "2026-03-27T25:00:00.000000Z",
        "+026-03-27T09:00:00.000000Z",
        "2026-03-27T09:00: 0.000000Z",
        "２026-03-27T09:00:00.000000Z",  # non-ASCII digit
        "",
        "garbage",
    ],
)
def test_from_text_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="not a stored instant"):
        from_text(text)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("2026-03-27T09:00:00.000123Z", (2026, 3, 27, 9, 0, 0, 123)),
        ("2026-03-27T09:00:00.000123", (2026, 3, 27, 9, 0, 0, 123)),
        ("2026-03-27T09:00:01Z", (2026, 3, 27, 9, 0, 1, 0)),
        ("2026-03-27T09:00:01", (2026, 3, 27, 9, 0, 1, 0)),
    ],
)
def test_instant_fields_reads_the_four_forms(text: str, fields: tuple[int, ...]) -> None:
    assert instant_fields(text) == fields
    if len(text) == STORED_FORMAT_LEN:
        assert stored_fields(text) == fields
    else:  # the stored form is its strict case
        with pytest.raises(ValueError, match="not a stored instant"):
            stored_fields(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-27 09:00:00Z",
        "2026-03-27T09:00:00X",
        "2026-03-27T09:00:00.12345Z",
        "2026-03-27T09:00:00.000000ZZ",
        "2026-03-27T09:00",
        "2026-03-27T09:00:00Z\n",
        "2026- 3-27T09:00:00Z",
        "２026-03-27T09:00:00Z",
        "",
        None,
        20260327,
    ],
)
def test_instant_fields_refuses_other_forms(text: object) -> None:
    with pytest.raises(ValueError, match="not an instant"):
        instant_fields(text)


# ---------------------------------------------------------------- elapsed, wall clock
def test_elapsed_from_wall_clock() -> None:
    c = Clock(monotonic=False)
    pendulum.travel_to(T0.add(minutes=3, seconds=7), freeze=True)
    assert c.elapsed(T0) == 187.0
    assert c.anchor() is None


def test_elapsed_never_negative_when_the_wall_clock_travels_back() -> None:
    c = Clock(monotonic=False)
    pendulum.travel_to(T0, freeze=True)
    start = c.now()
    pendulum.travel_to(T0.subtract(hours=1), freeze=True)
    assert c.elapsed(start) == 0.0
    assert format_elapsed(c.elapsed(start)) == "00:00"


def test_monotonic_anchor_survives_wall_clock_jumps() -> None:
    c = Clock(monotonic=True)
    if not c.monotonic:  # pragma: no cover - only on systems without CLOCK_BOOTTIME
        pytest.fail("CLOCK_BOOTTIME / boot_id unavailable: the anchor path cannot be tested")
    start = c.now()
    anchor = c.anchor()
    assert isinstance(anchor, Anchor)
    pendulum.travel_to(pendulum.now("UTC").subtract(hours=1), freeze=True)
    back = c.elapsed(start, anchor)
    assert 0.0 <= back < 5.0  # not −59:59, not 0 because it was clamped: the real seconds
    assert (c.now() - start).total_seconds() < -3500  # the wall clock really went back
    pendulum.travel_to(pendulum.now("UTC").add(hours=2), freeze=True)
    forward = c.elapsed(start, anchor)
    assert back <= forward < 5.0  # not +1:00:00
    assert format_elapsed(forward) in ("00:00", "00:01", "00:02", "00:03", "00:04")


def test_anchor_measures_real_time_while_wall_clock_is_frozen() -> None:
    c = Clock(monotonic=True)
    pendulum.travel_to(T0, freeze=True)
    anchor = Anchor(clock._boot_id() or "", time.clock_gettime(time.CLOCK_BOOTTIME) - 90.0)
    assert 90.0 <= c.elapsed(T0, anchor) < 95.0


def test_anchor_from_another_boot_falls_back_to_wall_time() -> None:
    c = Clock(monotonic=True)
    pendulum.travel_to(T0.add(seconds=42), freeze=True)
    stale = Anchor("another-boot-id", 123456.0)
    assert c.elapsed(T0, stale) == 42.0
    pendulum.travel_to(T0.subtract(seconds=42), freeze=True)
    assert c.elapsed(T0, stale) == 0.0


def test_non_monotonic_clock_ignores_an_anchor() -> None:
    c = Clock(monotonic=False)
    pendulum.travel_to(T0.add(seconds=10), freeze=True)
    anchor = Anchor(clock._boot_id() or "", 0.0)  # would say "uptime seconds"
    assert c.elapsed(T0, anchor) == 10.0


# ---------------------------------------------------------------- format_elapsed
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00"),
        (0.999, "00:00"),
        (59.9, "00:59"),
        (60, "01:00"),
        (754, "12:34"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3661, "1:01:01"),
        (36000 + 59, "10:00:59"),
    ],
)
def test_format_elapsed(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text
