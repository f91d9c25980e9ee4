"""Nothing prints a control character (issue 10, item 5).

A file another tool filled (rows written with plain sqlite3, as a script or a foreign
import could) holds a study code with an OSC title sequence and a screen clear, an
operator with a right-to-left override and a note with a C1 CSI. Every screen, dialog
heading, CLI line and the calendar file shows them through
:func:`sma_log.domain.text.visible`: the escape is seen (``\\x1b``), never obeyed.

Pilot reads what the screen would draw (the compositor's lines), the CLI runs
in-process (click's CliRunner sees pendulum's travel), and every file is a real
SQLite file in tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner
from factories import SETUP
from textual.widgets import DataTable, Input

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.domain.text import visible
from sma_log.storage.store import Store
from sma_log.ui.app import SmaLogApp, create_app
from sma_log.ui.modals.confirm import ConfirmDialog
from sma_log.ui.modals.followup import FollowupDialog
from sma_log.ui.modals.score import ScoreDialog
from sma_log.ui.screens.followups import FollowupScreen
from sma_log.ui.screens.home import HomeScreen
from sma_log.ui.screens.patient import PatientScreen
from sma_log.ui.screens.procedure import ProcedureScreen
from sma_log.ui.screens.start import StartScreen

CODE = "A\x1b]0;pwned\x07\x1b[2J"
OPERATOR = "Dr \u202eevil"
NOTE = "note \x9b31m red"
#: What must never reach a terminal: ESC, BEL, the C1 CSI, the bidi override.
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
NOW = pendulum.datetime(2026, 5, 10, 12, 0, tz="UTC")


def no_raw(text: str) -> None:
    found = [ch for ch in RAW if ch in text]
    assert not found, f"raw {found!r} in: {visible(text[:400], multiline=True)}"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Path]:
    """One patient: a procedure ended 80 h ago (score never taken: it and the 72-hour
    call are in the queue) and one in progress with a note; then another tool writes
    the hostile text into the file."""
    db = tmp_path / "hostile.db"
    pendulum.travel_to(NOW.subtract(hours=80), freeze=True)
    with Store.open(db, "dr-rossi", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "SMA-001", "sma_type": "2"})
        ended = s.start_procedure(pt["id"], SETUP)
        for kind in ("attempt", "csf", "injection_start", "injection_end"):
            s.record(ended, kind)
        s.end_procedure(ended, {"drug_delivered": "yes"})
        pendulum.travel_to(NOW.subtract(minutes=20), freeze=True)
        live = s.start_procedure(pt["id"], SETUP)
        s.record(live, "attempt")
        s.record(live, "note", "placeholder")
    pendulum.travel_to(NOW, freeze=True)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE patients SET study_code = ?", (CODE,))
    conn.execute("UPDATE procedures SET operator = ?, note = ?", (OPERATOR, NOTE))
    conn.execute("UPDATE events SET value = ? WHERE kind = 'note'", (NOTE,))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'created_by'", ("0.1\x1b[31m",))
    conn.commit()
    conn.close()
    yield db
    pendulum.travel_back()


def make_app(db: Path, tmp_path: Path) -> SmaLogApp:
    return create_app(
        db,
        user="nurse",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "settings.json",
    )


def screen_text(app: SmaLogApp) -> str:
    """Every line the current screen would draw, as text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def run(app: SmaLogApp, script: Any, size: tuple[int, int] = (130, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


def shown_code() -> str:
    return visible(CODE)  # A\x1b]0;pwned\x07\x1b[2J, escapes as text


# ---------------------------------------------------------------- the screens
def test_home_shows_the_codes_and_names_escaped(hostile: Path, tmp_path: Path) -> None:
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        assert isinstance(app.screen, HomeScreen)
        text = screen_text(app)
        no_raw(text)
        assert "\\x1b]0;pwned\\x07" in text  # the in-progress line and the tables
        assert "\\u202eevil" in text  # the operator of the pending score
        table = app.screen.query_one("#patients", DataTable)
        assert str(table.get_row_at(0)[0]) == shown_code()

    run(app, script)


def test_queue_and_its_detail_line_escaped(hostile: Path, tmp_path: Path) -> None:
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FollowupScreen)
        text = screen_text(app)
        no_raw(text)
        assert shown_code() in text
        assert "\\u202eevil" in text
        # the 72-hour call's form: its heading names the patient
        table = app.screen.query_one("#queue", DataTable)
        for row in range(table.row_count):
            if "72-h" in str(table.get_row_at(row)):
                table.move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        if isinstance(app.screen, ConfirmDialog):  # too early: it asks first
            await pilot.press("y")
            await pilot.pause()
        assert isinstance(app.screen, FollowupDialog)
        heading = screen_text(app)
        no_raw(heading)
        assert shown_code() in heading

    run(app, script)


def test_patient_page_escaped(hostile: Path, tmp_path: Path) -> None:
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        table = app.screen.query_one("#patients", DataTable)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PatientScreen)
        text = screen_text(app)
        no_raw(text)
        assert shown_code() in text  # the facts line and the header's sub-title

    run(app, script)


