"""Fault class 7: privacy. Files created 0600; the default export carries no
identifier, note or birth date (byte scan of every format); the audit log cannot be
altered through SQL; a scripted run writes nothing outside the database (and its
-wal/-shm), the config file and the export paths it was given.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pendulum
import pytest
from factories import SETUP as BASE_SETUP

from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

from .term import SMA_LOG

SECRETS = {
    "full_name": "Zebulon Quixotefield",
    "record_number": "MRN-4471-9932",
    "birth_date": "2011-04-05",
    "note": "SECRETNOTE bedside remark",
    "failure_reason": "SECRETREASON spine",
    "timeline_note": "SECRETTIMELINE note",
    "other_event": "SECRETEVENT rash",
    "closed_reason": "SECRETCLOSED wrong number",
    "contact_note": "SECRETCALL left message",
}
SETUP = {**BASE_SETUP, "guidance": "us_realtime", "sedation": "local"}


def make_db(path: Path) -> None:
    """Three procedures four days ago (an hour apart), scored 5 minutes after their end,
    their 72-hour calls made 72 hours later: the clock travels there, then back to now."""
    start = pendulum.now("UTC").subtract(days=4)
    try:
        _make_db(path, start)
    finally:
        pendulum.travel_back()


def _make_db(path: Path, start: pendulum.DateTime) -> None:
    day3: list[str] = []
    with Store.open(path, "privacy", clock=Clock(monotonic=False)) as s:
        for i in range(3):
            pendulum.travel_to(start.add(hours=i), freeze=False)
            pt = s.create_patient({"study_code": f"PRIV-{i}", "birth_year": "2011"})
            s.set_identifiers(
                pt["id"], {k: SECRETS[k] for k in ("full_name", "record_number", "birth_date")}
            )
            proc = s.start_procedure(pt["id"], SETUP)
            for kind in ("attempt", "csf", "injection_start", "injection_end"):
                s.record(proc, kind)
            s.record(proc, "note", SECRETS["timeline_note"])
            if i == 2:
                s.end_procedure(
                    proc,
                    {
                        "drug_delivered": "no",
                        "fallback": "ct",
                        "failure_reason": SECRETS["failure_reason"],
                    },
                )
            else:
                s.end_procedure(proc, {"drug_delivered": "yes", "note": SECRETS["note"]})
            pendulum.travel_to(start.add(hours=i, minutes=5), freeze=False)
            s.set_score(proc, 4)
            fu = s.one("SELECT id FROM followups WHERE procedure_id = ? AND kind = 'day3'", (proc,))
            assert fu is not None
            day3.append(fu["id"])
        pendulum.travel_to(start.add(hours=72), freeze=False)
        s.complete_followup(
            day3[0],
            {
                "satisfaction": 5,
                "pdph": "no",
                "back_pain_nrs": 0,
                "radicular_pain": "no",
                "nausea_vomiting": "no",
                "other_event_any": "yes",
                "other_event": SECRETS["other_event"],
                "other_event_serious": "no",
                "assessor": "nurse",
            },
        )
        s.record_no_answer(day3[1], SECRETS["contact_note"])
        s.close_followup(day3[1], "unreachable", SECRETS["closed_reason"])


def env_for(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_STATE_HOME": str(home / "state"),
        "TMPDIR": str(tmp / "tmpdir"),
        "SMA_LOG_CONFIG": str(tmp / "conf" / "settings.json"),
        "TZ": "UTC",
        "TERM": "xterm-256color",
    }


def sma(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*SMA_LOG, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert out.returncode == 0, (args, out.stderr)
    return out


def files_under(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file()
    }


EXPORTS = [
    ("csv", "out_csv"),
    ("json", "out.json"),
    ("sqlite", "out.sqlite"),
    ("redcap", "out_redcap"),
]


def test_default_exports_hold_no_identifier_note_or_birth_date(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_db(db)
    assert (
        SECRETS["full_name"].encode() in db.read_bytes() + Path(f"{db}-wal").read_bytes()
        if Path(f"{db}-wal").exists()
        else True
    )
    env = env_for(tmp_path)
    for fmt, name in EXPORTS:
        out = tmp_path / name
        sma(["--db", str(db), "export", "--format", fmt, "--out", str(out)], env, tmp_path)
        paths = [out] if out.is_file() else [p for p in out.rglob("*") if p.is_file()]
        assert paths, fmt
        for p in paths:
            data = p.read_bytes()
            for key, secret in SECRETS.items():
                assert secret.encode() not in data, f"{fmt}: {p.name} holds {key}"
                assert secret.split()[0].encode() not in data, f"{fmt}: {p.name} holds {key}"
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (fmt, p)
    ics = tmp_path / "q.ics"
    sma(["--db", str(db), "followups", "--ics", str(ics)], env, tmp_path)
    data = ics.read_bytes()
    assert stat.S_IMODE(ics.stat().st_mode) == 0o600
    for secret in SECRETS.values():
        assert secret.split()[0].encode() not in data


def test_identified_export_is_what_carries_them(tmp_path: Path) -> None:
    """The scan above would find them: --identifiers puts them in (the scan works)."""
    db = tmp_path / "p.db"
    make_db(db)
    out = tmp_path / "ident.json"
    sma(
        ["--db", str(db), "export", "--format", "json", "--identifiers", "--out", str(out)],
        env_for(tmp_path),
        tmp_path,
    )
    data = out.read_bytes()
    assert SECRETS["full_name"].encode() in data and SECRETS["note"].encode() in data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "sql",
    [
        # schema 5: who and when are in audit_tx, each change's old value in audit_log
        "UPDATE audit_tx SET user = 'mallory'",
        "UPDATE audit_tx SET at = '2000-01-01T00:00:00.000000Z' WHERE n = 1",
        "UPDATE audit_log SET old_value = NULL WHERE rowid = 1",
        "DELETE FROM audit_log",
        "DELETE FROM audit_tx",
        "DELETE FROM audit_log WHERE rowid = (SELECT max(rowid) FROM audit_log)",
        "INSERT OR REPLACE INTO audit_log SELECT * FROM audit_log LIMIT 1",
        "REPLACE INTO audit_log SELECT * FROM audit_log LIMIT 1",
        "INSERT OR REPLACE INTO audit_tx SELECT * FROM audit_tx LIMIT 1",
        "INSERT INTO audit_log SELECT * FROM audit_log WHERE true LIMIT 1 "
        "ON CONFLICT(n) DO UPDATE SET field = 'x'",
        "UPDATE OR REPLACE audit_log SET n = (SELECT min(n) FROM audit_log)",
    ],
)
def test_audit_log_cannot_be_altered_through_sql(tmp_path: Path, sql: str) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    conn = sqlite3.connect(db)
    tables = ("audit_log", "audit_tx")
    before = [conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables]
    # refused by the append-only triggers (not by a mistyped column: the message says so)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute(sql)
        conn.commit()
    conn.rollback()
    assert [conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables] == before
    conn.close()


def test_scripted_run_writes_only_where_it_was_told(tmp_path: Path) -> None:
    """Every command (and the TUI) with HOME, XDG_* and TMPDIR in tmp: afterwards the
    only new files are the database (+ -wal/-shm), the config file and the named
    export paths — all 0600."""
    from .term import Terminal

    env = env_for(tmp_path)
    for d in ("home", "tmpdir", "work"):
        (tmp_path / d).mkdir()
    work = tmp_path / "work"
    db = tmp_path / "data" / "p.db"
    db.parent.mkdir()
    make_db(db)
    os.chmod(db, 0o600)
    before = files_under(tmp_path)
    sma(
        ["--db", str(db), "settings", "--operator", "Nurse Ann", "--timezone", "Europe/Rome"],
        env,
        work,
    )
    sma(["--db", str(db), "info"], env, work)
    sma(["--db", str(db), "followups", "--format", "json"], env, work)
    sma(["--db", str(db), "followups", "--ics", str(work / "f.ics")], env, work)
    sma(["--db", str(db), "report", "--format", "json"], env, work)
    for fmt, name in EXPORTS:
        sma(["--db", str(db), "export", "--format", fmt, "--out", str(work / name)], env, work)
    # import merges an identified document (a de-identified one is refused: it masks
    # the ids and times a merge needs)
    ident = work / "ident.json"
    sma(
        ["--db", str(db), "export", "--format", "json", "--identifiers", "--out", str(ident)],
        env,
        work,
    )
    sma(["--db", str(db), "import", str(ident)], env, work)
    # the TUI on the default database (XDG data dir), one attempt, quit
    term = Terminal(tmp_path, "priv", SMA_LOG, {k: v for k, v in env.items() if k != "PATH"})
    try:
        term.wait_for(lambda s: "No procedure in progress" in s, timeout=30)
        term.key("C-q")
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "priv" in term.tmux("ls"):
            time.sleep(0.1)
    except subprocess.CalledProcessError:
        pass  # the session ended with the app
    finally:
        term.kill_server()
    after = files_under(tmp_path)
    new = {k: v for k, v in after.items() if k not in before}
    default_db = "home/data/sma-log/sma-log.db"
    allowed_prefixes = [f"work/{name}" for _, name in EXPORTS] + ["work/f.ics", "work/ident.json"]
    allowed = {
        "conf/settings.json",
        default_db,
        "data/p.db-wal",
        "data/p.db-shm",
        f"{default_db}-wal",
        f"{default_db}-shm",
    }
    stray = [
        k
        for k in new
        if k not in allowed
        and not any(k == p or k.startswith(p + "/") for p in allowed_prefixes)
        and not k.startswith("tmux-")
    ]
    assert stray == [], stray
    assert default_db in new, sorted(new)
    loose = {k: oct(m) for k, m in after.items() if m != 0o600 and not k.startswith("tmux-")}
    assert loose == {}, loose
    assert list((tmp_path / "tmpdir").iterdir()) == []
