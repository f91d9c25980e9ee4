"""Fault class 3: hostile input into every field spec, the Store, every CLI option and
(a sample) the real forms. Never a crash, never markup, never an invalid stored value.

Example counts: SMA_LOG_HOSTILE_EXAMPLES (default 150 per test here; the stress script
runs >= 10,000 in total).
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner
from factories import SETUP as BASE_SETUP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sma_log.cli import main
from sma_log.domain import fields, schedule, timeline
from sma_log.domain.clock import Clock
from sma_log.storage.errors import StorageError
from sma_log.storage.store import Store

from .hostile import (
    ALL_SPECS,
    check_text,
    check_value,
    hostile_arg,
    hostile_argv_bytes,
    hostile_text,
)
from .term import SMA_LOG

N = int(os.environ.get("SMA_LOG_HOSTILE_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=N,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
REFUSALS = (fields.ValidationError, timeline.RuleError, StorageError)
SETUP = {**BASE_SETUP, "guidance": "us_realtime", "sedation": "local"}


# ---------------------------------------------------------------- field specs
@SETTINGS
@given(name=st.sampled_from(sorted(ALL_SPECS)), raw=hostile_text)
def test_every_field_spec_refuses_or_returns_a_valid_value(name: str, raw: str) -> None:
    spec = ALL_SPECS[name]
    try:
        value = spec.parse(raw)
    except fields.ValidationError as exc:
        assert exc.field == spec.name
        assert "\n" not in exc.message and len(exc.message) < 400
        assert not check_text(exc.message), exc.message  # a refusal never echoes escapes
        return
    assert check_value(spec, value) == []


# ---------------------------------------------------------------- the Store
@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sma-hostile-"))
    store = Store.open(folder / "h.db", "fuzzer", clock=Clock(monotonic=False))
    # Ended three days ago: its 72-hour call is in its window now (for the next 24 h).
    pendulum.travel_to(pendulum.now("UTC").subtract(days=3), freeze=False)
    try:
        done = store.create_patient({"study_code": "FUZZ-2"})
        ended = store.start_procedure(done["id"], SETUP)
        store.end_procedure(
            ended, {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"}
        )
    finally:
        pendulum.travel_back()
    pt = store.create_patient({"study_code": "FUZZ-1"})
    proc = store.start_procedure(pt["id"], SETUP)
    store.record(proc, "attempt")
    fu = store.one("SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (ended,))
    assert fu is not None
    yield {"store": store, "patient": pt["id"], "proc": proc, "ended": ended, "fu": fu["id"]}
    store.close()


def _written_problems(store: Store, since: int) -> list[str]:
    """Every value written since audit rowid ``since`` (the audit log holds exactly what
    each insert and update wrote), checked against its field spec."""
    import json

    problems: list[str] = []
    from sma_log.storage import auditlog

    rows = [
        (e["table_name"], e["action"], e["record_id"], e["field"], e["new_value"], e["user"])
        for e in auditlog.entries(store.conn, "a.n > ?", (since,))
    ]
    for table, action, record_id, field, new, user in rows:
        problems += [f"audit_log.user: {p}" for p in check_text(user or "")]
        if action == "insert":
            values = json.loads(new) if new else {}
        else:  # the value as stored (the audit keeps its text form)
            got = store.conn.execute(f"SELECT {field} FROM {table} WHERE id = ?", (record_id,))
            values = {field: got.fetchone()[0]}
        for col, value in values.items():
            spec_ = ALL_SPECS.get(col)
            if spec_ is not None and spec_.kind == "bool" and value in (0, 1):
                value = bool(value)
            if spec_ is not None and spec_.kind != "text":
                problems += [f"{table}.{col}: {p}" for p in check_value(spec_, value)]
            if not isinstance(value, str):
                continue
            spec = ALL_SPECS.get(col, fields.NOTE_FIELD)  # other text: notes, reasons
            if table == "events" and col == "value":
                spec = fields.NOTE_FIELD  # a note (multi-line) or a code|agent
            problems += [f"{table}.{col}: {p}" for p in check_text(value, spec)]
            if spec is not None and table != "events" and col in ALL_SPECS:
                try:
                    problems += [f"{table}.{col}: {p}" for p in check_value(spec, value)]
                except fields.ValidationError as exc:
                    problems.append(f"{table}.{col}: stored value refused: {exc}")
    return problems


WRITES = [
    "user",
    "patient",
    "identifiers",
    "note",
    "setup",
    "outcome",
    "followup",
    "close",
    "sedation",
]


@SETTINGS
@given(what=st.sampled_from(WRITES), name=st.sampled_from(sorted(ALL_SPECS)), raw=hostile_text)
def test_store_writes_refuse_or_store_valid_values(
    world: dict[str, Any], what: str, name: str, raw: str
) -> None:
    store: Store = world["store"]
    since = store.conn.execute("SELECT coalesce(max(rowid), 0) FROM audit_log").fetchone()[0]
    try:
        if what == "user":  # --user, SMA_LOG_USER, a hand-edited settings file
            store.user = Store(store.conn, store.path, raw).user
            try:
                store.record(world["proc"], "redirect")
            finally:
                store.user = "fuzzer"
        elif what == "patient":
            store.update_patient(
                world["patient"],
                {"sma_type": raw}
                if name == "x"
                else {k: raw for k in ("birth_year", "sex") if k == name} or {"motor_status": raw},
            )
        elif what == "identifiers":
            store.set_identifiers(world["patient"], {"full_name": raw, "birth_date": raw})
        elif what == "note":
            store.record(world["proc"], "note", raw)
        elif what == "setup":
            key = name if name in fields.SETUP_FIELDS else "operator"
            store.update_procedure(world["proc"], {key: raw})
        elif what == "outcome":
            key = name if name in fields.OUTCOME_FIELDS else "note"
            store.update_procedure(world["ended"], {key: raw})
        elif what == "followup":
            key = name if name in fields.FOLLOWUP_FIELDS else "other_event"
            # every item answered (a call is done only then), one of them hostile
            answers: dict[str, Any] = {
                **schedule.NO_ADVERSE_EVENTS,
                "satisfaction": 3,
                "assessor": "n",
            }
            if key in ("other_event", "other_event_serious"):
                answers.update(other_event_any=True, other_event="x", other_event_serious=False)
            store.complete_followup(world["fu"], {**answers, key: raw})
        elif what == "close":
            store.reopen_followup(world["fu"])
            store.close_followup(world["fu"], "declined", raw)
        elif what == "sedation":
            store.record(world["proc"], "sedation", f"iv|{raw}")
    except REFUSALS as exc:
        assert "\n" not in str(exc)
    assert _written_problems(store, since) == []
    assert store.conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def cli_home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sma-cli-"))
    db = folder / "c.db"
    with Store.open(db, "maker", clock=Clock(monotonic=False)) as s:
        pt = s.create_patient({"study_code": "CLI-1"})
        proc = s.start_procedure(pt["id"], SETUP)
        s.end_procedure(proc, {"drug_delivered": "no", "failure_reason": "x", "fallback": "ct"})
    yield folder


def _commands() -> list[tuple[list[str], str]]:
    """(argv before the hostile value, option name) for every option of every command."""
    return [
        (["--user"], "info"),
        (["--db"], "info"),
        (["demo"], "path"),
        (["demo", "new.db", "--procedures"], "n"),
        (["demo", "new.db", "--seed"], "seed"),
        (["demo", "new.db", "--now"], "now"),
        (["followups", "--status"], "status"),
        (["followups", "--format"], "format"),
        (["followups", "--ics"], "ics"),
        (["settings", "--timezone"], "tz"),
        (["settings", "--locale"], "locale"),
        (["settings", "--label"], "label"),
        (["settings", "--operator"], "operator"),
        (["settings", "--window-before"], "wb"),
        (["settings", "--window-after"], "wa"),
        (["export", "--format", "json", "--out"], "out"),
        (["export", "--format"], "format"),
        (["export", "--format", "csv", "--out", "o", "--from"], "from"),
        (["export", "--format", "csv", "--out", "o2", "--to"], "to"),
        (["report", "--by"], "by"),
        (["report", "--unit"], "unit"),
        (["report", "--from"], "from"),
        (["report", "--to"], "to"),
        (["report", "--format"], "format"),
        (["import"], "path"),
    ]


COMMANDS = _commands()


def run_cli(folder: Path, argv: list[str]) -> tuple[int, str, Any]:
    db = folder / "c.db"
    runner = CliRunner()
    env = {"SMA_LOG_CONFIG": str(folder / "settings.json"), "SMA_LOG_DB": str(db), "TZ": "UTC"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = runner.invoke(main, ["--db", str(db), *argv], env=env, catch_exceptions=True)
    finally:
        os.chdir(cwd)
    return result.exit_code, result.stderr, result.exception


@SETTINGS
@given(which=st.integers(0, len(COMMANDS) - 1), value=hostile_arg)
def test_every_cli_option_refuses_hostile_values_in_one_line(
    cli_home: Path, which: int, value: str
) -> None:
    prefix, _ = COMMANDS[which]
    argv = list(prefix)
    if prefix[0] in ("--user", "--db"):
        argv = [prefix[0], value, "info"] if prefix[0] == "--user" else []
        if prefix[0] == "--db":
            code, err, exc = run_cli_raw(cli_home, ["--db", value, "info"])
            _assert_clean(code, err, exc, argv)
            return
    else:
        argv.append(value)
    code, err, exc = run_cli(cli_home, argv)
    _assert_clean(code, err, exc, argv)
    # Nothing invalid stored: the settings file and the database stay valid.
    from sma_log.config import Settings

    s = Settings.load(cli_home / "settings.json")
    assert check_text(s.operator) == [], s.operator
    assert check_text(s.timezone) == [] and check_text(s.locale) == []
    assert all(map(math.isfinite, (s.window_before_hours, s.window_after_hours))), s
    conn = sqlite3.connect(cli_home / "c.db")
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        users = [r[0] for r in conn.execute("SELECT DISTINCT user FROM audit_tx")]
        for u in users:
            assert check_text(u or "") == [], u
    finally:
        conn.close()


def run_cli_raw(folder: Path, argv: list[str]) -> tuple[int, str, Any]:
    runner = CliRunner()
    env = {"SMA_LOG_CONFIG": str(folder / "settings.json"), "TZ": "UTC"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = runner.invoke(main, argv, env=env, catch_exceptions=True)
    finally:
        os.chdir(cwd)
    return result.exit_code, result.stderr, result.exception


def _assert_clean(code: int, err: str, exc: Any, argv: list[str]) -> None:
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"{argv!r} crashed: {type(exc).__name__}: {exc}") from exc
    assert "Traceback" not in err, err
    assert code in (0, 2, 3), (argv, code, err)
    if code:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sma-log"), (argv, err)
        assert "\x1b" not in err and "\x00" not in err, (argv, err)


@settings(SETTINGS, max_examples=max(10, N // 6))
@given(which=st.integers(0, len(COMMANDS) - 1), value=hostile_argv_bytes)
def test_non_utf8_argv_bytes_in_every_option(cli_home: Path, which: int, value: bytes) -> None:
    """The real command, real argv bytes (not UTF-8): one line or success, never a
    traceback."""
    import subprocess

    prefix, _ = COMMANDS[which]
    db = str(cli_home / "c.db").encode()
    if prefix[0] == "--db":
        argv = [b"--db", value, b"info"]
    elif prefix[0] == "--user":
        argv = [b"--db", db, b"--user", value, b"info"]
    else:
        argv = [b"--db", db, *(a.encode() for a in prefix), value]
    out = subprocess.run(
        [*(a.encode() for a in SMA_LOG), *argv],
        capture_output=True,
        cwd=cli_home,
        env={
            "SMA_LOG_CONFIG": str(cli_home / "settings.json"),
            "TZ": "UTC",
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
        },
        timeout=60,
    )
    err = out.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in out.stderr, (argv, err)
    assert out.returncode in (0, 2, 3), (argv, out.returncode, err)
    if out.returncode:
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert b"\x1b" not in out.stderr, (argv, err)
