"""The command line: options, subcommands, one-line refusals, lazy imports."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sma_log import __version__
from sma_log.cli import main

NOW = "2026-03-27T09:00:00Z"
REPO = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real program, in a fresh interpreter, with no standard input."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=REPO,
        timeout=120,
    )


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Never touch the real user data/config folders.
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    monkeypatch.setenv("SMA_LOG_CONFIG", str(tmp_path / "settings.json"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return CliRunner()


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sma-log: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def foreign_files(tmp_path: Path) -> list[Path]:
    text = tmp_path / "notes.txt"
    text.write_text("Shopping list\nnot a database\n")
    other = tmp_path / "other-app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.execute("INSERT INTO bookmarks VALUES ('https://example.org')")
    conn.commit()
    conn.close()
    return [text, other]


# ---------------------------------------------------------------- version and help
def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"sma-log {__version__}"


def test_help_lists_options_and_commands(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for word in ("--db", "--user", "--demo", "--version", "demo", "info", "followups", "settings"):
        assert word in result.output


def test_followups_and_settings_help_load_nothing_heavy() -> None:
    """The headless commands' help (and the JSON keys it documents) stays cheap."""
    probe = (
        "import sys\n"
        "from sma_log.cli import main\n"
        "for args in (['followups', '--help'], ['settings', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'sqlite_utils', 'pendulum', 'rich', 'icalendar'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = run("-c", probe)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    for word in ("--status", "--format", "--ics", "due_utc", "due_local", "next-dose-"):
        assert word in result.stdout


def test_python_dash_m_version_and_help_in_a_real_process() -> None:
    version = run("-m", "sma_log", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"sma-log {__version__}"
    helped = run("-m", "sma_log", "--help")
    assert helped.returncode == 0
    assert "Usage:" in helped.stdout


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_do_not_import_textual_or_sqlite_utils(flag: str) -> None:
    probe = (
        "import sys\n"
        "from sma_log.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'sqlite_utils', 'pendulum', 'rich'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = run("-c", probe)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    timed = run("-X", "importtime", "-m", "sma_log", flag)
    assert timed.returncode == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines()]
    assert not [m for m in imported if m.split(".")[0] in ("textual", "sqlite_utils")]


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_subcommand_module(flag: str) -> None:
    """Issue 13 (start-up): the subcommands of sma_log.commands are imported when used,
    not to list them or print the version."""
    probe = (
        "import sys\n"
        "from sma_log.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('sma_log.commands.') "
        "and m != 'sma_log.commands.common')\n"
        "print('LOADED', loaded)\n"
    )
    result = run("-c", probe)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout


def test_lazy_commands_list_the_short_help_of_the_command_itself(runner: CliRunner) -> None:
    """--help shows LAZY_COMMANDS' short help without importing the command: it must be
    the command's own (its help's first sentence), and the listing the same as with
    every command imported."""
    from click.utils import make_default_short_help

    from sma_log.cli import LAZY_COMMANDS

    lazy_help = runner.invoke(main, ["--help"]).output
    ctx = main.make_context("sma-log", [], resilient_parsing=True)
    for name, (_, _, short) in LAZY_COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert make_default_short_help(command.help or "", 500) == short, name
    assert runner.invoke(main, ["--help"]).output == lazy_help  # now every one imported


def test_bad_option_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--no-such-option"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["demo", "x.db", "--procedures", "0"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["--demo", "--db", "x.db", "info"])
    assert result.exit_code == 2
    assert "cannot be used together" in result.output


# ---------------------------------------------------------------- demo PATH
def test_demo_writes_a_private_file_and_refuses_to_overwrite(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "demo.db"
    result = runner.invoke(main, ["demo", str(path), "--procedures", "40", "--now", NOW])
    assert result.exit_code == 0, result.output
    assert "40 procedures" in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = runner.invoke(main, ["demo", str(path)])
    assert again.exit_code == 2
    assert "already exists" in one_error_line(again.stderr)
    assert path.read_bytes() == before
    forced = runner.invoke(main, ["demo", str(path), "-n", "5", "--force"])
    assert forced.exit_code == 0, forced.output


def test_demo_is_deterministic_for_a_seed(runner: CliRunner, tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for path in (a, b):
        args = ["demo", str(path), "--procedures", "30", "--seed", "9", "--now", NOW]
        assert runner.invoke(main, args).exit_code == 0
    tables = ("patients", "procedures", "attempts", "events", "audit_log")

    def dump(path: Path) -> dict[str, Any]:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
        finally:
            conn.close()

    assert dump(a) == dump(b)


def test_demo_a_hundred_procedures_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "demo.db"
    result = run("-m", "sma_log", "demo", str(path), "--procedures", "100")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = run("-m", "sma_log", "demo", str(path))
    assert again.returncode == 2
    one_error_line(again.stderr)


# ---------------------------------------------------------------- info and --db
def test_info_shows_path_schema_counts_sqlite_and_permissions(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "demo.db"
    assert runner.invoke(main, ["demo", str(path), "-n", "20", "--now", NOW]).exit_code == 0
    result = runner.invoke(main, ["--db", str(path), "info"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert str(path) in out
    assert "schema version:" in out
    assert f"SQLite library:  {sqlite3.sqlite_version}" in out
    assert "0600 (-rw-------)" in out
    assert "procedures:" in out and "20" in out
    assert "open procedures: 1" in out


def test_info_on_a_missing_file_refuses_and_creates_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "nothing.db"
    result = runner.invoke(main, ["--db", str(path), "info"])
    assert result.exit_code == 2
    one_error_line(result.stderr)
    assert not path.exists()


def test_sma_log_db_environment_variable_is_honoured(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.db"
    assert runner.invoke(main, ["demo", str(path), "-n", "3"]).exit_code == 0
    monkeypatch.setenv("SMA_LOG_DB", str(path))
    result = runner.invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert str(path) in result.output
    # --db wins over the environment.
    other = tmp_path / "other.db"
    assert runner.invoke(main, ["demo", str(other), "-n", "2"]).exit_code == 0
    result = runner.invoke(main, ["--db", str(other), "info"])
    assert str(other) in result.output and str(path) not in result.output


def test_sma_log_db_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    assert run("-m", "sma_log", "demo", str(path), "-n", "2").returncode == 0
    result = run("-m", "sma_log", "info", env={"SMA_LOG_DB": str(path)})
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("command", [["info"], [], ["demo-force"]])
def test_foreign_files_refused_with_one_line_and_untouched(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    for path in foreign_files(tmp_path):
        before = path.read_bytes()
        listing = sorted(p.name for p in tmp_path.iterdir())
        if command == ["demo-force"]:
            args = ["demo", str(path), "--force"]
        else:
            args = ["--db", str(path), *command]
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        line = one_error_line(result.stderr)
        assert str(path) in line
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_foreign_file_refused_in_a_real_process(tmp_path: Path) -> None:
    for path in foreign_files(tmp_path):
        before = path.read_bytes()
        for args in (["info"], []):
            result = run("-m", "sma_log", "--db", str(path), *args)
            assert result.returncode == 2, result.stderr
            line = one_error_line(result.stderr)
            assert "not an sma-log database" in line
            assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "other-app.db"]


# ---------------------------------------------------------------- the app
class FakeApp:
    """Stands in for the Textual app: records how it was built, runs instantly."""

    made: list[dict[str, Any]] = []

    def __init__(self, db_path: Path, **kwargs: Any) -> None:
        self.return_code = 0
        FakeApp.made.append({"db_path": db_path, **kwargs})

    def run(self) -> None:
        assert self.made[-1]["db_path"].exists() or not self.made[-1]["demo"]


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> type[FakeApp]:
    ui_app = pytest.importorskip("sma_log.ui.app")
    FakeApp.made = []
    monkeypatch.setattr(ui_app, "create_app", FakeApp)
    return FakeApp


def test_no_command_starts_the_app_with_db_and_user(
    runner: CliRunner, tmp_path: Path, fake_app: type[FakeApp]
) -> None:
    path = tmp_path / "clinic.db"
    result = runner.invoke(main, ["--db", str(path), "--user", "Dr Who"])
    assert result.exit_code == 0, result.output
    made = fake_app.made[-1]
    assert made["db_path"] == path
    assert made["user"] == "Dr Who"
    assert made["demo"] is False


def test_user_falls_back_to_settings_operator(
    runner: CliRunner, tmp_path: Path, fake_app: type[FakeApp]
) -> None:
    (tmp_path / "settings.json").write_text('{"operator": "Dr Settings"}')
    result = runner.invoke(main, ["--db", str(tmp_path / "c.db")])
    assert result.exit_code == 0, result.output
    assert fake_app.made[-1]["user"] == "Dr Settings"


def test_default_database_is_in_the_user_data_folder(
    runner: CliRunner, tmp_path: Path, fake_app: type[FakeApp]
) -> None:
    result = runner.invoke(main, [])
    assert result.exit_code == 0, result.output
    path = fake_app.made[-1]["db_path"]
    assert path.name == "sma-log.db"
    assert "sma-log" in path.parent.parts


def test_demo_flag_uses_a_throw_away_database(
    runner: CliRunner, tmp_path: Path, fake_app: type[FakeApp]
) -> None:
    result = runner.invoke(main, ["--demo"])
    assert result.exit_code == 0, result.output
    made = fake_app.made[-1]
    assert made["demo"] is True
    assert "throw-away" in result.stderr
    assert not made["db_path"].exists()  # deleted on exit
    assert not made["db_path"].parent.exists()


def test_demo_flag_with_info_reads_the_demo_database(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--demo", "info"])
    assert result.exit_code == 0, result.output
    assert "throw-away" in result.stderr
    assert "open procedures: 1" in result.output
    shown = next(line for line in result.output.splitlines() if line.startswith("database:"))
    assert not Path(shown.split(":", 1)[1].strip()).exists()


def test_demo_folders_of_killed_runs_are_cleaned_up(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"sma-log-demo-{dead.pid}-abc"
    stale.mkdir()
    (stale / "sma-log-demo.db").write_bytes(b"x")
    alive = tmp_path / f"sma-log-demo-{os.getpid()}-def"  # this process: kept
    alive.mkdir()
    unrelated = tmp_path / "sma-log-demo-notapid"
    unrelated.mkdir()
    result = runner.invoke(main, ["--demo", "info"])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert alive.exists() and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("sma-log-demo")) == [
        alive.name,
        unrelated.name,
    ]
