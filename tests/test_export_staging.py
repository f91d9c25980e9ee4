"""Issue 11 items 2 and 7: no identified byte outside the database; CSV for Excel.

A de-identified SQLite export is built from de-identified rows in a private (0700)
staging folder beside --out: the export is killed (SIGKILL) at random moments and at
the moments its files appear, and every file left in the output folder is scanned for
identifiers; the next export removes what the killed ones left (only sma-log's own
staging names). Real files and a real subprocess; no mocks.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner

from sma_log import demo
from sma_log.cli import main
from sma_log.config import Settings
from sma_log.export.common import STAGING_PREFIX, remove_stale_staging, staging_folder
from sma_log.storage.store import Store

NOW = pendulum.datetime(2026, 5, 1, 12, 0, tz="UTC")
NAME = b"Zebedee"
RECORD = b"MRN-77"
BIRTH = b"1999-09-09"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A demo file of 1,500 procedures whose every patient has identifiers."""
    folder = tmp_path_factory.mktemp("site")
    db = folder / "site.db"
    demo.write_demo(db, procedures=1500, seed=11, now=NOW)
    with Store.open(db, "tester") as store:
        for i, p in enumerate(store.query("SELECT id FROM patients")):
            store.set_identifiers(
                p["id"],
                {
                    "full_name": f"Zebedee Quartermain {i}",
                    "record_number": f"MRN-77{i:04d}",
                    "birth_date": BIRTH.decode(),
                },
            )
    config = folder / "settings.json"
    Settings(timezone="Europe/Rome", locale="en").save(config)
    return {"db": db, "config": config}


def command(site: dict[str, Any], out: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sma_log",
        "--db",
        str(site["db"]),
        "export",
        "--format",
        "sqlite",
        "--out",
        str(out),
        *args,
    ]


def env_of(site: dict[str, Any]) -> dict[str, str]:
    env = {**os.environ, "SMA_LOG_CONFIG": str(site["config"])}
    env.pop("SMA_LOG_DB", None)
    return env


def leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def identified(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [s for s in (NAME, RECORD, BIRTH) if s in data]


def kill_when(proc: subprocess.Popen[bytes], ready: Any, limit: float = 60.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (or it ended)."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.001)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_exports_leave_no_identifier_and_the_next_one_cleans_up(
    site: dict[str, Any], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "copy.db"
    foreign = [out_dir / ".other.tmp", out_dir / "notes.txt", out_dir / ".sma-log-staging.x"]
    for p in foreign:
        p.write_text("not sma-log's")
    env = env_of(site)
    # A full run, to know how long one takes (the random kills fall inside it).
    started = time.monotonic()
    subprocess.run(command(site, out), env=env, check=True, capture_output=True)
    took = time.monotonic() - started
    out.unlink()

    def staged() -> list[Path]:
        return [p for p in out_dir.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()]

    def has(suffix: str) -> Any:
        return lambda: any(p.name.endswith(suffix) for s in staged() for p in s.iterdir())

    rng = random.Random(2026)
    points: list[tuple[str, Any]] = [
        ("staging folder made", lambda: bool(staged())),
        ("copy file made", has("copy.sqlite")),
        ("journal open", has("-journal")),
    ]
    points += [(f"after {d:.2f} s", d) for d in sorted(rng.uniform(0.05, took) for _ in range(6))]
    scanned, killed_with_staging = 0, 0
    for what, when in points:
        proc = subprocess.Popen(
            command(site, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if callable(when):
            kill_when(proc, when)
        else:
            deadline = time.monotonic() + when
            kill_when(proc, lambda deadline=deadline: time.monotonic() >= deadline)
        killed_with_staging += bool(staged())
        for p in leftovers(out_dir):
            scanned += 1
            assert identified(p) == [], (what, p)
        for s in staged():
            assert stat.S_IMODE(s.stat().st_mode) == 0o700, (what, s)
        if out.exists():  # the kill came after the move: a complete de-identified copy
            out.unlink()
    assert killed_with_staging > 0 and scanned > 0
    # An earlier sma-log's leftovers of the same --out, with a pid that cannot run.
    old = [out_dir / ".copy.db.99999999.tmp", out_dir / ".copy.db.99999999.tmp-journal"]
    for p in old:
        p.write_bytes(b"SQLite format 3\x00 Zebedee")
    subprocess.run(command(site, out), env=env, check=True, capture_output=True)
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted(["copy.db", *(p.name for p in foreign)])
    assert identified(out) == []


def test_copy_has_no_free_page_and_no_identifier(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "copy.db"
    subprocess.run(command(site, out), env=env_of(site), check=True, capture_output=True)
    assert identified(out) == []
    # no time of day anywhere, the demo generator's note of its "now" in meta included
    assert re.findall(rb"T\d\d:\d\d|\d\d:\d\d:\d\d", out.read_bytes()) == []
    conn = sqlite3.connect(out)
    assert "2026-05-01" in dict(conn.execute("SELECT key, value FROM meta"))["demo"]
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM procedures").fetchone()[0] == 1500
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_identified_copy_is_staged_too(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "full.db"
    subprocess.run(
        command(site, out, "--identifiers"), env=env_of(site), check=True, capture_output=True
    )
    assert identified(out) == [NAME, RECORD, BIRTH]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.db"]


def test_staging_folder_is_private_and_removed(tmp_path: Path) -> None:
    out = tmp_path / "x.db"
    with staging_folder(out) as stage:
        assert stat.S_IMODE(stage.stat().st_mode) == 0o700
        (stage / "a").write_text("a")
    assert list(tmp_path.iterdir()) == []


def test_stale_cleanup_spares_live_exports_and_foreign_names(tmp_path: Path) -> None:
    out = tmp_path / "x.db"
    live = tmp_path / f"{STAGING_PREFIX}{os.getpid()}.0123abcd"
    dead = tmp_path / f"{STAGING_PREFIX}99999999.0123abcd"
    other = tmp_path / ".y.db.99999999.tmp"  # another --out's file: not this export's
    for p in (live, dead):
        p.mkdir()
    other.write_text("y")
    link = tmp_path / ".x.db.99999999.tmp"
    link.symlink_to(other)
    assert remove_stale_staging(out) == [dead]
    assert live.exists() and other.exists() and link.is_symlink()


# ---------------------------------------------------------------- CSV line ends, Excel
@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "settings.json"
    monkeypatch.setenv("SMA_LOG_CONFIG", str(config))
    monkeypatch.delenv("SMA_LOG_DB", raising=False)
    Settings(timezone="Europe/Rome", locale="en").save(config)
    db = tmp_path / "small.db"
    demo.write_demo(db, procedures=20, seed=3, now=NOW)
    return db


def test_excel_csv_has_a_bom_and_every_csv_crlf(small: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    plain, excel = tmp_path / "plain", tmp_path / "excel"
    for out, extra in ((plain, []), (excel, ["--excel"])):
        args = ["--db", str(small), "export", "--format", "csv", "--out", str(out), *extra]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    for p in sorted(plain.iterdir()):
        a, b = p.read_bytes(), (excel / p.name).read_bytes()
        assert not a.startswith(b"\xef\xbb\xbf") and b == b"\xef\xbb\xbf" + a, p.name
        assert a.endswith(b"\r\n") and a.count(b"\n") == a.count(b"\r\n"), p.name
    text = (excel / "data_dictionary.csv").read_bytes().decode("utf-8-sig")
    assert "–" in text or "°" in text or "²" in text
    report = runner.invoke(main, ["--db", str(small), "report", "--format", "csv"])
    assert report.exit_code == 0, report.output
    data = report.output_bytes if hasattr(report, "output_bytes") else report.stdout_bytes
    assert data.count(b"\n") > 1 and data.count(b"\n") == data.count(b"\r\n")


def test_excel_refused_for_other_formats(small: Path, tmp_path: Path) -> None:
    args = ["--db", str(small), "export", "--format", "json", "--out", str(tmp_path / "x.json")]
    result = CliRunner().invoke(main, [*args, "--excel"])
    assert result.exit_code == 2 and "--excel" in result.output
    assert len(result.output.strip().splitlines()) == 1