def test_live_screen_its_notes_and_the_cancel_question_escaped(
    hostile: Path, tmp_path: Path
) -> None:
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, ProcedureScreen)
        text = screen_text(app)
        no_raw(text)
        assert shown_code() in text
        assert "\\x9b31m red" in text  # the timeline note
        # x asks before cancelling (an attempt is recorded: the Store refuses; the
        # refusal names the patient on the status line)
        await pilot.press("x")
        await pilot.pause()
        no_raw(screen_text(app))

    run(app, script)


def test_score_dialog_heading_escaped(hostile: Path, tmp_path: Path) -> None:
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("k")  # the pending 5-minute score
        await pilot.pause()
        assert isinstance(app.screen, ScoreDialog)
        text = screen_text(app)
        no_raw(text)
        assert shown_code() in text

    run(app, script)


def test_start_screen_patient_search_escaped(hostile: Path, tmp_path: Path) -> None:
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        await pilot.press("plus")
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)
        await pilot.press("a")  # the suggester offers the stored code
        await pilot.pause()
        field = app.screen.query_one("#study_code", Input)
        assert field.value == "a"
        text = screen_text(app)
        no_raw(text)
        assert "pwned" in text and "\\x1b" in text  # the suggestion, escaped

    run(app, script)


def test_form_fields_prefilled_from_the_file_show_the_escapes(tmp_path: Path) -> None:
    """What a field shows is what saving it keeps: the escape as text, never raw."""
    from sma_log.domain import fields
    from sma_log.ui.widgets.form import FormField

    db = tmp_path / "f.db"
    Store.open(db, "t").close()
    app = make_app(db, tmp_path)

    async def script(pilot: Any) -> None:
        field = FormField(fields.SETUP_FIELDS["operator"], OPERATOR)
        required = FormField(fields.SETUP_FIELDS["approach"], "paramedian")
        optional = FormField(fields.SETUP_FIELDS["position"], "sitting")
        await app.screen.mount(field, required, optional)
        await pilot.pause()
        assert field.query_one(Input).value == "Dr \\u202eevil"
        # a code the vocabulary does not know (a previous procedure's, from the file)
        # is no crash: an optional choice is left unanswered, a required one unchanged
        required.set_value("banana")
        optional.set_value("banana")
        await pilot.pause()
        assert required.raw == "paramedian" and optional.raw is None
        no_raw(screen_text(app))

    run(app, script)


# ---------------------------------------------------------------- the command line
@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    config = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    Settings(timezone="Europe/Rome", locale="en").save(config)
    return CliRunner()


def test_followups_text_and_json_print_no_escape(hostile: Path, runner: CliRunner) -> None:
    text = runner.invoke(main, ["--db", str(hostile), "followups"])
    assert "Traceback" not in text.output
    no_raw(text.stdout)
    no_raw(text.stderr)
    assert shown_code() in text.stdout and "\\u202eevil" in text.stdout
    # the study code is a bad cell (not a study code): reported, exit code 3
    assert text.exit_code == 3, text.output
    assert any(line.startswith("sma-log: bad cell: patients ") for line in text.stderr.splitlines())
    out = runner.invoke(main, ["--db", str(hostile), "followups", "--format", "json"])
    assert out.exit_code == 3
    no_raw(out.stdout)
    rows = json.loads(out.stdout)  # JSON escapes: the data itself is intact
    assert {r["study_code"] for r in rows} == {CODE}
    assert {r["operator"] for r in rows} == {OPERATOR}


def test_info_lines_print_no_escape(hostile: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["--db", str(hostile), "info"])
    assert result.exit_code == 0, result.output
    no_raw(result.stdout)
    assert "0.1\\x1b[31m" in result.stdout
    check = runner.invoke(main, ["--db", str(hostile), "info", "--check"])
    assert "Traceback" not in check.output
    assert check.exit_code == 1
    no_raw(check.output)
    assert "bad cell: patients" in check.stderr and shown_code() in check.stderr


