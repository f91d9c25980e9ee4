"""``sma-log learning`` in-process (CliRunner) on a file written through the Store, and
the learning settings through ``sma-log settings`` (bad values: one line, exit 2)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner
from factories import SETUP

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

T0 = pendulum.datetime(2026, 1, 5, 9, 0, tz="UTC")
# (day, operator, attempts, redirections on the first attempt); 0 attempts: abandoned
# before the skin (no outcome); "cancel": a start cancelled (not ended: not charted).
SERIES: list[tuple[int, str, Any, int]] = [
    (0, "Dr Rossi", 2, 0),  # failure (first-attempt and first-pass)
    (1, "Dr Bianchi", 1, 0),  # success
    (2, "Dr Rossi", 1, 1),  # first-attempt success, first-pass failure
    (3, "Dr Rossi", 0, 0),  # no insertion: not charted
    (4, "Dr Rossi", "cancel", 0),  # cancelled start: not charted
    (5, "Dr Rossi", 1, 0),  # success
    (6, "Dr Rossi", 3, 0),  # failure
]


def build(db: Path) -> None:
    with Store.open(db, "t", clock=Clock(monotonic=False)) as s:
        pat = s.create_patient({"study_code": "LC-001", "sma_type": "2"})["id"]
        for day, operator, attempts, redirections in SERIES:
            start = T0.add(days=day)
            pendulum.travel_to(start, freeze=True)
            pid = s.start_procedure(pat, {**SETUP, "operator": operator})
            if attempts == "cancel":
                s.cancel_procedure(pid, "patient unwell")
                continue
            for i in range(attempts):
                pendulum.travel_to(start.add(minutes=2 + 2 * i), freeze=True)
                s.record(pid, "attempt")
                if i == 0:
                    for _ in range(redirections):
                        s.record(pid, "redirect")
            if attempts:
                for k, kind in enumerate(("csf", "injection_start", "injection_end")):
                    pendulum.travel_to(start.add(minutes=20 + k), freeze=True)
                    s.record(pid, kind)
                s.end_procedure(pid, {"drug_delivered": "yes"})
            else:
                pendulum.travel_to(start.add(minutes=20), freeze=True)
                s.end_procedure(
                    pid, {"drug_delivered": "no", "failure_reason": "agitated", "fallback": "ct"}
                )
        pendulum.travel_back()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(path))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    Settings(timezone="Europe/Rome").save(path)
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "lc.db"
    build(path)
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_json_series_per_operator(config: Path, db: Path) -> None:
    res = run("--db", str(db), "learning", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["failure_definition"] == "first-attempt"
    assert doc["parameters"]["p0"] == 0.10 and doc["parameters"]["h1"] == pytest.approx(2.709511)
    ops = {o["operator"]: o for o in doc["operators"]}
    assert list(ops) == ["Dr Bianchi", "Dr Rossi"]
    rossi = ops["Dr Rossi"]
    # days 0, 2, 5, 6 (day 3 had no insertion, day 4 was cancelled)
    assert [p["failure"] for p in rossi["series"]] == [1, 0, 0, 1]
    assert [p["started_at"][:10] for p in rossi["series"]] == [
        "2026-01-05",
        "2026-01-07",
        "2026-01-10",
        "2026-01-11",
    ]
    # by hand: s = 0.145244: 0.854756, 0.709512, 0.564268, 1.419024
    assert [p["cusum"] for p in rossi["series"]] == pytest.approx(
        [0.854756, 0.709512, 0.564268, 1.419024], abs=3e-6
    )
    assert rossi["n"] == 4 and rossi["failures"] == 2 and rossi["h1_crossed"] is None


def test_first_pass_setting_changes_the_failures(config: Path, db: Path) -> None:
    res = run("settings", "--learning-failure", "first-pass")
    assert res.exit_code == 0, res.output
    doc = json.loads(run("--db", str(db), "learning", "--format", "json").output)
    rossi = next(o for o in doc["operators"] if o["operator"] == "Dr Rossi")
    assert doc["failure_definition"] == "first-pass"
    assert [p["failure"] for p in rossi["series"]] == [1, 1, 0, 1]


def test_text_prints_parameters_and_crossings(config: Path, db: Path) -> None:
    assert run("settings", "--learning-p0", "0.2", "--learning-p1", "0.4").exit_code == 0
    res = run("--db", str(db), "learning", "--operator", "dr rossi")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "p0 0.2 (acceptable), p1 0.4 (unacceptable), α 0.1, β 0.1" in out
    assert "Dr Bianchi" not in out and "Dr Rossi: n 4, failures 2 (50.0%)" in out
    assert "CUSUM h1 (unacceptable) first reached: not reached" in out
    # people read the site's time (Europe/Rome: 09:00 UTC is 10:00); json/csv keep UTC
    assert "started (Europe/Rome)" in out and "2026-01-05 10:00" in out
    assert "09:00" not in out


def test_csv_one_row_per_procedure_with_the_parameters(config: Path, db: Path) -> None:
    res = run("--db", str(db), "learning", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len(rows) == 5 and {r["operator"] for r in rows} == {"Dr Rossi", "Dr Bianchi"}
    assert all(r["p1"] == "0.2" and r["failure_definition"] == "first-attempt" for r in rows)


def test_unknown_operator_is_one_line_exit_2(config: Path, db: Path) -> None:
    res = CliRunner().invoke(main, ["--db", str(db), "learning", "--operator", "Dr Nobody"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0
    assert "no charted procedure by 'Dr Nobody' (operators: Dr Bianchi, Dr Rossi)" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning-alpha", "1.2"], "--learning-alpha: α must be between 0 and 1 (got 1.2)"),
        (["--learning-beta", "0"], "--learning-beta: β must be between 0 and 1 (got 0)"),
        (["--learning-p0", "0.3"], "p0 (acceptable failure rate, 0.3) must be below p1"),
        (["--learning-p1", "nan"], "--learning-p1: p1 must be between 0 and 1 (got nan)"),
    ],
)
def test_bad_learning_settings_one_line_exit_2_nothing_saved(
    config: Path, args: list[str], message: str
) -> None:
    before = config.read_bytes()
    res = CliRunner().invoke(main, ["settings", *args])
    assert res.exit_code == 2
    assert message in res.output and res.output.strip().count("\n") == 0
    assert config.read_bytes() == before


def test_a_bad_learning_value_in_the_file_is_refused_and_mended(config: Path, db: Path) -> None:
    config.write_text('{"learning_p0": 0.5, "learning_p1": 0.2}', encoding="utf-8")
    res = CliRunner().invoke(main, ["--db", str(db), "learning"])
    assert res.exit_code == 2 and "must be below p1" in res.output
    assert run("settings", "--learning-p0", "0.05").exit_code == 0
    assert Settings.load(config).learning_p0 == 0.05


def test_the_demo_s_operators_improve_and_the_command_shows_it(
    config: Path, tmp_path: Path
) -> None:
    """The demo draws each operator's first attempt from a learning curve: the newest
    (Dr Romano) fails more in the first third of their series than in the last; the
    senior (Dr Conti) is at the plateau from the start."""
    from datetime import UTC, datetime

    from sma_log.demo import write_demo

    path = tmp_path / "demo.db"
    write_demo(path, procedures=1500, seed=1, now=datetime(2026, 3, 27, 9, 0, tzinfo=UTC))
    doc = json.loads(run("--db", str(path), "learning", "--format", "json").output)
    ops = {o["operator"]: o for o in doc["operators"]}

    def thirds(name: str) -> tuple[float, float]:
        xs = [p["failure"] for p in ops[name]["series"]]
        k = len(xs) // 3
        return sum(xs[:k]) / k, sum(xs[-k:]) / k

    early, late = thirds("Dr Romano")
    assert early > late + 0.15
    senior_early, senior_late = thirds("Dr Conti")
    assert abs(senior_early - senior_late) < 0.1
    assert ops["Dr Romano"]["h1_crossed"] is not None
