"""``sma-log followups`` (text, JSON, iCalendar) and ``sma-log settings``.

The database is built through the real Store with pendulum's clock travelling (never
sleeping); the commands run in-process with click's CliRunner, which sees the travel
(a subprocess would not). Every test points SMA_LOG_CONFIG into tmp_path.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icalendar
import pendulum
import pytest
from click.testing import CliRunner
from factories import SETUP

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain import schedule
from sma_log.domain.clock import Clock, from_text
from sma_log.storage.store import Store

ROME = "Europe/Rome"
NAME = "Zebedee Quartermain"
RECORD = "MRN-4417"
NOTE = "Mother Ottavia phoned twice before the visit"
# Monday 30 March 2026, 08:30 in Rome (CEST since the 29th): SMA-101's call is due.
NOW1 = pendulum.datetime(2026, 3, 30, 8, 30, tz=ROME)
# The same day at 14:00 UTC: that call is overdue.
NOW2 = pendulum.datetime(2026, 3, 30, 14, 0, tz="UTC")
JSON_KEYS = {
    "id",
    "kind",
    "what",
    "status",
    "status_words",
    "study_code",
    "patient_id",
    "procedure_id",
    "procedure_ended_utc",
    "procedure_ended_local",
    "operator",
    "due_utc",
    "due_local",
    "window_opens_utc",
    "window_closes_utc",
    "relative",
    "contact_attempts",
    "last_contact_utc",
    "last_contact_local",
    "timezone",
    "next_dose",
}
IDENTIFYING = (NAME, "Zebedee", "Quartermain", RECORD, "Ottavia", "phoned twice")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings in tmp_path (site in Rome); no real user folder is touched."""
    path = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(path))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    Settings(timezone=ROME, locale="en").save(path)
    return path


@pytest.fixture
def at() -> Iterator[Any]:
    """``at(instant)`` freezes pendulum's clock there (and time-machine's)."""

    def go(instant: pendulum.DateTime) -> None:
        pendulum.travel_to(instant, freeze=True)

    yield go
    pendulum.travel_back()


def _procedure(
    store: Store, at: Any, code: str, end: pendulum.DateTime, note: str | None = None
) -> dict[str, Any]:
    """A procedure of ``code`` started 10 minutes before ``end`` and ended at ``end``."""
    at(end.subtract(minutes=10))
    pt = store.find_patient(code) or store.create_patient({"study_code": code})
    pid = store.start_procedure(pt["id"], SETUP)
    for minute, kind in enumerate(("attempt", "csf", "injection_start", "injection_end")):
        at(end.subtract(minutes=8 - 2 * minute))
        store.record(pid, kind)
    at(end)
    outcome: dict[str, Any] = {"drug_delivered": "yes"}
    if note:
        outcome["note"] = note
    store.end_procedure(pid, outcome)
    return {"patient_id": pt["id"], "procedure_id": pid}


@pytest.fixture
def clinic(tmp_path: Path, at: Any) -> dict[str, Any]:
    """Three patients, three procedures, follow-ups in every state around NOW1.

    SMA-102 ended 20 Mar 10:00 (score never taken; one unanswered call on the 23rd):
    both follow-ups missed. SMA-101 ended 27 Mar 10:00 (CET), named in the
    identifiers table and with a note; score taken: its 72-hour call is due 30 Mar
    11:00 CEST. SMA-103 ended 29 Mar 15:00 (CEST), score pending: missed by NOW1,
    its call upcoming.
    """
    path = tmp_path / "clinic.db"
    made: dict[str, Any] = {"path": path}
    with Store.open(path, "nurse", clock=Clock(monotonic=False)) as store:
        made["SMA-102"] = _procedure(
            store, at, "SMA-102", pendulum.datetime(2026, 3, 20, 10, tz=ROME)
        )
        at(pendulum.datetime(2026, 3, 23, 11, 0, tz=ROME))
        day3_102 = store.one(
            "SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'",
            (made["SMA-102"]["procedure_id"],),
        )
        assert day3_102 is not None
        store.record_no_answer(day3_102["id"])
        made["SMA-101"] = _procedure(
            store, at, "SMA-101", pendulum.datetime(2026, 3, 27, 10, tz=ROME), NOTE
        )
        store.set_identifiers(
            made["SMA-101"]["patient_id"], {"full_name": NAME, "record_number": RECORD}
        )
        at(pendulum.datetime(2026, 3, 27, 10, 6, tz=ROME))
        store.set_score(made["SMA-101"]["procedure_id"], 5)
        made["SMA-103"] = _procedure(
            store, at, "SMA-103", pendulum.datetime(2026, 3, 29, 15, tz=ROME)
        )
        made["followups"] = {
            (r["study_code"], r["kind"]): r
            for r in store.query(
                "SELECT f.*, pt.study_code FROM followups f "
                "JOIN procedures p ON p.id = f.procedure_id "
                "JOIN patients pt ON pt.id = p.patient_id"
            )
        }
    return made


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def followups(clinic: dict[str, Any], *args: str) -> Any:
    return invoke("--db", str(clinic["path"]), "followups", *args)