def test_export_lines_print_no_escape(hostile: Path, runner: CliRunner, tmp_path: Path) -> None:
    for fmt in ("csv", "json", "sqlite"):
        result = runner.invoke(
            main, ["--db", str(hostile), "export", "--format", fmt, "--out", str(tmp_path / fmt)]
        )
        assert "Traceback" not in result.output
        assert result.exit_code == 3, result.output
        no_raw(result.stdout)
        no_raw(result.stderr)
    refused = runner.invoke(
        main, ["--db", str(hostile), "export", "--format", "redcap", "--out", str(tmp_path / "r")]
    )
    assert refused.exit_code == 2  # the record id of REDCap is the study code
    no_raw(refused.output)
    assert len(refused.stderr.strip().splitlines()) == 1


def test_error_line_of_a_hostile_path_prints_no_escape(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["--db", str(tmp_path / "x\x1b]0;t\x07.db"), "info"])
    assert result.exit_code == 2
    no_raw(result.output)
    assert "\\x1b]0;t\\x07" in result.stderr


def test_calendar_file_holds_no_control_character(
    hostile: Path, runner: CliRunner, tmp_path: Path
) -> None:
    ics = tmp_path / "queue.ics"
    result = runner.invoke(main, ["--db", str(hostile), "followups", "--ics", str(ics)])
    assert result.exit_code == 3, result.output  # the study code is a bad cell
    no_raw(result.output)
    data = ics.read_bytes().decode("utf-8")
    body = data.replace("\r\n", "")
    bad = sorted({ch for ch in body if visible(ch) != ch})
    assert bad == [], bad  # only the format's own CRLF line ends
    assert "pwned" in body and "\\\\x1b" in body  # escaped, then ICS-escaped
    assert "\\\\u202eevil" in body
    import icalendar

    cal = icalendar.Calendar.from_ical(data)
    summaries = [str(e.get("summary")) for e in cal.walk("VEVENT")]
    assert any(shown_code() in s for s in summaries)


def test_screens_survive_times_another_tool_wrote(hostile: Path, tmp_path: Path) -> None:
    """A time that cannot be read (year 0, month 13) is shown as stored, made visible,
    or said to be unreadable on the status line: never a traceback."""
    conn = sqlite3.connect(hostile)
    conn.execute(
        "UPDATE procedures SET ended_at = '0000-01-01T09:00:00.000000Z' WHERE status = 'ended'"
    )
    conn.commit()
    conn.close()
    app = make_app(hostile, tmp_path)

    async def script(pilot: Any) -> None:
        assert "0000-01-01T09:00:00.000000Z" in screen_text(app)  # home: as stored
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FollowupScreen)
        assert " ? " in screen_text(app)  # the next dose cannot be computed
        await pilot.press("escape")
        table = app.screen.query_one("#patients", DataTable)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PatientScreen)
        assert "Next dose unknown: not a stored instant" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        conn = sqlite3.connect(hostile)
        conn.execute("UPDATE followups SET due_at = '2026-13-02T10:00:00.000000Z'")
        conn.commit()
        conn.close()
        await pilot.press("f")
        await pilot.pause()
        text = screen_text(app)
        no_raw(text)
        assert "The queue cannot be shown: not a stored instant" in text

    run(app, script)


def test_settings_and_a_refusal_quoting_the_file_print_no_control_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-edited settings file's operator, and a refusal message that quotes a value
    from the file, are shown with their escapes."""
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"operator": "Dr \x1b[2J\u202eX"}), encoding="utf-8")
    monkeypatch.setenv("SMA_LOG_CONFIG", str(config))
    out = CliRunner().invoke(main, ["--db", str(tmp_path / "s.db"), "settings"])
    assert out.exit_code == 0, out.output
    no_raw(out.output)
    assert "Dr \\x1b[2J\\u202eX" in out.output

    app = make_app(tmp_path / "r.db", tmp_path)

    async def script(pilot: Any) -> None:
        from sma_log.ui.screens.base import StatusLine, refuse

        refuse(app, "Unknown sedation: \x1b]0;pwned\x07")
        await pilot.pause()
        line = app.screen.query_one(StatusLine)
        assert line.message == "Unknown sedation: \\x1b]0;pwned\\x07"
        no_raw(screen_text(app))

    run(app, script)
