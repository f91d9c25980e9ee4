"""Issue 14: ``sma-log labs`` (add, import a lab export, list) and the settings block."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest
from click.testing import CliRunner
from conftest import T0

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.storage.store import Store


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    pendulum.travel_to(T0, freeze=True)  # 2026-03-27
    db = tmp_path / "labs.db"
    with Store.open(db, "tester") as store:
        store.create_patient({"study_code": "SMA-7"})
    yield {"SMA_LOG_CONFIG": str(tmp_path / "settings.json"), "SMA_LOG_DB": str(db)}
    pendulum.travel_back()


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner(env=env).invoke(main, list(args))
    return result.exit_code, result.output


def test_add_and_list(env: dict[str, str]) -> None:
    code, out = run(
        env, "labs", "add", "sma-7", "urine_protein", "35", "2026-03-20", "--unit", "mg/dL"
    )
    assert code == 0, out
    assert out.strip() == "Added urine_protein 0.35 g/L of 2026-03-20 for SMA-7"
    code, out = run(env, "labs", "list", "SMA-7", "--format", "json")
    rows = json.loads(out)
    assert [(r["test"], r["value"], r["source"]) for r in rows] == [("urine_protein", 0.35, "cli")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("platelets", "-3", "2026-03-20"), "Platelet count must be a number from 0 to 2000"),
        (("platelets", "150", "2026-03-28"), "The result's date 2026-03-28 is in the future"),
        (("ferritin", "150", "2026-03-20"), "Test: choose one of platelets, pt, aptt"),
    ],
)
def test_add_refuses_bad_input_with_one_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    code, out = run(env, "labs", "add", "SMA-7", *args)
    assert code == 2
    assert message in out and "Traceback" not in out
    assert run(env, "labs", "list", "SMA-7")[1].strip() == "SMA-7: no lab results"


def test_import_refuses_rows_one_by_one_and_never_twice(
    env: dict[str, str], tmp_path: Path
) -> None:
    Settings(lab_max_age_days=30).save(Path(env["SMA_LOG_CONFIG"]))
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(
        "Study code;Test;Result;Unit;Date\n"
        "SMA-7;platelets;250;10^3/uL;2026-03-25\n"
        "SMA-7;platelets;-3;;2026-03-25\n"
        "NOBODY;inr;1.1;;2026-03-25\n"
        "SMA-7;inr;1.1;;2026-01-02\n"
        "SMA-7;aptt;31;s;2026-03-26\n",
        encoding="utf-8",
    )
    code, out = run(env, "labs", "import", str(csv_file))
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == "export.csv: added 2, already stored 0, refused 3"
    assert lines[1].startswith("  line 3: Platelet count must be a number")
    assert lines[2] == "  line 4: no patient with study code 'NOBODY'"
    assert lines[3] == (
        "  line 5: The result of 2026-01-02 is older than the site's limit (30 days)"
    )
    code, out = run(env, "labs", "import", str(csv_file))
    assert out.splitlines()[0] == "export.csv: added 0, already stored 2, refused 3"
    listed = run(env, "labs", "list", "SMA-7")[1].splitlines()
    assert len(listed) == 2 and "(import)" in listed[0]


def test_import_refuses_a_file_without_the_columns(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("patient,thing\nSMA-7,1\n", encoding="utf-8")
    code, out = run(env, "labs", "import", str(bad))
    assert code == 2 and "no column for test, value, taken_on" in out


def test_settings_block(env: dict[str, str]) -> None:
    code, out = run(env, "settings")
    assert "platelets min:      (not set: no flag)" in out
    assert "time-out required:  none: none" in out
    code, out = run(env, "settings", "--timeout-required", "us", "--platelets-min", "50")
    assert code == 0, out
    saved = json.loads(Path(env["SMA_LOG_CONFIG"]).read_text())
    assert saved["timeout_required"] == "us" and saved["platelets_min"] == 50.0
    rules = Settings.load(Path(env["SMA_LOG_CONFIG"])).predose_rules()
    assert rules.platelets_min == 50 and "urine_protein" in rules.required
    code, out = run(env, "settings", "--platelets-min", "")
    assert json.loads(Path(env["SMA_LOG_CONFIG"]).read_text())["platelets_min"] is None
    for args, message in (
        (("--platelets-min", "-3"), "--platelets-min: -3 is outside 0-1000"),
        (("--timeout-required", "blood"), "unknown time-out item 'blood'"),
        (("--inr-max", "abc"), "--inr-max: a number is needed"),
    ):
        code, out = run(env, "settings", *args)
        assert code == 2 and message in out


def test_settings_file_with_a_bad_limit_is_refused(env: dict[str, str]) -> None:
    Path(env["SMA_LOG_CONFIG"]).write_text('{"inr_max": -1}', encoding="utf-8")
    code, out = run(env, "labs", "list", "SMA-7")
    assert code == 2 and '"inr_max": -1 is outside 0.5-20' in out
