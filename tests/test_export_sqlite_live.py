"""The SQLite export while another process writes: every copy passes integrity_check.

A second process writes procedures in a loop through the real Store (WAL, one
transaction each). Meanwhile the export takes 20 copies through the online backup
API (alternately de-identified and with --identifiers); each copy must be "ok" and
hold a consistent snapshot (every attempt belongs to a procedure in the copy).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sma_log.commands.common import open_for_reading
from sma_log.demo import write_demo
from sma_log.export.common import ExportOptions
from sma_log.export.sqlitecopy import write_sqlite

WRITER = r"""
import sys, pathlib
from sma_log.storage.store import Store
path, stop = sys.argv[1], pathlib.Path(sys.argv[2])
setup = {"operator": "Dr W", "regimen": "std_maintenance", "guidance": "us_marking",
         "approach": "paramedian", "level_intended": "L3-L4", "sedation": "none"}
s = Store.open(path, "writer")
n = 0
print("ready", flush=True)
while not stop.exists():
    pt = s.create_patient({"study_code": f"LIVE-{n}"})
    pid = s.start_procedure(pt["id"], setup)
    s.record(pid, "attempt")
    s.record(pid, "redirect")
    s.set_identifiers(pt["id"], {"full_name": f"Live Person {n}"})
    n += 1
print(n, flush=True)
"""


def _wait_for_more_patients(db: Path, than: int, timeout: float = 20.0) -> None:
    """On a loaded machine the writer may be slow: wait until it has written more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            if conn.execute("SELECT count(*) FROM patients").fetchone()[0] > than:
                return
        finally:
            conn.close()
        time.sleep(0.05)


def test_copies_taken_during_writes_are_all_ok(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    write_demo(db, procedures=150, seed=3)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # let it get going
        seen: list[int] = []
        for i in range(20):
            if i == 19:  # the last copy must see writes made after the first one
                _wait_for_more_patients(db, seen[0])
            out = tmp_path / f"copy{i}.db"
            with open_for_reading(db, "exporter") as store:
                opts = ExportOptions(identifiers=i % 2 == 1, tz="Europe/Rome")
                write_sqlite(store, out, opts, force=False)
            conn = sqlite3.connect(out)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", i
                assert conn.execute("PRAGMA foreign_key_check").fetchall() == [], i
                orphans = conn.execute(
                    "SELECT count(*) FROM attempts WHERE procedure_id NOT IN "
                    "(SELECT id FROM procedures)"
                ).fetchone()[0]
                assert orphans == 0, i
                seen.append(conn.execute("SELECT count(*) FROM patients").fetchone()[0])
                if i % 2 == 0:
                    assert conn.execute("SELECT count(*) FROM identifiers").fetchone()[0] == 0
            finally:
                conn.close()
            out.unlink()
    finally:
        stop.touch()
        out_text, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err[-2000:]
    written = int(out_text.split()[-1])
    assert written > 0, "the writer never wrote while the copies were taken"
    assert seen == sorted(seen), seen  # a later copy never sees less
    assert seen[-1] > seen[0], (seen, err[-2000:])  # the copies saw the writes land
