"""One rule set: a definition changed in the code reaches every surface of an old file.

Issue 10 saw a Cobb boundary moved from 50° to 40° give two different reports on an
older file (the report screen by the new rule, ``sma-log report`` from histograms built
by the old one) while ``info --check`` said ok. Here a *test build* — a copy of the
package with that boundary moved — opens a file written by the shipped code: the CLI's
report and the report screen's computation agree, read-only and after the rebuild a
writable open does, and the shipped code then sees the file's facts as built by other
definitions and agrees with itself again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pendulum

import sma_log
from sma_log.domain.clock import Clock
from sma_log.storage import reportcache
from sma_log.storage.store import Store

SHIPPED = '("moderate", "Moderate (> 25–50°)", 50.0, True)'
MOVED = '("moderate", "Moderate (> 25–40°)", 40.0, True)'
CHILD = r"""
import json, sys
from pathlib import Path
from click.testing import CliRunner
from sma_log.cli import main
from sma_log.domain import stats
from sma_log.storage import reportcache
from sma_log.storage.store import Store
from sma_log.ui.screens.report import Params, compute

db = Path(sys.argv[1])
assert stats.COBB_CLASSES[2][2] == 40.0, "not the test build"

def cli():
    args = ["--db", str(db), "report", "--by", "scoliosis", "--format", "json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    return {g["group"]: g["figures"][1]["n"] for g in doc["groups"]}

def screen():
    rep = compute(db, "t", Params("scoliosis", "procedure", None, None), "UTC").report
    return {g.group: g.figure("procedures").value for g in rep.groups}

out = {"readonly": [cli(), screen()]}
with Store.open(db, "test-build") as s:  # writable: rebuilt by this build's definitions
    out["rebuilt_check"] = reportcache.check(s.conn)
out["rebuilt"] = [cli(), screen()]
print(json.dumps(out))
"""


def _file(path: Path) -> None:
    """Four procedures at Cobb 30°, 45°, 45°, 60°, written by the shipped code."""
    t0 = pendulum.datetime(2026, 3, 2, 9, tz="UTC")
    try:
        with Store.open(path, "tester", clock=Clock(monotonic=False)) as store:
            for n, cobb in enumerate((30, 45, 45, 60)):
                pendulum.travel_to(t0.add(days=n), freeze=True)
                pt = store.create_patient({"study_code": f"CB-{n:03d}"})
                setup = {
                    "operator": "Dr Rossi",
                    "regimen": "std_maintenance",
                    "guidance": "us_realtime",
                    "approach": "paramedian",
                    "level_intended": "L3-L4",
                    "sedation": "none",
                    "cobb_angle": str(cobb),
                }
                pid = store.start_procedure(pt["id"], setup)
                for kind in ("attempt", "csf", "injection_start", "injection_end"):
                    store.record(pid, kind)
                pendulum.travel_to(t0.add(days=n, minutes=10), freeze=True)
                store.end_procedure(pid, {"drug_delivered": "yes"})
    finally:
        pendulum.travel_back()


def _groups(path: Path) -> dict[str, int]:
    with Store.open(path, "reader", readonly=True) as s:
        report = reportcache.load_report(s.conn, "scoliosis")
        return {g.group: g.figure("procedures").value for g in report.groups}  # type: ignore[misc]


def test_a_moved_cobb_boundary_reaches_both_surfaces_of_an_old_file(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _file(db)
    assert _groups(db) == {"moderate": 3, "severe": 1}  # the shipped rule: 45° is moderate
    build = tmp_path / "build"
    shutil.copytree(Path(sma_log.__file__).parent, build / "sma_log")
    stats_py = build / "sma_log" / "domain" / "stats.py"
    text = stats_py.read_text(encoding="utf-8")
    assert SHIPPED in text
    stats_py.write_text(text.replace(SHIPPED, MOVED), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(build), "SMA_LOG_CONFIG": str(tmp_path / "s.json")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(db)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    moved = {"moderate": 1, "severe": 3}  # 45° is severe by the test build's rule
    assert out["readonly"] == [moved, moved]  # both surfaces, before any rebuild
    assert out["rebuilt_check"] == []
    assert out["rebuilt"] == [moved, moved]
    # back with the shipped code: the facts were built by other definitions
    with Store.open(db, "reader", readonly=True) as s:
        assert reportcache.check(s.conn)[0].startswith("built by other definitions")
    assert _groups(db) == {"moderate": 3, "severe": 1}
    with Store.open(db, "writer") as s:  # rebuilt again, by the shipped definitions
        assert reportcache.check(s.conn) == []
