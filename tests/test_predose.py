"""Issue 14, domain: the pre-dose time-out's rules and the drug's clock (no storage)."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest

from sma_log.domain import fields, predose, timeline
from sma_log.domain.clock import to_text

TODAY = dt.date(2026, 3, 27)
T0 = pendulum.datetime(2026, 3, 27, 9, 0, tz="UTC")
ALL_ITEMS = {"consent": True, "skin": "intact", "antithrombotic": "none", "vp_shunt": False}


def lab(test: str, value: float, day: dt.date = TODAY) -> predose.LabResult:
    return predose.LabResult(f"ID{test}", test, value, predose.LAB_UNITS[test], day)


def full_labs(**over: float) -> dict[str, predose.LabResult]:
    values = {"platelets": 250.0, "pt": 12.0, "aptt": 30.0, "urine_protein": 0.1, **over}
    return {t: lab(t, v) for t, v in values.items()}


# ---------------------------------------------------------------- required items, flags
def test_presets_us_requires_every_lab_eu_only_the_bedside_questions() -> None:
    us = predose.Rules(required=predose.PRESETS["us"])
    eu = predose.Rules(required=predose.PRESETS["eu"])
    assert predose.evaluate(ALL_ITEMS, {}, eu).complete
    check = predose.evaluate(ALL_ITEMS, {}, us)
    assert check.missing == ("platelets", "coagulation", "urine_protein")
    assert check.needs_reason
    assert predose.evaluate(ALL_ITEMS, full_labs(), us).complete


def test_required_setting_text() -> None:
    assert predose.required_items("label", "us") == predose.PRESETS["us"]
    assert predose.required_items("label", "eu") == predose.PRESETS["eu"]
    assert predose.required_items("consent, platelets", "eu") == {"consent", "platelets"}
    assert predose.required_items("none", "us") == frozenset()
    with pytest.raises(ValueError, match="unknown time-out item 'blood'"):
        predose.required_items("consent,blood", "eu")


def test_unknown_is_missing_never_no() -> None:
    rules = predose.Rules(required=frozenset({"consent", "vp_shunt"}))
    check = predose.evaluate({"consent": None, "vp_shunt": None}, {}, rules)
    assert check.missing == ("consent", "vp_shunt")
    assert check.flags == ()  # unknown consent is missing, not "consent not given"
    assert predose.evaluate({"consent": True, "vp_shunt": False}, {}, rules).complete


def test_coagulation_is_pt_and_aptt_or_an_inr() -> None:
    rules = predose.Rules(required=frozenset({"coagulation"}))
    assert predose.evaluate({}, {"pt": lab("pt", 12)}, rules).missing == ("coagulation",)
    assert predose.evaluate({}, {"pt": lab("pt", 12), "aptt": lab("aptt", 30)}, rules).complete
    assert predose.evaluate({}, {"inr": lab("inr", 1.0)}, rules).complete


def test_an_anticoagulant_needs_its_agent_and_last_dose() -> None:
    rules = predose.Rules(required=frozenset({"antithrombotic"}))
    items = {"antithrombotic": "anticoagulant", "antithrombotic_agent": "enoxaparin"}
    assert predose.evaluate(items, {}, rules).missing == ("antithrombotic",)
    items["antithrombotic_last_at"] = to_text(T0.subtract(hours=30))
    check = predose.evaluate(items, {}, rules)
    assert check.complete
    assert check.notices and "enoxaparin" in check.notices[0]


def test_urine_protein_above_the_label_value_is_flagged() -> None:
    rules = predose.Rules()
    assert predose.evaluate(ALL_ITEMS, full_labs(urine_protein=0.2), rules).flags == ()
    check = predose.evaluate(ALL_ITEMS, full_labs(urine_protein=0.21), rules)
    assert check.flags == ("urine_protein",)
    assert check.complete and check.needs_reason
    assert "0.21 g/L > 0.2" in check.flag_texts[0]


def test_no_clinical_threshold_is_invented_by_default() -> None:
    """Platelets of 5 and an aPTT of 200 s raise no flag until the site sets a limit."""
    rules = predose.Rules()
    assert rules.platelets_min is None and rules.inr_max is None
    check = predose.evaluate(ALL_ITEMS, full_labs(platelets=5, aptt=200), rules)
    assert check.flags == ()
    site = predose.Rules(platelets_min=50, aptt_max_s=45)
    check = predose.evaluate(ALL_ITEMS, full_labs(platelets=5, aptt=200), site)
    assert check.flags == ("platelets", "aptt")
    assert "Platelet count 5 < 50 (site limit)" in check.flag_texts


def test_infected_skin_and_no_consent_are_flags() -> None:
    items = {**ALL_ITEMS, "skin": "infected_inflamed", "consent": False}
    check = predose.evaluate(items, {}, predose.Rules())
    assert check.flags == ("consent", "skin")
    with pytest.raises(predose.ReasonNeeded) as refused:
        predose.check_confirm(check, "  ")
    assert refused.value.flags == ("consent", "skin")
    assert str(refused.value).startswith("Give a reason to go ahead: flagged consent not")
    predose.check_confirm(check, "emergency, parents present")


# ---------------------------------------------------------------- lab input
def test_parse_lab_refuses_bad_input() -> None:
    rules = predose.Rules(lab_max_age_days=30)
    with pytest.raises(fields.ValidationError) as bad:
        predose.parse_lab("platelets", "-3", "2026-03-20", today=TODAY, rules=rules)
    assert bad.value.field == "value"
    with pytest.raises(fields.ValidationError, match="in the future") as bad:
        predose.parse_lab("platelets", "150", "2026-03-28", today=TODAY, rules=rules)
    assert bad.value.field == "taken_on"
    with pytest.raises(fields.ValidationError, match="older than the site's limit"):
        predose.parse_lab("platelets", "150", "2026-02-24", today=TODAY, rules=rules)
    with pytest.raises(fields.ValidationError, match="not a date"):
        predose.parse_lab("platelets", "150", "27/03/2026", today=TODAY, rules=rules)
    with pytest.raises(fields.ValidationError, match="choose one of") as bad:
        predose.parse_lab("ferritin", "150", "2026-03-20", today=TODAY, rules=rules)
    assert bad.value.field == "test"
    with pytest.raises(fields.ValidationError, match="Unit 'mmol/L'"):
        predose.parse_lab(
            "urine_protein", "1", "2026-03-20", unit="mmol/L", today=TODAY, rules=rules
        )


def test_parse_lab_converts_units() -> None:
    rules = predose.Rules()
    assert predose.parse_lab(
        "urine_protein", "35", "2026-03-20", unit="mg/dL", today=TODAY, rules=rules
    ) == ("urine_protein", 0.35, "g/L", dt.date(2026, 3, 20))
    assert predose.parse_lab(
        "Platelets", "250,5", "2026-03-27", unit="10^3/uL", today=TODAY, rules=rules
    ) == ("platelets", 250.5, "10^9/L", TODAY)


def test_usable_labs_latest_fresh_result() -> None:
    old = lab("platelets", 100, dt.date(2026, 1, 1))
    new = lab("platelets", 200, dt.date(2026, 3, 1))
    later = lab("platelets", 300, dt.date(2026, 3, 28))  # after the procedure's day
    got = predose.usable_labs([later, old, new], TODAY, predose.Rules())
    assert got["platelets"] is new
    assert predose.usable_labs([old], TODAY, predose.Rules(lab_max_age_days=30)) == {}


def test_clean_items_refuses_a_future_last_dose_and_bad_codes() -> None:
    with pytest.raises(fields.ValidationError, match="in the future"):
        predose.clean_items({"antithrombotic_last_at": T0.add(minutes=1)}, T0)
    with pytest.raises(fields.ValidationError) as bad:
        predose.clean_items({"skin": "red"}, T0)
    assert bad.value.field == "skin"
    assert predose.clean_items({"consent": "y", "vp_shunt": "no"}, T0) == {
        "consent": 1,
        "vp_shunt": 0,
    }


def test_parse_when_local_times() -> None:
    now = pendulum.datetime(2026, 3, 27, 10, 0, tz="Europe/Rome").in_timezone("UTC")
    got = predose.parse_when("08:30", "Europe/Rome", now)
    assert got == pendulum.datetime(2026, 3, 27, 7, 30, tz="UTC")
    assert predose.parse_when("2026-03-26 22:15", "Europe/Rome", now) == pendulum.datetime(
        2026, 3, 26, 21, 15, tz="UTC"
    )
    with pytest.raises(fields.ValidationError, match="in the future"):
        predose.parse_when("10:30", "Europe/Rome", now)
    with pytest.raises(fields.ValidationError, match="not a time"):
        predose.parse_when("half past", "Europe/Rome", now)


# ---------------------------------------------------------------- drug timing
def events(*kinds: tuple[str, int, str | None]) -> list[timeline.Event]:
    return [
        timeline.Event(f"E{i}", kind, T0.add(minutes=m), value)
        for i, (kind, m, value) in enumerate(kinds)
    ]


def test_drug_times_replay_entered_instant_and_latest_wins() -> None:
    earlier = to_text(T0.subtract(minutes=40))
    state = timeline.replay(
        events(("start", 0, None), ("vial_out", 1, earlier), ("drawn_up", 2, None))
    )
    assert state.drug_times == {"vial_out": T0.subtract(minutes=40), "drawn_up": T0.add(minutes=2)}
    state = timeline.replay(
        events(("start", 0, None), ("drawn_up", 1, None), ("drawn_up", 3, None))
    )
    assert state.drug_times["drawn_up"] == T0.add(minutes=3)


def test_drug_time_order_rules() -> None:
    state = timeline.replay(
        events(
            ("start", 0, None),
            ("attempt", 1, None),
            ("csf", 2, None),
            ("injection_start", 3, None),
        )
    )
    with pytest.raises(timeline.RuleError, match="after the injection start"):
        timeline.check(state, "drawn_up", None)  # now = after the injection started
    with pytest.raises(timeline.RuleError, match="after the injection start"):
        timeline.check(state, "drawn_up", to_text(T0.add(minutes=4)))
    timeline.check(state, "drawn_up", to_text(T0.add(minutes=2)))  # entered: before it
    with pytest.raises(timeline.RuleError, match="in the future"):
        timeline.check_drug_time(state, "vial_out", to_text(T0.add(hours=1)), now=T0)
    drawn = timeline.replay(events(("start", 0, None), ("drawn_up", 1, None)))
    with pytest.raises(timeline.RuleError, match="after the drug was drawn up"):
        timeline.check(drawn, "vial_out", None)
    vial = timeline.replay(events(("start", 0, None), ("vial_out", 5, None)))
    with pytest.raises(timeline.RuleError, match="before the vial left"):
        timeline.check(vial, "drawn_up", to_text(T0.add(minutes=4)))


def test_drug_clock_label_limits_and_warning() -> None:
    drawn = {"drawn_up": T0}
    us = predose.drug_clock(drawn, "us", T0.add(hours=3), warn_min=30)
    assert (us.status, us.limit_h, us.remaining_s) == ("ok", 4.0, 3600)
    assert us.text == "1 h 00 min left of 4 h"
    assert predose.drug_clock(drawn, "us", T0.add(hours=3, minutes=31)).status == "warn"
    expired = predose.drug_clock(drawn, "us", T0.add(hours=4, minutes=5))
    assert expired.status == "expired" and "EXPIRED 5 min ago" in expired.text
    eu = predose.drug_clock(drawn, "eu", T0.add(hours=4, minutes=5))
    assert (eu.status, eu.limit_h) == ("ok", 6.0)
    assert predose.drug_clock({"vial_out": T0}, "us", T0).status == "unknown"
    used = predose.drug_clock(drawn, "us", T0.add(hours=9), injected_at=T0.add(hours=5))
    assert used.status == "used" and "AFTER the 4 h limit" in used.text


def test_injection_length_flag_and_derived_columns() -> None:
    state = timeline.replay(
        events(
            ("start", 0, None),
            ("attempt", 1, None),
            ("csf", 2, None),
            ("drawn_up", 2, to_text(T0.subtract(minutes=30))),
            ("injection_start", 3, None),
            ("injection_end", 3, None),
        )
    )
    assert predose.injection_seconds(state) == 0
    assert predose.injection_flag(0) == "shorter than 1 min (label: 1–3 min)"
    assert predose.injection_flag(120) is None
    assert predose.injection_flag(181) == "longer than 3 min (label: 1–3 min)"
    cols = timeline.derived_columns(state, to_text)
    assert cols["drawn_up_at"] == to_text(T0.subtract(minutes=30))
    assert cols["vial_out_at"] is None
    assert cols["injection_sec"] == 0.0
    assert cols["drawn_to_injection_min"] == 33.0


def test_csf_versus_dose_volume() -> None:
    assert predose.dose_volume_ml("std_maintenance") == 5.0
    assert predose.dose_volume_ml("high_loading_1") is None  # not in the notes: not invented
    assert predose.csf_vs_dose_text(4.5, "std_loading_1") == "CSF removed 4.5 mL / dose volume 5 mL"
