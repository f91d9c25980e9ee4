"""Analysis rows from a real database written through the Store, with the clock travelling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest

from sma_log.domain import stats
from sma_log.domain.clock import Clock
from sma_log.storage.analysis import (
    ANALYSIS_COLUMNS,
    COLUMN_CHOICES,
    IDENTIFYING_COLUMNS,
    iter_analysis_rows,
)
from sma_log.storage.store import Store

T0 = pendulum.datetime(2026, 3, 27, 9, 0, tz="UTC")
SETUP = {
    "operator": "Dr Rossi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "none",
    "cobb_angle": "45.5",
    "hardware": "posterior_fusion",
    "bmi": "18.5",
}


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Store]:
    """Two patients: one delivered procedure with a 72-h follow-up (PDPH and another
    event), one failed procedure, one procedure still open. Times by travel."""
    store = Store.open(tmp_path / "a.db", "tester", clock=Clock(monotonic=False))
    try:
        pendulum.travel_to(T0, freeze=True)
        a = store.create_patient(
            {"study_code": "AN-001", "sma_type": "2", "birth_year": "2015", "sex": "female"}
        )
        p1 = store.start_procedure(a["id"], SETUP)
        # attempt at 2 min, redirect, second attempt at 4 min, CSF, injection 5-7 min
        steps = [(2, "attempt"), (3, "redirect"), (4, "attempt"), (5, "csf")]
        steps += [(5, "injection_start"), (7, "injection_end")]
        for minute, kind in steps:
            pendulum.travel_to(T0.add(minutes=minute), freeze=True)
            store.record(p1, kind)
        pendulum.travel_to(T0.add(minutes=9), freeze=True)
        store.end_procedure(p1, {"drug_delivered": "yes", "note": "secret note"})
        pendulum.travel_to(T0.add(minutes=14), freeze=True)  # 5 min after the end
        store.set_score(p1, 4)
        pendulum.travel_to(T0.add(hours=72), freeze=True)
        fu = store.one("SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (p1,))
        assert fu is not None
        store.complete_followup(
            fu["id"],
            {
                "satisfaction": "5",
                "pdph": "yes",
                "pdph_onset_hours": "24",
                "pdph_severity": "6",
                "pdph_treatment": "caffeine",
                "pdph_resolved": "yes",
                "back_pain_nrs": "0",
                "radicular_pain": "no",
                "nausea_vomiting": "no",
                # other_event_any left out: describing an event answers it (yes)
                "other_event": "vasovagal episode in the car park",
                "other_event_serious": "no",
                "assessor": "N",
            },
        )
        # patient B, 2 days later in Rome's evening (= next UTC day for the date filter)
        pendulum.travel_to(pendulum.datetime(2026, 3, 29, 21, 30, tz="UTC"), freeze=True)
        b = store.create_patient({"study_code": "AN-002", "birth_year": "1990"})
        p2 = store.start_procedure(b["id"], {**SETUP, "cobb_angle": "25", "sedation": "local"})
        pendulum.travel_to(pendulum.datetime(2026, 3, 29, 21, 33, tz="UTC"), freeze=True)
        store.record(p2, "attempt")
        pendulum.travel_to(pendulum.datetime(2026, 3, 29, 21, 40, tz="UTC"), freeze=True)
        store.end_procedure(
            p2,
            {"drug_delivered": "no", "failure_reason": "Mr Smith moved", "fallback": "ct"},
        )
        pendulum.travel_to(pendulum.datetime(2026, 4, 2, 9, 0, tz="UTC"), freeze=True)
        c = store.create_patient({"study_code": "AN-003"})
        store.start_procedure(c["id"], SETUP)
        yield store
    finally:
        pendulum.travel_back()
        store.close()


def test_one_row_per_ended_procedure_with_every_documented_column(clinic: Store) -> None:
    rows = list(iter_analysis_rows(clinic))
    assert [r["study_code"] for r in rows] == ["AN-001", "AN-002"]
    assert list(rows[0]) == [c.name for c in ANALYSIS_COLUMNS]
    r = rows[0]
    assert r["started_at"] == "2026-03-27T09:00:00Z"
    assert r["ended_at"] == "2026-03-27T09:09:00Z"
    assert (r["year"], r["sma_type"], r["sex"], r["birth_year"], r["age_years"]) == (
        2026,
        2,
        "female",
        2015,
        11,
    )
    assert (r["regimen"], r["dose_mg"], r["guidance"], r["approach"]) == (
        "std_maintenance",
        12,
        "us_realtime",
        "paramedian",
    )
    assert (r["cobb_angle"], r["scoliosis"], r["hardware"], r["bmi"]) == (
        45.5,
        "moderate",
        "posterior_fusion",
        18.5,
    )
    assert (r["level_final"], r["level"]) == ("L3-L4", "L3-L4")
    # derived on the procedure row: 2 attempts, 1 redirection, not first-attempt success
    assert (r["attempts_n"], r["redirections_n"], r["first_attempt_success"]) == (2, 1, 0)
    assert r["procedure_min"] == pytest.approx(9.0)  # 09:00 -> 09:09
    assert r["puncture_min"] == pytest.approx(5.0)  # first puncture 09:02 -> injection end 09:07
    assert (r["drug_delivered"], r["satisfaction_5min"], r["sedation"]) == (1, 4, "none")
    assert r["fu72_state"] == "done" and r["satisfaction_72h"] == 5
    assert r["fu72_due_at"] == "2026-03-30T09:09:00Z"
    # when each was taken: the score 5 min after the end, the call 72 h after the start
    assert (r["satisfaction_5min_timing"], r["satisfaction_5min_offset_min"]) == ("on_time", 5.0)
    assert (r["fu72_timing"], r["fu72_early"], r["fu72_late"]) == ("on_time", 0, 0)
    assert r["fu72_offset_min"] == pytest.approx(72 * 60 - 9)
    assert (r["pdph"], r["pdph_onset_hours"], r["pdph_severity"]) == (1, 24, 6)
    assert (r["pdph_treatment"], r["pdph_resolved"]) == ("caffeine", 1)
    assert r["other_event_any"] == 1 and r["other_event"].startswith("vasovagal")
    assert r["operator"] == "Dr Rossi"
    assert "secret note" not in repr(rows)  # notes are never analysis columns
    f = rows[1]
    assert (f["drug_delivered"], f["fallback"], f["failure_reason"]) == (0, "ct", "Mr Smith moved")
    assert (f["scoliosis"], f["sedation"], f["attempts_n"], f["age_years"]) == (
        "mild",
        "local",
        1,
        36,
    )
    assert f["fu72_state"] == "open" and f["other_event_any"] is None
    assert f["satisfaction_5min_timing"] is None and f["fu72_timing"] is None


def test_open_procedures_on_request_and_a_subset_of_columns(clinic: Store) -> None:
    assert len(list(iter_analysis_rows(clinic, include_open=True))) == 3
    rows = list(iter_analysis_rows(clinic, columns=["procedure_id", "attempts_n"], order=False))
    assert sorted(r["attempts_n"] for r in rows) == [1, 2]
    assert all(list(r) == ["procedure_id", "attempts_n"] for r in rows)
    with pytest.raises(ValueError, match="unknown analysis column"):
        list(iter_analysis_rows(clinic, columns=["nope"]))


def test_date_filter_is_inclusive_in_the_given_time_zone(clinic: Store) -> None:
    def codes(**kw: Any) -> list[str]:
        return [r["study_code"] for r in iter_analysis_rows(clinic, **kw)]

    assert codes(date_from="2026-03-27", date_to="2026-03-27") == ["AN-001"]
    # B started 21:30 UTC on 29 March = 23:30 in Rome (29th), 30 March in Tokyo
    assert codes(date_from="2026-03-29", date_to="2026-03-29", tz="Europe/Rome") == ["AN-002"]
    assert codes(date_from="2026-03-30", tz="Asia/Tokyo") == ["AN-002"]
    assert codes(date_to=pendulum.date(2026, 3, 28)) == ["AN-001"]


def test_dictionary_metadata_is_consistent() -> None:
    names = [c.name for c in ANALYSIS_COLUMNS]
    assert len(names) == len(set(names))
    assert set(names) >= IDENTIFYING_COLUMNS and set(COLUMN_CHOICES) <= set(names)
    assert set(stats.NEEDED) <= set(names)
    assert all(len(c) == 4 and c.description for c in ANALYSIS_COLUMNS)
    for by, (key, _) in stats.GROUPINGS.items():
        assert key in names, by


def test_rows_feed_the_statistics(clinic: Store) -> None:
    rep = stats.summarise(iter_analysis_rows(clinic), by="scoliosis")
    assert [g.group for g in rep.groups] == ["mild", "moderate"]
    assert rep.overall.figure("success").value == stats.Count(1, 2)
    assert rep.overall.figure("pdph").value == stats.Count(1, 1)