def one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sma-log: error: ")
    return lines[0]


def rows_of(result: Any) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


# ---------------------------------------------------------------- text and JSON
def test_text_table_in_queue_order_with_local_times(
    config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    result = followups(clinic)
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()
    header, body = lines[0], lines[1:]
    for title in ("Status", "Study code", "Procedure", "Operator", "What", "Due (Europe/Rome)"):
        assert title in header
    for title in ("When", "Calls", "Next dose"):
        assert title in header
    # Due now first, then upcoming, then missed (each by due time).
    status_col, code_col = header.index("Status"), header.index("Study code")
    assert [(ln[status_col:code_col].strip(), ln[code_col:].split()[0]) for ln in body] == [
        ("due now", "SMA-101"),
        ("upcoming", "SMA-103"),
        ("missed", "SMA-102"),
        ("missed", "SMA-102"),
        ("missed", "SMA-103"),
    ]
    first = body[0]
    # 72 elapsed hours after 10:00 CET on the 27th is 11:00 CEST on the 30th.
    for text in ("27 Mar 2026", "Dr Rossi", "72-h call", "Mon 30 Mar 11:00", "due in 2 hours"):
        assert text in first
    assert "next dose due" in first
    assert "5-min score" in body[2] and "72-h call" in body[3]
    # Aligned: every column starts at the same offset in every line.
    for title in ("Study code", "Operator", "When", "Calls"):
        column = header.index(title)
        assert all(line[column - 2 : column] == "  " for line in body)
        assert all(line[column] != " " for line in body)
    calls = header.index("Calls")
    assert [line[calls] for line in body] == ["0", "0", "0", "1", "0"]


def test_json_objects_have_stable_keys_utc_and_local_times(
    config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    data = rows_of(followups(clinic, "--format", "json"))
    assert all(set(r) == JSON_KEYS for r in data)
    assert [(r["status"], r["study_code"], r["kind"]) for r in data] == [
        ("due", "SMA-101", "day3"),
        ("upcoming", "SMA-103", "day3"),
        ("missed", "SMA-102", "score_5min"),
        ("missed", "SMA-102", "day3"),
        ("missed", "SMA-103", "score_5min"),
    ]
    first = data[0]
    stored = clinic["followups"][("SMA-101", "day3")]
    assert first["id"] == stored["id"]
    assert from_text(stored["due_at"]) == pendulum.datetime(2026, 3, 30, 9, 0, tz="UTC")
    assert first["due_utc"] == "2026-03-30T09:00:00Z"
    assert first["due_local"] == "2026-03-30T11:00:00+02:00"
    assert first["procedure_ended_utc"] == "2026-03-27T09:00:00Z"
    assert first["procedure_ended_local"] == "2026-03-27T10:00:00+01:00"
    assert first["window_opens_utc"] == "2026-03-29T21:00:00Z"
    assert first["window_closes_utc"] == "2026-03-31T09:00:00Z"
    assert first["relative"] == "due in 2 hours"
    assert first["status_words"] == "due now" and first["what"] == "72-h call"
    assert first["operator"] == "Dr Rossi" and first["timezone"] == ROME
    assert first["next_dose"]["due_date"] == "2026-07-27"
    assert first["next_dose"]["text"].startswith("next dose due 27 Jul")
    called = data[3]
    assert called["contact_attempts"] == 1
    assert called["last_contact_utc"] == "2026-03-23T10:00:00Z"
    assert called["last_contact_local"] == "2026-03-23T11:00:00+01:00"
    assert data[2]["last_contact_utc"] is None
    text = json.dumps(data)
    assert not any(word in text for word in IDENTIFYING)


def test_status_filter_and_an_empty_queue_exit_zero(
    config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    missed = rows_of(followups(clinic, "--status", "missed", "--format", "json"))
    assert {r["status"] for r in missed} == {"missed"} and len(missed) == 3
    assert rows_of(followups(clinic, "--status", "overdue", "--format", "json")) == []
    empty = followups(clinic, "--status", "overdue")
    assert empty.exit_code == 0
    assert empty.stdout.strip() == "No follow-ups overdue."
    due = rows_of(followups(clinic, "--status", "due", "--format", "json"))
    assert [r["study_code"] for r in due] == ["SMA-101"]
    # The clock moves on: the same call is overdue, then missed; nobody restarted anything.
    at(NOW2)
    overdue = rows_of(followups(clinic, "--status", "overdue", "--format", "json"))
    assert [(r["study_code"], r["relative"]) for r in overdue] == [
        ("SMA-101", "overdue by 5 hours")
    ]
    at(pendulum.datetime(2026, 3, 31, 9, 0, 1, tz="UTC"))
    missed = rows_of(followups(clinic, "--status", "missed", "--format", "json"))
    assert ("SMA-101", "day3") in {(r["study_code"], r["kind"]) for r in missed}
    bad = invoke("--db", str(clinic["path"]), "followups", "--status", "done")
    assert bad.exit_code == 2  # click's usage error


def test_window_and_time_zone_come_from_the_settings(
    config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    invoke("settings", "--window-before", "1", "--timezone", "America/New_York")
    data = rows_of(followups(clinic, "--format", "json"))
    first = next(r for r in data if r["study_code"] == "SMA-101")
    assert first["status"] == "upcoming"  # the window opens one hour before, not 12
    assert first["due_local"] == "2026-03-30T05:00:00-04:00"
    assert first["window_opens_utc"] == "2026-03-30T08:00:00Z"
    text = followups(clinic).stdout
    assert "Due (America/New_York)" in text and "Mon 30 Mar 05:00" in text


def test_locale_changes_dates_and_phrases(config: Path, clinic: dict[str, Any], at: Any) -> None:
    at(NOW1)
    assert invoke("settings", "--locale", "it").exit_code == 0
    text = followups(clinic, "--status", "due").stdout
    assert "lun 30 mar 11:00" in text and "scade tra 2 ore" in text


def test_reads_without_writing(config: Path, clinic: dict[str, Any], at: Any) -> None:
    at(NOW1)
    path = clinic["path"]
    with Store.open(path, "check", readonly=True, create=False) as store:
        before = store.counts()
        fus = store.query("SELECT * FROM followups ORDER BY id")
    main_bytes = path.read_bytes()
    assert followups(clinic).exit_code == 0
    assert followups(clinic, "--format", "json").exit_code == 0
    assert path.read_bytes() == main_bytes
    with Store.open(path, "check", readonly=True, create=False) as store:
        assert store.counts() == before
        assert store.query("SELECT * FROM followups ORDER BY id") == fus


def test_missing_database_refused_and_nothing_created(tmp_path: Path, config: Path) -> None:
    missing = tmp_path / "nowhere" / "sma-log.db"
    ics = tmp_path / "out.ics"
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in ([], ["--format", "json"], ["--ics", str(ics)]):
        result = invoke("--db", str(missing), "followups", *args)
        line = one_error_line(result)
        assert "no such database file" in line
        assert result.stdout == ""
    assert not missing.exists() and not missing.parent.exists() and not ics.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bad_time_zone_in_the_settings_file_is_one_line(
    config: Path, clinic: dict[str, Any]
) -> None:
    config.write_text(json.dumps({"timezone": "Mars/Olympus"}))
    line = one_error_line(followups(clinic))
    assert "Mars/Olympus" in line and "sma-log settings --timezone" in line


# ---------------------------------------------------------------- iCalendar
def _masked(rid: str) -> str:
    """A record id as the calendar holds it: its ULID time part zeroed."""
    assert len(rid) == 26
    return "0000000000" + rid[10:]


def _events(path: Path) -> dict[str, Any]:
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    events = list(cal.walk("VEVENT"))
    uids = [str(e["UID"]) for e in events]
    assert len(uids) == len(set(uids))
    return dict(zip(uids, events, strict=True))


def test_ics_one_event_per_open_followup_and_next_dose(
    tmp_path: Path, config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    out = tmp_path / "calendar" / "queue.ics"
    out.parent.mkdir()
    result = followups(clinic, "--ics", str(out))
    assert result.exit_code == 0, result.output
    assert "5 follow-up(s) and 3 next dose(s)" in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == ["queue.ics"]
    raw = out.read_bytes()
    assert raw.startswith(b"BEGIN:VCALENDAR")
    events = _events(out)
    open_fus = {k: r for k, r in clinic["followups"].items() if r["state"] == "open"}
    assert len(open_fus) == 5
    patients = {code: clinic[code]["patient_id"] for code in ("SMA-101", "SMA-102", "SMA-103")}
    want = {f"followup-{_masked(r['id'])}@sma-log" for r in open_fus.values()}
    want |= {f"next-dose-{_masked(pid)}@sma-log" for pid in patients.values()}
    assert set(events) == want
    for (code, kind), r in open_fus.items():
        ev = events[f"followup-{_masked(r['id'])}@sma-log"]
        start = ev.decoded("DTSTART")
        assert start == from_text(r["due_at"])
        assert start.utcoffset().total_seconds() == 0
        assert "DTSTART:" + from_text(r["due_at"]).strftime("%Y%m%dT%H%M%SZ") in raw.decode()
        what = "72-h call" if kind == "day3" else "5-min score"
        assert str(ev["SUMMARY"]) == f"{what} — {code}"
        assert ev.decoded("DURATION").total_seconds() > 0
        description = str(ev["DESCRIPTION"])
        assert "Dr Rossi" in description and "Procedure:" in description
        assert int(ev["SEQUENCE"]) >= 0 and ev.decoded("DTSTAMP").tzinfo is not None
    day3 = events[f"followup-{_masked(clinic['followups'][('SMA-101', 'day3')]['id'])}@sma-log"]
    assert "Fri 27 Mar 2026 10:00" in str(day3["DESCRIPTION"])
    with Store.open(clinic["path"], readonly=True, create=False) as store:
        for code, pid in patients.items():
            ev = events[f"next-dose-{_masked(pid)}@sma-log"]
            nd = store.next_dose(pid, "eu", ROME)
            assert nd is not None
            assert ev.decoded("DTSTART") == nd.due  # an all-day event (a date)
            block = ev.to_ical().decode()
            assert f"DTSTART;VALUE=DATE:{nd.due.strftime('%Y%m%d')}" in block
            assert f"DTEND;VALUE=DATE:{nd.due.add(days=1).strftime('%Y%m%d')}" in block
            assert str(ev["SUMMARY"]) == f"Next nusinersen dose — {code}"
        # The name really is in the file's identifiers table, and the note on the procedure.
        assert store.query("SELECT full_name FROM identifiers") == [{"full_name": NAME}]
        assert store.query("SELECT note FROM procedures WHERE note IS NOT NULL") == [{"note": NOTE}]
    for word in IDENTIFYING:
        assert word.encode() not in raw, word
    # No id timestamp: no record id of the file appears whole, and no CREATED line
    # (the calendar masks ids; it keeps its events' times and says so in its header).
    with Store.open(clinic["path"], readonly=True, create=False) as store:
        ids = [
            r["id"]
            for t in ("patients", "procedures", "followups", "events", "contact_attempts")
            for r in store.query(f"SELECT id FROM {t}")
        ]
    text = raw.decode()
    assert ids and not [i for i in ids if i in text or i[:10] in text]
    assert "\r\nCREATED" not in text
    cal = icalendar.Calendar.from_ical(raw)
    lines = [str(v) for v in cal.get("X-SMA-LOG-DEIDENTIFICATION")]
    assert any(v.startswith("ids_masked: followups: id, procedure_id") for v in lines), lines
    assert any(v.startswith("not_masked: instants are exact UTC instants") for v in lines), lines


def test_ics_uids_stable_across_exports_and_sequence_grows_on_change(
    tmp_path: Path, config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    first, second = tmp_path / "a.ics", tmp_path / "b.ics"
    assert followups(clinic, "--ics", str(first)).exit_code == 0
    at(NOW1.add(minutes=20))
    assert followups(clinic, "--ics", str(second)).exit_code == 0
    a, b = _events(first), _events(second)
    assert list(a) == list(b)
    assert first.read_bytes() == second.read_bytes()  # nothing changed: the same file
    # A call nobody answers: the same event, a higher SEQUENCE, a later DTSTAMP.
    fid = clinic["followups"][("SMA-101", "day3")]["id"]
    with Store.open(clinic["path"], "nurse", clock=Clock(monotonic=False)) as store:
        store.record_no_answer(fid)
    assert followups(clinic, "--ics", str(second), "--force").exit_code == 0
    c = _events(second)
    assert set(c) == set(a)
    uid = f"followup-{_masked(fid)}@sma-log"
    assert int(c[uid]["SEQUENCE"]) > int(a[uid]["SEQUENCE"])
    assert c[uid].decoded("DTSTAMP") > a[uid].decoded("DTSTAMP")
    assert "Calls without answer so far: 1" in str(c[uid]["DESCRIPTION"])
    others = [u for u in a if u != uid]
    assert all(c[u].to_ical() == a[u].to_ical() for u in others)
    # The follow-up done: its event leaves the file; the UIDs of the others stay.
    with Store.open(clinic["path"], "nurse", clock=Clock(monotonic=False)) as store:
        store.complete_followup(
            fid, {**schedule.NO_ADVERSE_EVENTS, "satisfaction": 5, "assessor": "Nurse Bianchi"}
        )
    assert followups(clinic, "--ics", str(second), "--force").exit_code == 0
    assert set(_events(second)) == set(a) - {uid}


def test_ics_refuses_an_existing_file_without_force(
    tmp_path: Path, config: Path, clinic: dict[str, Any], at: Any
) -> None:
    at(NOW1)
    out = tmp_path / "mine.ics"
    out.write_text("my own calendar\n")
    line = one_error_line(followups(clinic, "--ics", str(out)))
    assert "already exists" in line and "--force" in line
    assert out.read_text() == "my own calendar\n"
    usage = followups(clinic, "--force")
    assert usage.exit_code == 2 and "--force only applies with --ics" in usage.stderr
    forced = followups(clinic, "--ics", str(out), "--force")
    assert forced.exit_code == 0
    assert out.read_bytes().startswith(b"BEGIN:VCALENDAR")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
@pytest.mark.parametrize("target", ["fifo", "database", "journal", "symlink"])
def test_ics_refuses_what_the_exports_refuse(
    tmp_path: Path, config: Path, clinic: dict[str, Any], at: Any, target: str, force: bool
) -> None:
    """--ics goes through the exports' output guard: never a FIFO, the database
    itself, a name SQLite uses for its journal or a symbolic link, with or without
    --force; one line, exit code 2, and the target is left as it was."""
    at(NOW1)
    db = clinic["path"]
    mine = tmp_path / "mine.ics"
    mine.write_text("my own calendar\n")
    if target == "fifo":
        out = tmp_path / "pipe.ics"
        os.mkfifo(out)
    elif target == "database":
        out = db
    elif target == "journal":
        out = db.with_name(db.name + "-journal")
    else:
        out = tmp_path / "link.ics"
        out.symlink_to(mine)
    before = {p.name: (p.lstat().st_mode, p.lstat().st_size) for p in tmp_path.iterdir()}
    db_bytes = db.read_bytes()
    line = one_error_line(followups(clinic, "--ics", str(out), *(["--force"] if force else [])))
    assert str(out) in line
    after = {p.name: (p.lstat().st_mode, p.lstat().st_size) for p in tmp_path.iterdir()}
    assert after == before
    assert db.read_bytes() == db_bytes
    assert mine.read_text() == "my own calendar\n"
    if target == "symlink":
        assert out.is_symlink()
    if target == "fifo":
        assert stat.S_ISFIFO(out.lstat().st_mode)


# ---------------------------------------------------------------- settings
def test_settings_show_and_change(tmp_path: Path, config: Path) -> None:
    shown = invoke("settings")
    assert shown.exit_code == 0
    assert str(config) in shown.stdout and ROME in shown.stdout
    changed = invoke(
        "settings",
        "--timezone",
        "America/New_York",
        "--locale",
        "it",
        "--label",
        "us",
        "--operator",
        "  Dr   Bianchi ",
        "--window-before",
        "6",
        "--window-after",
        "48",
        "--score-earliest",
        "3.5",
    )
    assert changed.exit_code == 0, changed.output
    assert "5-min score from:" in changed.stdout and "3.5 min after the end" in changed.stdout
    assert Settings.load(config).score_earliest_min == 3.5
    saved = Settings.load(config)
    assert (saved.timezone, saved.locale, saved.label, saved.operator) == (
        "America/New_York",
        "it",
        "us",
        "Dr Bianchi",
    )
    assert (saved.window_before_hours, saved.window_after_hours) == (6.0, 48.0)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert invoke("settings", "--timezone", "system").exit_code == 0
    assert Settings.load(config).timezone == ""
    assert Settings.load(config).locale == "it"  # the rest is kept


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--timezone", "Mars/Olympus"], "Unknown time zone 'Mars/Olympus'"),
        (["--timezone", "europe/rome"], "did you mean Europe/Rome?"),
        (["--locale", "xx"], "unknown locale 'xx'"),
    ],
)
def test_settings_refuses_bad_values_and_leaves_the_file(
    config: Path, args: list[str], words: str
) -> None:
    before = config.read_bytes()
    line = one_error_line(invoke("settings", *args, "--label", "us"))
    assert words in line
    assert config.read_bytes() == before


def test_settings_bad_time_zone_creates_no_file(tmp_path: Path, config: Path) -> None:
    config.unlink()
    line = one_error_line(invoke("settings", "--timezone", "Mars/Olympus"))
    assert "Mars/Olympus" in line
    assert not config.exists()
    assert invoke("settings", "--window-after", "500").exit_code == 2  # click's range check
    assert invoke("settings", "--score-earliest", "6").exit_code == 2
    assert invoke("settings", "--score-earliest", "nan").exit_code == 2
    assert not config.exists()


# ---------------------------------------------------------------- demo data, real process
def test_demo_flag_shows_pending_and_missed_followups(config: Path) -> None:
    data = rows_of(invoke("--demo", "followups", "--format", "json"))
    statuses = {r["status"] for r in data}
    assert {"upcoming", "missed"} <= statuses
    assert statuses & {"due", "overdue"}
    assert all(r["study_code"].startswith("DEMO-") for r in data)


def test_followups_in_a_real_process(tmp_path: Path, config: Path) -> None:
    path = tmp_path / "demo.db"
    env = {**os.environ}
    made = subprocess.run(
        [sys.executable, "-m", "sma_log", "demo", str(path), "-n", "200"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    result = subprocess.run(
        [sys.executable, "-m", "sma_log", "--db", str(path), "followups", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data and all(set(r) == JSON_KEYS for r in data)
    assert "textual" not in result.stderr.lower()
