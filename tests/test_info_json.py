"""``info --format json`` and ``settings --format json``: one object on stdout, the same
facts as the text (which is unchanged)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sma_log import __version__
from sma_log.cli import main
from sma_log.config import Settings

NOW = "2026-03-27T09:00:00Z"
TEXT_KEYS = (
    "database",
    "schema version",
    "journal mode",
    "SQLite library",
    "created by",
    "last opened by",
    "permissions",
    "size",
    "demo data",
    "patients",
    "procedures",
    "open procedures",
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(path))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return path


@pytest.fixture
def demo_db(tmp_path: Path, config: Path) -> Path:
    path = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", str(path), "-n", "6", "--now", NOW])
    assert result.exit_code == 0, result.output
    return path


def test_info_json_holds_the_facts(demo_db: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(demo_db), "info", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert set(doc) == {
        "database",
        "schema_version",
        "schema_version_supported",
        "sma_log_version",
        "journal_mode",
        "sqlite_version",
        "python_version",
        "permissions",
        "size_bytes",
        "meta",
        "counts",
        "open_procedures",
    }
    assert doc["database"] == str(demo_db.resolve())
    assert doc["schema_version"] == doc["schema_version_supported"]
    assert doc["sma_log_version"] == __version__
    assert doc["sqlite_version"] == sqlite3.sqlite_version
    assert doc["python_version"] == sys.version.split()[0]
    assert doc["permissions"] == {"mode": "0600", "text": "-rw-------", "readable_by_others": False}
    assert doc["size_bytes"] >= demo_db.stat().st_size > 0
    assert {"created_by", "created_at", "last_opened_by", "demo"} <= set(doc["meta"])
    conn = sqlite3.connect(demo_db)
    try:
        for table, n in doc["counts"].items():
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n
        assert doc["counts"]["procedures"] == 6
        opened = conn.execute("SELECT count(*) FROM procedures WHERE status = 'open'")
        assert doc["open_procedures"] == opened.fetchone()[0] == 1
    finally:
        conn.close()
    assert "check" not in doc


def test_info_json_check_lists_the_problems(demo_db: Path) -> None:
    runner = CliRunner()
    args = ["--db", str(demo_db), "info", "--check", "--format", "json"]
    ok = runner.invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["check"] == {"ok": True, "problems": []}
    conn = sqlite3.connect(demo_db)
    conn.execute(
        "DELETE FROM report_facts WHERE procedure_id = (SELECT min(procedure_id) FROM report_facts)"
    )
    conn.commit()
    conn.close()
    bad = runner.invoke(main, args)
    assert bad.exit_code == 1, bad.output
    check = json.loads(bad.stdout)["check"]
    assert check["ok"] is False
    assert check["problems"] == ["report figures: 1 missing fact row(s)"]
    assert "report figures: 1 missing fact row(s)" in bad.stderr  # stderr as in text


def test_info_json_says_when_others_can_read_the_file(demo_db: Path) -> None:
    os.chmod(demo_db, 0o644)
    result = CliRunner().invoke(main, ["--db", str(demo_db), "info", "--format", "json"])
    assert json.loads(result.stdout)["permissions"] == {
        "mode": "0644",
        "text": "-rw-r--r--",
        "readable_by_others": True,
    }


def test_info_text_is_unchanged(demo_db: Path) -> None:
    for args in (["info"], ["info", "--format", "text"]):
        result = CliRunner().invoke(main, ["--db", str(demo_db), *args])
        assert result.exit_code == 0, result.output
        keys = [line.split(":", 1)[0] for line in result.stdout.splitlines()]
        for key in TEXT_KEYS:
            assert key in keys, (key, result.stdout)
        assert not result.stdout.lstrip().startswith("{")


def test_settings_json_defaults_then_saved(config: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["settings", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert set(doc) == {"path", "exists", "saved", "settings", "timezone_in_effect"}
    assert doc["path"] == str(config) and doc["exists"] is False and doc["saved"] is False
    assert doc["settings"] == {
        "operator": "",
        "timezone": "",
        "locale": "en",
        "theme": "textual-dark",
        "label": "eu",
        "window_before_hours": 12.0,
        "window_after_hours": 24.0,
        "score_earliest_min": 4.0,
        "missed_after_days": 14.0,
        # learning curves (issue 14)
        "learning_failure": "first-attempt",
        "learning_p0": 0.10,
        "learning_p1": 0.20,
        "learning_alpha": 0.10,
        "learning_beta": 0.10,
        "replica": "",  # issue 15
        # issue 14: the pre-dose block (clinical limits empty: never invented)
        "timeout_required": "none",
        "platelets_min": None,
        "pt_max_s": None,
        "aptt_max_s": None,
        "inr_max": None,
        "lab_max_age_days": None,
        "drug_warn_min": 30.0,
    }
    assert doc["timezone_in_effect"] == Settings().tz_name()
    assert not config.exists()

    changed = runner.invoke(
        main, ["settings", "--format", "json", "--timezone", "Europe/Rome", "--label", "us"]
    )
    assert changed.exit_code == 0, changed.output
    doc = json.loads(changed.stdout)  # only the object: no "Saved" line on stdout
    assert doc["exists"] is True and doc["saved"] is True
    assert doc["settings"]["timezone"] == "Europe/Rome" and doc["settings"]["label"] == "us"
    assert doc["timezone_in_effect"] == "Europe/Rome"
    assert json.loads(config.read_text(encoding="utf-8"))["label"] == "us"


def test_settings_json_escapes_a_terminal_control_in_a_value(config: Path) -> None:
    config.parent.mkdir()
    config.write_text(json.dumps({"operator": "Dr \u009b31mRed"}), encoding="utf-8")
    result = CliRunner().invoke(main, ["settings", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "\u009b" not in result.stdout
    assert json.loads(result.stdout)["settings"]["operator"] == "Dr \u009b31mRed"


def test_settings_text_is_unchanged(config: Path) -> None:
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    keys = [line.split(":", 1)[0] for line in result.stdout.splitlines()]
    assert keys == [
        "settings file",
        "operator",
        "timezone",
        "locale",
        "label",
        "window before",
        "window after",
        "5-min score from",
        "missed leave queue",
        "theme",
        "replica",  # issue 15
        # issue 14: the pre-dose block
        "time-out required",
        "platelets min",
        "PT max",
        "aPTT max",
        "INR max",
        "lab max age",
        "drug warning",
        "learning failure",  # issue 14: the learning curves' settings
        "learning rates",
    ]


def test_info_check_reports_sqlite_integrity_problems(demo_db: Path) -> None:
    """SQLite's integrity check (run on a connection of its own beside the other two
    checks) still reaches the result: an index whose entries do not match its rows."""
    conn = sqlite3.connect(demo_db)
    conn.execute("CREATE INDEX t_meta_value ON meta(value)")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = 'CREATE INDEX t_meta_value ON meta(key)' "
        "WHERE name = 't_meta_value'"
    )
    conn.commit()
    conn.close()
    result = CliRunner().invoke(main, ["--db", str(demo_db), "info", "--check", "--format", "json"])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["check"]["problems"]
    assert len(problems) == 1 and problems[0].startswith("integrity check: "), problems
    assert "t_meta_value" in problems[0]


def test_scan_bad_cells_a_range_at_a_time_finds_what_one_query_finds(demo_db: Path) -> None:
    """``info --check`` scans each table a rowid range at a time (for its progress): the
    same cells in the same order as one query, whatever the rowids' gaps."""
    from sma_log.export.common import find_bad_cells, scan_bad_cells
    from sma_log.storage.store import Store

    conn = sqlite3.connect(demo_db)
    ids = [r[0] for r in conn.execute("SELECT rowid FROM events ORDER BY rowid")]
    # gaps: one row moved far up, one far down (negative), the rest in place
    conn.execute("UPDATE events SET rowid = 9000000000 WHERE rowid = ?", (ids[1],))
    conn.execute("UPDATE events SET rowid = -5 WHERE rowid = ?", (ids[2],))
    bad = {ids[0]: "1999-13-01T00:00:00.000000Z", ids[3]: "yesterday", ids[-1]: 7}
    for rowid, value in bad.items():
        conn.execute("UPDATE events SET at = ? WHERE rowid = ?", (value, rowid))
    conn.execute("UPDATE events SET kind = 'nope' WHERE rowid = 9000000000")
    conn.commit()
    columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    whole = find_bad_cells(conn, "events", columns)
    conn.close()
    assert {(c.rowid, c.column) for c in whole} >= {
        (ids[0], "at"),
        (ids[3], "at"),
        (ids[-1], "at"),
        (9000000000, "kind"),
    }
    with Store.open(demo_db, "t", create=False, readonly=True) as store:
        for chunk in (1, 2, 5, 10_000):
            steps: list[tuple[int, int]] = []

            def step(done: int, total: int, steps: list[tuple[int, int]] = steps) -> None:
                steps.append((done, total))

            found = list(scan_bad_cells(store, "events", step, chunk))
            assert found == whole, chunk
            assert steps[-1] == (len(ids), len(ids))
            assert [d for d, _ in steps] == sorted(d for d, _ in steps)
