"""Case-series statistics against figures worked out by hand (below, in comments)."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import pytest

from sma_log.domain import stats
from sma_log.domain.stats import Count, Spread


def row(pid: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "patient_id": pid,
        "approach": "paramedian",
        "drug_delivered": 1,
        "attempts_n": 1,
        "redirections_n": 0,
        "first_attempt_success": 1,
        "procedure_min": 10.0,
        "puncture_min": None,
        "satisfaction_5min": None,
        "satisfaction_5min_timing": None,  # on_time, early, late; None: not known
        "sedation": "none",
        "fu72_state": "open",
        "fu72_timing": None,
        "satisfaction_72h": None,
        "pdph": None,
        "back_pain_nrs": None,
        "radicular_pain": None,
        "nausea_vomiting": None,
        "other_event_any": None,
        "other_event_serious": None,
    }
    base.update(kw)
    return base


# The fixture: three patients (A, B, C), five procedures.
#
# proc pat approach  ok att red fas  proc punct sat5 sedation  72 h         sat72 event
# P1   A   paramed.  1  1   0   1    10.0  4.0  5    none      done         5     —
# P2   A   paramed.  1  3   2   0    20.0 12.0  4    local     done         4     PDPH
# P3   B   paramed.  0  5   4   0    30.0  —    3    none      unreachable  —     —
# P4   B   midline   1  2   1   0    12.0  6.0  —    iv_sed.   done         3     back pain 2
# P5   C   transfor. 1  1   0   1    15.0  5.0  5    none      open         —     —
# Every score and 72-hour call was taken in its window (on_time).
OK = "on_time"
FIXTURE = [
    row("A", attempts_n=1, redirections_n=0, first_attempt_success=1, procedure_min=10.0,
        puncture_min=4.0, satisfaction_5min=5, satisfaction_5min_timing=OK, fu72_state="done",
        fu72_timing=OK, satisfaction_72h=5, pdph=0, back_pain_nrs=0, other_event_any=0),
    row("A", attempts_n=3, redirections_n=2, first_attempt_success=0, procedure_min=20.0,
        puncture_min=12.0, satisfaction_5min=4, satisfaction_5min_timing=OK, sedation="local",
        fu72_state="done", fu72_timing=OK, satisfaction_72h=4, pdph=1, back_pain_nrs=0,
        other_event_any=0),
    row("B", drug_delivered=0, attempts_n=5, redirections_n=4, first_attempt_success=0,
        procedure_min=30.0, satisfaction_5min=3, satisfaction_5min_timing=OK,
        fu72_state="unreachable"),
    row("B", approach="midline", attempts_n=2, redirections_n=1, first_attempt_success=0,
        procedure_min=12.0, puncture_min=6.0, sedation="iv_sedation", fu72_state="done",
        fu72_timing=OK, satisfaction_72h=3, pdph=0, back_pain_nrs=2, other_event_any=0),
    row("C", approach="transforaminal", procedure_min=15.0, puncture_min=5.0,
        satisfaction_5min=5, satisfaction_5min_timing=OK),
]  # fmt: skip


def value(summary: stats.GroupSummary, key: str) -> Any:
    return summary.figure(key).value


def test_overall_per_procedure_by_hand() -> None:
    rep = stats.summarise(FIXTURE)
    o = rep.overall
    assert value(o, "patients") == 3
    assert value(o, "procedures") == 5
    # success 4/5 = 80%
    assert value(o, "success") == Count(4, 5) and value(o, "success").pct == 80.0
    # attempts 1,1,2,3,5: median 2; inclusive quartiles at positions 1 and 3 -> 1 and 3
    a = value(o, "attempts")
    assert (a.n, a.median, a.q1, a.q3, a.min, a.max) == (5, 2, 1, 3, 1, 5)
    assert value(o, "first_attempt") == Count(2, 5)  # P1, P5: 40%
    assert value(o, "attempts_le2") == Count(3, 5)  # 1, 1, 2: 60%
    assert value(o, "attempts_le4") == Count(4, 5)  # all but 5: 80%
    assert value(o, "redirections").median == 1  # 0, 0, 1, 2, 4
    # procedure time 10, 20, 30, 12, 15: mean 87/5 = 17.4; squared deviations
    # 54.76 + 6.76 + 158.76 + 29.16 + 5.76 = 255.2; SD = sqrt(255.2 / 4) = sqrt(63.8)
    t = value(o, "procedure_min")
    assert t.mean == pytest.approx(17.4)
    assert t.sd == pytest.approx(math.sqrt(63.8))
    assert (t.median, t.min, t.max) == (15, 10, 30)
    # puncture time 4, 12, 6, 5 (P3 has none): mean 27/4 = 6.75, median (5 + 6)/2 = 5.5
    p = value(o, "puncture_min")
    assert (p.n, p.mean, p.median, p.min, p.max) == (4, 6.75, 5.5, 4, 12)
    # satisfaction at 5 min 5, 4, 3, 5: mean 17/4 = 4.25 on n = 4
    s5 = value(o, "satisfaction_5min")
    assert (s5.n, s5.mean, s5.min, s5.max) == (4, 4.25, 3, 5)
    # at 72 h (completed follow-ups only) 5, 4, 3: mean 4.0 on n = 3
    s72 = value(o, "satisfaction_72h")
    assert (s72.n, s72.mean) == (3, 4.0)
    assert value(o, "sedation_none") == Count(3, 5)
    assert value(o, "sedation_local") == Count(1, 5)
    assert value(o, "sedation_iv_sedation") == Count(1, 5)
    assert value(o, "sedation_general") == Count(0, 5)
    # adverse events over the 3 completed follow-ups that answered the question
    # (all 3 did): PDPH 1/3 = 33.3%, back pain 1/3
    assert value(o, "pdph") == Count(1, 3) and round(value(o, "pdph").pct, 1) == 33.3
    assert value(o, "back_pain") == Count(1, 3)
    assert value(o, "other_event") == Count(0, 3)
    assert value(o, "followup_done") == Count(3, 5)
    assert value(o, "followup_unreachable") == Count(1, 5)
    assert value(o, "followup_open") == Count(1, 5)
    assert all(f.unit == "procedure" for f in o.figures if f.key != "patients")


def test_groups_per_procedure_and_a_single_procedure_group() -> None:
    rep = stats.summarise(FIXTURE, by="approach")
    # vocabulary order: midline, paramedian, transforaminal
    assert [g.group for g in rep.groups] == ["midline", "paramedian", "transforaminal"]
    para = rep.groups[1]
    # P1, P2, P3 of patients A and B: success 2/3 = 66.7%; attempts 1, 3, 5 -> median 3
    assert value(para, "patients") == 2
    assert value(para, "success") == Count(2, 3) and round(value(para, "success").pct, 1) == 66.7
    assert value(para, "attempts").median == 3
    # times 10, 20, 30: mean 20, SD sqrt((100 + 0 + 100) / 2) = 10
    t = value(para, "procedure_min")
    assert (t.mean, t.sd, t.median) == (20, 10, 20)
    # a group with one procedure (P5): the value itself, no SD, no crash
    trans = rep.groups[2]
    t = value(trans, "procedure_min")
    assert t == Spread(1, 15.0, None, 15.0, 15.0, 15.0, 15.0, 15.0)
    assert value(trans, "puncture_min").sd is None
    assert value(trans, "satisfaction_72h") == Spread(0)
    assert value(trans, "pdph") == Count(0, 0) and value(trans, "pdph").pct is None
    assert rep.as_dict()["groups"][2]["figures"][0]["n"] == 1


def test_per_patient_by_hand() -> None:
    rep = stats.summarise(FIXTURE, unit="patient")
    o = rep.overall
    # A: P1 + P2, both delivered -> success; attempts median (1 + 3)/2 = 2.0;
    #    first attempt 1, 0 -> not every time; deepest sedation local; PDPH (P2) -> yes.
    # B: P3 failed -> no success; attempts median (5 + 2)/2 = 3.5; deepest IV sedation;
    #    followed up (P4 done): no PDPH, back pain yes.
    # C: P5 -> success; attempts 1; first attempt every time; sedation none; 72 h open
    #    -> not among the followed-up patients.
    assert value(o, "patients") == 3
    assert value(o, "success") == Count(2, 3)  # 66.7%
    assert round(value(o, "success").pct, 1) == 66.7
    a = value(o, "attempts")  # patient medians 2.0, 3.5, 1 -> median 2.0
    assert (a.n, a.median, a.min, a.max) == (3, 2.0, 1, 3.5)
    assert value(o, "attempts_le2") == Count(2, 3)  # A (2.0), C (1): 66.7%
    assert value(o, "attempts_le4") == Count(3, 3)  # 100%
    assert value(o, "first_attempt") == Count(1, 3)  # C only: 33.3%
    assert value(o, "sedation_none") == Count(1, 3)
    assert value(o, "sedation_local") == Count(1, 3)
    assert value(o, "sedation_iv_sedation") == Count(1, 3)
    assert value(o, "pdph") == Count(1, 2)  # A of A, B: 50%
    assert value(o, "back_pain") == Count(1, 2)  # B of A, B
    # times and satisfaction stay per procedure (per injection), and say so
    assert o.figure("procedure_min").unit == "procedure"
    assert value(o, "procedure_min").mean == pytest.approx(17.4)
    assert o.figure("success").unit == "patient"
    # by approach: paramedian holds A (P1, P2) and B (P3 only): success 1/2, <= 2: A only
    para = stats.summarise(FIXTURE, by="approach", unit="patient").groups[1]
    assert value(para, "success") == Count(1, 2)
    assert value(para, "attempts_le2") == Count(1, 2)  # A 2.0; B 5


def zanfini_rows() -> list[dict[str, Any]]:
    """18 patients, 57 injections: 9 patients with attempts 1, 2, 2 (median 2), 6 with
    3, 4, 3 (median 3), 3 with 5, 6, 7, 4 (median 5.5): 9 x 3 + 6 x 3 + 3 x 4 = 57."""
    rows = []
    plan = [[1, 2, 2]] * 9 + [[3, 4, 3]] * 6 + [[5, 6, 7, 4]] * 3
    for i, attempts in enumerate(plan):
        for a in attempts:
            rows.append(row(f"Z{i:02d}", attempts_n=a, first_attempt_success=int(a == 1)))
    return rows


def test_zanfini_like_series_gives_the_published_percentages() -> None:
    rows = zanfini_rows()
    assert len(rows) == 57
    o = stats.summarise(rows, unit="patient").overall
    assert value(o, "patients") == 18
    assert value(o, "procedures") == 57
    assert value(o, "success").pct == 100.0
    le2, le4 = value(o, "attempts_le2"), value(o, "attempts_le4")
    assert (le2.n, le2.N, round(le2.pct, 1)) == (9, 18, 50.0)
    assert (le4.n, le4.N, round(le4.pct, 1)) == (15, 18, 83.3)
    assert value(o, "sedation_none") == Count(18, 18)  # no sedation


@pytest.mark.parametrize(
    ("cobb", "expected"),
    [
        (None, "unknown"),
        (0, "none"),
        (9.9, "none"),
        (10, "mild"),
        (25, "mild"),
        (25.1, "moderate"),
        (50, "moderate"),
        (50.1, "severe"),
        (120, "severe"),
    ],
)
def test_cobb_classes_and_their_sql_agree(cobb: float | None, expected: str) -> None:
    assert stats.scoliosis_class(cobb) == expected
    conn = sqlite3.connect(":memory:")
    sql = stats.scoliosis_sql("x")
    assert conn.execute(f"SELECT {sql} FROM (SELECT ? AS x)", (cobb,)).fetchone()[0] == expected


def test_empty_input_and_bad_arguments() -> None:
    rep = stats.summarise([], by="year")
    assert rep.groups == [] and value(rep.overall, "procedures") == 0
    assert value(rep.overall, "success").pct is None
    assert value(rep.overall, "procedure_min") == Spread(0)
    with pytest.raises(ValueError, match="grouping"):
        stats.summarise([], by="colour")
    with pytest.raises(ValueError, match="unit"):
        stats.summarise([], unit="ward")  # type: ignore[arg-type]


def test_unknown_group_values_come_last_with_a_label() -> None:
    rows = [row("A", approach=None), row("B", approach="midline")]
    rep = stats.summarise(rows, by="approach")
    assert [(g.group, g.label) for g in rep.groups] == [
        ("midline", "Midline interlaminar"),
        ("unknown", "Not recorded"),
    ]


def test_patient_unit_streams_patients_across_chunks_with_the_same_figures() -> None:
    """Rows grouped by patient are summarised a batch of patients at a time (a patient
    whose rows straddle a chunk boundary is held until complete): the same figures as
    the same rows in any order, overall and per group."""
    rows = []
    for i in range(stats.CHUNK // 3 + 5):  # more than one chunk; patients of 1-5 rows
        for k in range(1 + i % 5):
            rows.append(
                row(
                    f"P{i:06d}",
                    approach=("paramedian", "midline")[(i + k) % 2],
                    drug_delivered=int((i + k) % 7 != 0),
                    attempts_n=(i * 3 + k) % 6,
                    redirections_n=None if k == 2 else (i + k) % 4,
                    first_attempt_success=None if (i + k) % 9 == 0 else int((i + k) % 3 == 0),
                    sedation=(None, "none", "local", "iv_sedation")[(i * k) % 4],
                    fu72_state=("done", "open", "unreachable")[(i + 2 * k) % 3],
                    pdph=None if (i + k) % 5 == 0 else int((i + k) % 11 == 0),
                    back_pain_nrs=(i + k) % 4,
                    other_event_any=int(k == 1),
                    other_event_serious=int(i % 13 == 0),
                )
            )
    assert len(rows) > stats.CHUNK
    shuffled = rows[1::2] + rows[::2]  # each patient's rows apart
    for by in (None, "approach"):
        grouped = stats.summarise(rows, by=by, unit="patient", grouped_by_patient=True)
        anyhow = stats.summarise(shuffled, by=by, unit="patient")
        assert grouped.as_dict() == anyhow.as_dict()
        assert value(grouped.overall, "patients") == stats.CHUNK // 3 + 5
