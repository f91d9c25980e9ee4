"""``sma-log report`` in-process (CliRunner): every format, grouping, unit and bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.demo import write_demo

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(path))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    Settings(timezone="Europe/Rome", locale="en").save(path)
    return path


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    write_demo(path, procedures=120, seed=3, now=NOW)
    return path


def invoke(db: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--db", str(db), "report", *args], catch_exceptions=False)


def test_text_is_readable_at_100_columns(config: Path, demo_db: Path) -> None:
    res = invoke(demo_db, "--by", "operator")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("Case series by operator: 119 ended procedure(s)")
    assert max(len(line) for line in lines[1:]) <= 100
    assert "Overall" in res.output and "Dr Conti" in res.output
    assert "≤ 2 attempts" in res.output and "mean ± SD" in res.output


def test_markdown_table(config: Path, demo_db: Path) -> None:
    res = invoke(demo_db, "--by", "scoliosis", "--unit", "patient", "--format", "markdown")
    assert res.exit_code == 0
    table = [line for line in res.output.splitlines() if line.startswith("|")]
    assert table[0].startswith("| Figure | Unit |") and table[0].endswith("| Overall |")
    assert len({line.count(" | ") for line in table if "---" not in line}) == 1
    assert any("(patient median)" in line for line in table)


def test_json_matches_csv_and_the_overall_counts(config: Path, demo_db: Path) -> None:
    doc = json.loads(invoke(demo_db, "--by", "year", "--format", "json").output)
    assert doc["by"] == "year" and doc["unit"] == "procedure"
    overall = {f["key"]: f for f in doc["overall"]["figures"]}
    assert overall["procedures"]["n"] == 119
    assert (
        sum(next(f["n"] for f in g["figures"] if f["key"] == "procedures") for g in doc["groups"])
        == 119
    )
    rows = list(
        csv.DictReader(io.StringIO(invoke(demo_db, "--by", "year", "--format", "csv").output))
    )
    success = next(r for r in rows if r["group"] == "overall" and r["figure"] == "success")
    assert (int(success["n"]), int(success["N"])) == (
        overall["success"]["n"],
        overall["success"]["N"],
    )
    assert {r["unit"] for r in rows} == {"procedure", "patient"}


def test_date_window_and_an_empty_window(config: Path, demo_db: Path) -> None:
    all_n = json.loads(invoke(demo_db, "--format", "json").output)["overall"]["figures"][1]["n"]
    doc = json.loads(invoke(demo_db, "--from", "2026-01-01", "--format", "json").output)
    assert doc["from"] == "2026-01-01" and doc["timezone"] == "Europe/Rome"
    assert 0 < doc["overall"]["figures"][1]["n"] < all_n
    empty = invoke(demo_db, "--from", "2030-01-01", "--to", "2030-12-31")
    assert empty.exit_code == 0 and "0 ended procedure(s)" in empty.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--by", "colour"), "--by: unknown grouping 'colour'"),
        (("--format", "xlsx"), "Invalid value for '--format'"),
        (("--unit", "ward"), "Invalid value for '--unit'"),
        (("--from", "2026-02-30"), "--from: '2026-02-30' is not a date"),
        (("--to", "27/03/2026"), "--to: '27/03/2026' is not a date"),
        (("--from", "2026-3-1"), "is not a date"),
        (("--from", "2026-03-02", "--to", "2026-03-01"), "is before --from"),
        (("--by", "approach,approach"), "--by: a grouping is given twice"),
        (("--by", "approach,colour"), "--by: unknown grouping 'colour'"),
        (("--where", "approach"), "--where: 'approach' is not GROUPING=VALUE"),
        (("--where", "approach=sideways"), "--where: approach='sideways' is not a approach"),
        (("--where", "colour=red"), "--where: unknown grouping 'colour'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    config: Path, demo_db: Path, args: tuple[str, ...], words: str
) -> None:
    before = demo_db.stat().st_mtime_ns
    res = CliRunner().invoke(main, ["--db", str(demo_db), "report", *args])
    assert res.exit_code == 2
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sma-log: error:") and words in lines[0]
    assert demo_db.stat().st_mtime_ns == before


def test_a_missing_database_is_refused_not_created(config: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "none.db"), "report"])
    assert res.exit_code == 2 and not (tmp_path / "none.db").exists()


# ---------------------------------------------------------------- two-way tables, filters
def _ke_like(path: Path) -> None:
    """Procedures with known times by approach × scoliosis (Ke et al. 2025's table):

    paramedian, moderate (Cobb 40): 10, 11 min      paramedian, severe (Cobb 70): 20, 22
    transforaminal, severe (Cobb 70): 22.5 min       midline, none (Cobb 5): 8 min
    """
    import pendulum

    from sma_log.domain.clock import Clock
    from sma_log.storage.store import Store

    t0 = pendulum.datetime(2026, 3, 2, 9, tz="UTC")
    plan = [
        ("paramedian", 40, 10), ("paramedian", 40, 11), ("paramedian", 70, 20),
        ("paramedian", 70, 22), ("transforaminal", 70, 22.5), ("midline", 5, 8),
    ]  # fmt: skip
    try:
        with Store.open(path, "tester", clock=Clock(monotonic=False)) as store:
            for n, (approach, cobb, minutes) in enumerate(plan):
                start = t0.add(days=n)
                pendulum.travel_to(start, freeze=True)
                pt = store.create_patient({"study_code": f"KE-{n:03d}"})
                setup = {
                    "operator": "Dr Ke",
                    "regimen": "std_maintenance",
                    "guidance": "us_realtime",
                    "approach": approach,
                    "level_intended": "L3-L4",
                    "sedation": "none",
                    "cobb_angle": str(cobb),
                }
                pid = store.start_procedure(pt["id"], setup)
                for kind in ("attempt", "csf", "injection_start", "injection_end"):
                    store.record(pid, kind)
                pendulum.travel_to(start.add(seconds=round(minutes * 60)), freeze=True)
                store.end_procedure(pid, {"drug_delivered": "yes"})
    finally:
        pendulum.travel_back()


def _time(doc: dict[str, Any], group: str) -> dict[str, Any]:
    g = next(g for g in doc["groups"] if g["group"] == group)
    return next(f for f in g["figures"] if f["key"] == "procedure_min")


def test_two_way_table_gives_every_combination(config: Path, tmp_path: Path) -> None:
    db = tmp_path / "ke.db"
    _ke_like(db)
    res = invoke(db, "--by", "approach,scoliosis", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["by"] == "approach,scoliosis"
    assert [g["group"] for g in doc["groups"]] == [
        "midline|none",
        "paramedian|moderate",
        "paramedian|severe",
        "transforaminal|severe",
    ]
    assert [g["label"] for g in doc["groups"]][1] == (
        "Paramedian / parasagittal oblique interlaminar × Moderate (> 25–50°)"
    )
    assert (_time(doc, "paramedian|moderate")["n"], _time(doc, "paramedian|moderate")["mean"]) == (
        2,
        10.5,
    )
    assert _time(doc, "paramedian|severe")["mean"] == 21.0
    assert _time(doc, "transforaminal|severe")["mean"] == 22.5
    text = invoke(db, "--by", "approach,scoliosis").output
    assert text.splitlines()[0].startswith("Case series by approach × scoliosis: 6 ended")
    assert "Transforaminal × Severe (> 50°)" in text


def test_where_keeps_only_the_given_groups(config: Path, tmp_path: Path) -> None:
    db = tmp_path / "ke.db"
    _ke_like(db)
    res = invoke(db, "--where", "approach=paramedian", "--by", "scoliosis", "--format", "json")
    doc = json.loads(res.output)
    assert doc["where"] == {"approach": ["paramedian"]}
    assert [g["group"] for g in doc["groups"]] == ["moderate", "severe"]
    overall = {f["key"]: f for f in doc["overall"]["figures"]}
    assert overall["procedures"]["n"] == 4
    # two values of one grouping, and a label instead of a code
    res = invoke(db, "--where", "approach=Paramedian", "--where", "approach=Midline interlaminar")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith(
        "Case series, only approach = midline, paramedian: 5 ended procedure(s)"
    )
    patients = invoke(db, "--where", "scoliosis=severe", "--unit", "patient", "--format", "json")
    doc = json.loads(patients.output)
    assert {f["key"]: f for f in doc["overall"]["figures"]}["patients"]["n"] == 3


# ---------------------------------------------------------------- issue 13: out of the queue
def _two_missed(db: Path, now: Any) -> None:
    """Two ended procedures whose 72-h follow-up was never done: one ended 30 days
    before ``now`` (missed > 14 d: out of the queue), one 8 days before (missed, still
    in the queue). Written through the Store at their own instants (pendulum travel)."""
    import pendulum

    from sma_log.domain.clock import Clock
    from sma_log.storage.store import Store

    setup = {
        "regimen": "std_maintenance",
        "guidance": "us_realtime",
        "level_intended": "L3-L4",
        "sedation": "none",
        "operator": "Dr Rossi",
        "approach": "midline",
    }
    with Store.open(db, "nurse", clock=Clock(monotonic=False)) as s:
        for code, days in (("LONG-1", 30), ("RECENT-1", 8)):
            end = now.subtract(days=days)
            pendulum.travel_to(end.subtract(minutes=10), freeze=True)
            pt = s.create_patient({"study_code": code})
            pid = s.start_procedure(pt["id"], setup)
            for kind in ("attempt", "csf", "injection_start", "injection_end"):
                s.record(pid, kind)
            pendulum.travel_to(end, freeze=True)
            s.end_procedure(pid, {"drug_delivered": "yes"})
            pendulum.travel_to(end.add(minutes=5), freeze=True)
            s.set_score(pid, 5)


def test_long_missed_follow_ups_are_counted_in_every_format(config: Path, tmp_path: Path) -> None:
    """The 72-h follow-ups out of the queue (missed > missed_after_days) are counted at
    report time, with the setting: text and markdown lines, a CSV row, a JSON key."""
    import pendulum

    now = pendulum.datetime(2026, 5, 10, 9, 0, tz="UTC")
    db = tmp_path / "missed.db"
    try:
        _two_missed(db, now)
        pendulum.travel_to(now, freeze=True)
        text = invoke(db).output
        assert "72-h follow-ups missed > 14 d (out of the queue; whole file, now): 1" in text
        md = invoke(db, "--format", "markdown").output
        assert "72-h follow-ups missed > 14 d (out of the queue; whole file, now): 1" in md
        doc = json.loads(invoke(db, "--format", "json").output)
        assert doc["data_quality"] == {"cancelled": 0, "long_missed": 1, "missed_after_days": 14}
        rows = list(csv.DictReader(io.StringIO(invoke(db, "--format", "csv").output)))
        row = next(r for r in rows if r["figure"] == "followup_72h_long_missed")
        assert (row["group"], row["n"]) == ("file", "1")
        # the setting moves the count: 1 day after the window both are out of the queue
        Settings(timezone="Europe/Rome", locale="en", missed_after_days=1).save(config)
        doc = json.loads(invoke(db, "--format", "json").output)
        assert doc["data_quality"]["long_missed"] == 2
        assert "missed > 1 d (out of the queue; whole file, now): 2" in invoke(db).output
        # ... and 60 days after it none is: no line (nothing lost from sight), the key 0
        Settings(timezone="Europe/Rome", locale="en", missed_after_days=60).save(config)
        assert "out of the queue" not in invoke(db).output
        doc = json.loads(invoke(db, "--format", "json").output)
        assert doc["data_quality"]["long_missed"] == 0
        # a date range leaves it as it is: it counts the whole file (its line says so)
        Settings(timezone="Europe/Rome", locale="en").save(config)
        doc = json.loads(invoke(db, "--from", "2030-01-01", "--format", "json").output)
        assert doc["data_quality"]["long_missed"] == 1
    finally:
        pendulum.travel_back()
