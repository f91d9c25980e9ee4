"""A settings file that cannot be used is refused in one line and never overwritten.

Every command that reads the settings (the bare ``sma-log`` starting the app
included) refuses such a file with ONE line naming the file, where, and what, exit
code 2, and leaves its bytes as they were; ``settings --locale it`` does not replace
it with defaults. A missing file still means the defaults. The theme is the tolerant
key: an unknown theme name falls back without a word.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sma_log.cli import main
from sma_log.config import Settings, SettingsRefused

NOW = "2026-03-27T09:00:00Z"

#: name -> (file bytes, words the one line must hold)
BAD: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "trailing comma": (
        b'{\n  "timezone": "America/New_York",\n  "label": "us",\n}\n',
        ("line 4, column 1", "Expecting property name enclosed in double quotes"),
    ),
    "not an object": (b'["us"]\n', ("line 1, column 1", "not a JSON object")),
    "not UTF-8": (b'{"operator": "Dr M\xfcller"}', ("line 1, column 19", "not UTF-8 (byte 0xfc)")),
    "empty": (b"", ("line 1, column 1", "Expecting value")),
    "NaN": (b'{"window_before_hours": NaN}', ("line 1, column 25", "NaN")),
    "bad time zone": (b'{"timezone": "Mars/Olympus"}', ('"timezone"', "Mars/Olympus")),
    "bad label": (b'{\n  "label": "mars"\n}', ("line 2", '"label"', "mars")),
    "window out of range": (b'{"window_before_hours": 100}', ('"window_before_hours"', "0-72")),
    "window after negative": (b'{"window_after_hours": -1}', ('"window_after_hours"', "0-168")),
    "window not a number": (
        b'{"window_after_hours": "24"}',
        ('"window_after_hours"', "a number is needed"),
    ),
    "score out of range": (b'{"score_earliest_min": 6}', ('"score_earliest_min"', "0-5")),
    "missed after out of range": (
        b'{"missed_after_days": 400}',
        ('"missed_after_days"', "0-365", "--missed-after"),
    ),
    "missed after not a number": (
        b'{"missed_after_days": "14"}',
        ('"missed_after_days"', "a number is needed"),
    ),
    "wrong type": (b'{"operator": 7}', ('"operator"', "a string is needed")),
    "boolean window": (b'{"window_before_hours": true}', ('"window_before_hours"', "number")),
    "unknown locale": (b'{"locale": "xx"}', ('"locale"', "unknown locale")),
    "theme not a string": (b'{"theme": null}', ('"theme"', "a string is needed")),
}

#: The case whose bad key an option of ``settings`` sets anew (that mends it).
MENDS = {
    "unknown locale": "--locale",
    "bad label": "--label",
    "window out of range": "--window-before",
    "boolean window": "--window-before",
    "wrong type": "--operator",
    "missed after out of range": "--missed-after",
}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "settings.json"
    path.parent.mkdir()
    monkeypatch.setenv("SMA_LOG_CONFIG", str(path))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return path


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    result = CliRunner().invoke(
        main, ["demo", str(path), "-n", "6", "--now", NOW], env={"SMA_LOG_CONFIG": "/nonexistent"}
    )
    assert result.exit_code == 0, result.output
    return path


def one_line(result: Any) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sma-log: error: "), result.stderr
    return lines[0]


def assert_refused(result: Any, path: Path, words: tuple[str, ...]) -> None:
    line = one_line(result)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert str(path) in line, line
    assert line.endswith("fix or remove the file (nothing was changed)"), line
    for word in words:
        assert word in line, (word, line)


def commands(demo_db: Path, tmp_path: Path) -> list[list[str]]:
    return [
        ["settings"],
        ["settings", "--locale", "it"],
        ["settings", "--label", "us"],
        ["settings", "--window-before", "6", "--operator", "Dr X"],
        ["--db", str(demo_db), "followups", "--ics", str(tmp_path / "q.ics")],
        ["--db", str(demo_db), "followups"],
        ["--db", str(demo_db), "report"],
        ["--db", str(demo_db), "info"],
    ]


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_unusable_file_is_refused_by_every_command_and_kept(
    config: Path, demo_db: Path, tmp_path: Path, case: str
) -> None:
    data, words = BAD[case]
    config.write_bytes(data)
    os.chmod(config, 0o600)
    before = (config.stat().st_mtime_ns, sorted(os.listdir(config.parent)))
    runner = CliRunner()
    for argv in commands(demo_db, tmp_path):
        if MENDS.get(case) in argv:
            continue  # giving the bad key anew mends it (tested below)
        result = runner.invoke(main, argv)
        assert_refused(result, config, words)
        assert result.stdout == "", (argv, result.stdout)
        assert config.read_bytes() == data, argv
        assert (config.stat().st_mtime_ns, sorted(os.listdir(config.parent))) == before
    assert not (tmp_path / "q.ics").exists()


def test_the_issue_case_a_trailing_comma_then_settings_locale(config: Path) -> None:
    """Today's loss: the comma made the app use Etc/UTC and EU, then ``--locale it``
    wrote the defaults over the file. Now both refuse and the file is as it was."""
    data = b'{\n  "timezone": "America/New_York",\n  "label": "us",\n}\n'
    config.write_bytes(data)
    runner = CliRunner()
    shown = runner.invoke(main, ["settings"])
    assert_refused(shown, config, ("line 4, column 1",))
    changed = runner.invoke(main, ["settings", "--locale", "it"])
    assert_refused(changed, config, ("line 4, column 1",))
    assert config.read_bytes() == data
    # Once fixed by hand, the values are the file's own.
    config.write_bytes(data.replace(b'"us",', b'"us"'))
    assert runner.invoke(main, ["settings", "--locale", "it"]).exit_code == 0
    saved = Settings.load(config)
    assert (saved.timezone, saved.label, saved.locale) == ("America/New_York", "us", "it")


def test_a_label_mars_is_refused_not_a_traceback_in_followups_ics(
    config: Path, demo_db: Path, tmp_path: Path
) -> None:
    config.write_text('{"label": "mars"}', encoding="utf-8")
    out = tmp_path / "q.ics"
    result = CliRunner().invoke(main, ["--db", str(demo_db), "followups", "--ics", str(out)])
    assert_refused(result, config, ('"label"', '"mars"', '"eu" or "us"'))
    assert not out.exists()


def test_an_unreadable_file_is_refused(config: Path) -> None:
    config.mkdir()  # a folder where the file should be: cannot be read
    result = CliRunner().invoke(main, ["settings", "--locale", "it"])
    assert_refused(result, config, ("Is a directory",))
    assert config.is_dir()


def test_the_bare_command_does_not_start_the_app_on_defaults(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui_app = pytest.importorskip("sma_log.ui.app")
    started: list[Any] = []
    monkeypatch.setattr(ui_app, "create_app", lambda *a, **k: started.append(a))
    config.write_bytes(BAD["trailing comma"][0])
    db = tmp_path / "clinic.db"
    result = CliRunner().invoke(main, ["--db", str(db)])
    assert_refused(result, config, ("line 4, column 1",))
    assert started == [] and not db.exists()
    # --user given: the settings are still read (time zone, label), still refused
    result = CliRunner().invoke(main, ["--db", str(db), "--user", "Dr Who"])
    assert_refused(result, config, ("line 4, column 1",))
    assert started == []


def test_the_tui_refuses_on_its_refused_screen(tmp_path: Path) -> None:
    pytest.importorskip("textual")
    from sma_log.domain.clock import Clock
    from sma_log.ui.app import create_app
    from sma_log.ui.screens.refused import RefusedScreen

    settings = tmp_path / "settings.json"
    data = BAD["bad label"][0]
    settings.write_bytes(data)
    db = tmp_path / "clinic.db"
    app = create_app(db, user="t", clock=Clock(monotonic=False), settings_path=settings)

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, RefusedScreen)
            message = str(app.screen.query_one("#refused-message").render())
            assert str(settings) in message and '"label"' in message and "mars" in message
            assert "\n" not in message.strip()
            assert "settings file" in str(app.screen.query_one(".dialog-title").render())
            await pilot.press("q")

    asyncio.run(run())
    assert app.return_code == 2
    assert settings.read_bytes() == data
    assert not db.exists()  # the database was not even opened


def test_the_app_does_not_save_over_a_file_broken_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    Settings(label="us").save(path)
    path.write_bytes(b'{"label": "us",}')
    with pytest.raises(SettingsRefused, match="line 1, column 16"):
        Settings(theme="nord").save(path)
    assert path.read_bytes() == b'{"label": "us",}'
    assert os.listdir(tmp_path) == ["settings.json"]  # no temporary file left


def test_a_missing_file_means_the_defaults(config: Path) -> None:
    assert not config.exists()
    assert Settings.load(config) == Settings()
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    assert "not written yet: defaults" in result.stdout
    assert not config.exists()


def test_tolerated_unknown_keys_kept_theme_any_name_whole_numbers(config: Path) -> None:
    """Keys of a newer version are ignored and survive a save; an unknown theme name is
    kept without a word (the app falls back to its default theme); a whole number is a
    number (``12``, not only ``12.0``)."""
    config.write_text(
        json.dumps({"theme": "no-such-theme", "window_before_hours": 6, "future": [1, 2]}),
        encoding="utf-8",
    )
    loaded = Settings.load(config)
    assert loaded.theme == "no-such-theme" and loaded.window_before_hours == 6.0
    result = CliRunner().invoke(main, ["settings", "--locale", "it"])
    assert result.exit_code == 0, result.output
    saved = json.loads(config.read_text(encoding="utf-8"))
    assert saved["future"] == [1, 2] and saved["locale"] == "it"
    assert saved["window_before_hours"] == 6.0 and saved["theme"] == "no-such-theme"


def test_the_app_falls_back_from_an_unknown_theme(tmp_path: Path) -> None:
    pytest.importorskip("textual")
    from sma_log.domain.clock import Clock
    from sma_log.ui.app import create_app

    settings = tmp_path / "settings.json"
    settings.write_text('{"theme": "no-such-theme", "timezone": "UTC"}', encoding="utf-8")
    app = create_app(
        tmp_path / "c.db", user="t", clock=Clock(monotonic=False), settings_path=settings
    )
    assert app.settings_refused is None and app.theme == "textual-dark"


def test_a_bad_value_is_mended_by_giving_that_setting_anew(config: Path) -> None:
    """The one line says which option sets the key; giving it replaces only that value
    (the other keys, a newer version's included, are kept). Another bad key, or a file
    that is not JSON, is still refused."""
    config.write_text(
        json.dumps({"label": "mars", "timezone": "Europe/Rome", "future": 1}), encoding="utf-8"
    )
    runner = CliRunner()
    refused = runner.invoke(main, ["settings", "--locale", "it"])
    assert_refused(refused, config, ("fix it with: sma-log settings --label eu|us",))
    mended = runner.invoke(main, ["settings", "--label", "us"])
    assert mended.exit_code == 0, mended.output
    saved = json.loads(config.read_text(encoding="utf-8"))
    assert (saved["label"], saved["timezone"], saved["future"]) == ("us", "Europe/Rome", 1)

    two_bad = b'{"label": "mars", "window_before_hours": 100}'
    config.write_bytes(two_bad)
    result = runner.invoke(main, ["settings", "--label", "us"])
    assert_refused(result, config, ('"window_before_hours"', "--window-before H"))
    assert config.read_bytes() == two_bad
    not_json = b'{"label": "mars",}'
    config.write_bytes(not_json)
    assert_refused(runner.invoke(main, ["settings", "--label", "us"]), config, ("line 1",))
    assert config.read_bytes() == not_json
