"""Import in batches: the bedside writes between them, a killed import completes.

Real SQLite files and real processes: a bedside process presses the attempt key
between two batches of an import (with no busy timeout at all, so a lock still held
would refuse it at once), and an import process is killed with SIGKILL part-way and
run again. How long the bedside waits during a 20,000-procedure import is measured by
``benchmarks/import_bedside.py``, not here.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sma_log import demo
from sma_log.domain.clock import Clock
from sma_log.domain.records import check_family
from sma_log.importer import import_file
from sma_log.storage.schema import CLINICAL_TABLES
from sma_log.storage.store import Store

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
SETUP = {
    "operator": "Dr Rossi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "none",
}

BEDSIDE = r"""
import sys
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

store = Store.open(sys.argv[1], "bedside", clock=Clock(monotonic=False))
store.conn.execute("PRAGMA busy_timeout = 0")  # a held lock refuses the key at once
proc = sys.argv[2]
print("ready", flush=True)
for line in sys.stdin:
    try:
        view = store.record(proc, "attempt")
        print(f"ok {view.state.attempt_count}", flush=True)
    except Exception as exc:
        print(f"error {exc}", flush=True)
store.close()
"""

IMPORT = r"""
import sys
from sma_log.domain.clock import Clock
from sma_log.importer import import_file
from sma_log.storage.store import Store

with Store.open(sys.argv[1], "merger", clock=Clock(monotonic=False)) as store:
    import_file(store, sys.argv[2], budget=float(sys.argv[3]), gap=float(sys.argv[4]))
print("done", flush=True)
"""


def opened(path: Path, user: str = "tester") -> Store:
    return Store.open(path, user, clock=Clock(monotonic=False))


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in CLINICAL_TABLES
        }
    finally:
        conn.close()


def audit(path: Path) -> list[dict[str, Any]]:
    """The audit log's entries, decoded (schema 5 stores old values only)."""
    from sma_log.storage import auditlog

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return auditlog.entries(conn)
    finally:
        conn.close()


def families_valid(path: Path) -> None:
    """Every stored procedure passes the bedside's rules, its derived values as stored."""
    with opened(path) as store:
        for proc in store.query("SELECT * FROM procedures"):
            pid = proc["id"]
            events = store.query("SELECT * FROM events WHERE procedure_id = ? ORDER BY seq", (pid,))
            attempts = store.query("SELECT * FROM attempts WHERE procedure_id = ?", (pid,))
            fus = store.query("SELECT * FROM followups WHERE procedure_id = ?", (pid,))
            calls = [
                c
                for f in fus
                for c in store.query(
                    "SELECT * FROM contact_attempts WHERE followup_id = ?", (f["id"],)
                )
            ]
            fam = check_family(proc, events, attempts, fus, calls)
            assert fam.ok, [r.line() for r in fam.refused]
            assert fam.recomputed == [], [r.line() for r in fam.recomputed]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "source.db"
    demo.write_demo(path, procedures=300, seed=3, now=NOW)
    return path


@pytest.fixture(scope="module")
def clean_import(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same source imported in one go, undisturbed: what every other run must equal."""
    path = tmp_path_factory.mktemp("clean") / "clean.db"
    with opened(path, "merger") as store:
        result = import_file(store, source)
    assert result.conflicts == [] and result.refused == [] and result.recomputed == []
    return path


def test_the_attempt_key_is_recorded_between_two_batches(
    source: Path, clean_import: Path, tmp_path: Path
) -> None:
    target = tmp_path / "unit.db"
    with opened(target, "nurse") as store:
        patient = store.create_patient({"study_code": "BED-1"})
        proc = store.start_procedure(patient["id"], SETUP)
    bedside = subprocess.Popen(
        [sys.executable, "-c", BEDSIDE, str(target), proc],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert bedside.stdout is not None and bedside.stdin is not None
    try:
        assert bedside.stdout.readline().strip() == "ready"
        answers: list[str] = []

        def press(seconds: float) -> None:
            """Between two batches of the import: the bedside presses the attempt key."""
            bedside.stdin.write("press\n")  # type: ignore[union-attr]
            bedside.stdin.flush()  # type: ignore[union-attr]
            answers.append(bedside.stdout.readline().strip())  # type: ignore[union-attr]

        with opened(target, "merger") as store:
            result = import_file(store, source, budget=0.02, gap=0.0, pause=press)
    finally:
        bedside.stdin.close()
        bedside.wait(timeout=30)
    assert result.batches > 5
    assert len(answers) == result.batches - 1
    assert answers == [f"ok {n}" for n in range(1, len(answers) + 1)]
    with opened(target) as store:
        assert store.load_procedure(proc).state.attempt_count == len(answers)
    imported = dump(target)
    clean = dump(clean_import)
    for table in CLINICAL_TABLES:  # the import's records as a clean import has them
        assert set(clean[table]) <= set(imported[table]), table
    families_valid(target)


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _procedures(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM procedures").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_after", [1, 120])
def test_a_killed_import_completes_when_run_again(
    source: Path, clean_import: Path, tmp_path: Path, kill_after: int
) -> None:
    """SIGKILL part-way (after the first batch, or later), then the same import again:
    the file equals a clean import, every record audited once, no conflict invented."""
    target = tmp_path / "t.db"
    with opened(target):
        pass  # created (and migrated) before the import starts
    proc = subprocess.Popen(
        [sys.executable, "-c", IMPORT, str(target), str(source), "0.005", "0.03"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        _wait_for(lambda: _procedures(target) >= kill_after or proc.poll() is not None)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it was killed"
    total = len(dump(source)["procedures"])
    halfway = _procedures(target)
    assert kill_after <= halfway < total
    runs = [a for a in audit(target) if a["action"] == "import"]
    assert [a["field"] for a in runs] == ["source"]  # started, never finished
    families_valid(target)  # what was committed is whole

    with opened(target, "merger") as store:
        again = import_file(store, source)
    assert again.conflicts == [] and again.refused == [] and again.recomputed == []
    assert again.counts["procedures"]["inserted"] == total - halfway
    assert again.counts["procedures"]["skipped"] == halfway
    assert dump(target) == dump(clean_import)
    families_valid(target)
    # every record has exactly one insert audit row, whichever run wrote it
    rows = [a for a in audit(target) if a["action"] == "insert"]
    # (attempts: a cache of the events, not audited since schema 5)
    assert len(rows) == sum(len(r) for t, r in dump(target).items() if t != "attempts")
    assert len({(a["table_name"], a["record_id"]) for a in rows}) == len(rows)
    runs = [a for a in audit(target) if a["action"] == "import"]
    assert [a["field"] for a in runs] == ["source", "source", "result"]
    result = json.loads(runs[-1]["new_value"])
    assert result["counts"]["procedures"]["inserted"] == total - halfway
    # and a third run changes nothing at all
    before = audit(target)
    with opened(target, "merger") as store:
        third = import_file(store, source)
    assert third.changed == 0 and third.conflicts == [] and audit(target) == before


def test_a_dry_run_writes_nothing_and_counts_like_the_real_import(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t.db"
    with opened(target) as store:
        store.create_patient({"study_code": "KEEP-1"})
    before = dump(target), audit(target)
    with opened(target, "merger") as store:
        dry = import_file(store, source, dry_run=True)
    assert (dump(target), audit(target)) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("sma-log-dry-run")]
    with opened(target, "merger") as store:
        wet = import_file(store, source)
    assert dry.dry_run and dry.run_id is None
    assert dry.counts == wet.counts and dry.conflicts == wet.conflicts


def test_batches_commit_whole_families(source: Path, tmp_path: Path) -> None:
    """However small the batches, each commits whole patients and whole procedures."""
    target = tmp_path / "t.db"
    commits: list[dict[str, int]] = []

    def look(seconds: float) -> None:
        with opened(target) as reader:
            commits.append(reader.counts())
        if len(commits) % 40 == 1:
            families_valid(target)

    with opened(target, "merger") as store:
        result = import_file(store, source, budget=0.0, gap=0.0, pause=look)
    assert result.batches == len(commits) + 1 > 300  # one family per transaction
    assert [c["procedures"] for c in commits] == sorted(c["procedures"] for c in commits)
