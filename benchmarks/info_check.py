"""``sma-log info --check`` against SQLite's own ``PRAGMA integrity_check`` on one file.

    python benchmarks/info_check.py [DB] [--runs 3] [--src DIR ...]

DB defaults to ``/tmp/i13/d100k.db`` (``sma-log demo -n 100000``); it is copied once
to a temporary folder and every command reads the copy (``info`` opens it read-only).
Each round runs, in an order that turns round by round so machine noise hits all alike:

* the anchor: ``python -c`` opening the copy read-only with the standard ``sqlite3``
  module and fetching ``PRAGMA integrity_check`` (what the issue measured);
* ``python -m sma_log --db COPY info --check`` of this tree, and of each ``--src DIR``
  (an older tree, e.g. ``git archive HEAD~1 sma_log | tar -x -C /tmp/old``), run with
  ``PYTHONPATH=DIR`` from the temporary folder (so the tree, not the editable install,
  is imported; the tree each run imported is printed).

Prints wall-clock medians with min-max, the ratio to the anchor of the same rounds, the
CPU time (user + system) of each, and the load average before and after.

Target (issue 13, item 6): ``info --check`` <= 2x ``PRAGMA integrity_check`` at 100k.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ANCHOR = (
    "import sqlite3, sys\n"
    "c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
    "r = c.execute('PRAGMA integrity_check').fetchall()\n"
    "assert r == [('ok',)], r\n"
)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit code of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", nargs="?", default="/tmp/i13/d100k.db")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--src", action="append", default=[], help="another sma-log tree")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="info-check-") as tmp:
        work = Path(tmp)
        copy = work / "copy.db"
        shutil.copyfile(args.db, copy)
        os.chmod(copy, 0o600)
        trees = {"this tree": HERE, **{f"--src {s}": Path(s).resolve() for s in args.src}}
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "PRAGMA integrity_check": ([py, "-c", ANCHOR, str(copy)], dict(os.environ)),
        }
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree), "SMA_LOG_CONFIG": str(work / "cfg")}
            where = subprocess.run(
                [py, "-c", "import sma_log; print(sma_log.__file__)"],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"{name}: imports {where}")
            commands[f"info --check ({name})"] = (
                [py, "-m", "sma_log", "--db", str(copy), "info", "--check"],
                env,
            )
        timed(commands["PRAGMA integrity_check"][0], dict(os.environ), work)  # warm the cache
        load0 = os.getloadavg()
        walls: dict[str, list[float]] = {k: [] for k in commands}
        cpus: dict[str, list[float]] = {k: [] for k in commands}
        names = list(commands)
        for i in range(args.runs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                cmd, env = commands[name]
                wall, cpu, code = timed(cmd, env, work)
                if code != 0:
                    sys.exit(f"{name}: exit code {code}")
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"  round {i + 1}: {name:34s} {wall:6.2f} s (cpu {cpu:5.2f} s)", flush=True)
        load1 = os.getloadavg()
    anchor = statistics.median(walls["PRAGMA integrity_check"])
    anchor_cpu = statistics.median(cpus["PRAGMA integrity_check"])
    print(
        f"{args.db}, {args.runs} interleaved rounds, {os.cpu_count()} cores, "
        f"load (1 min) {load0[0]:.2f} -> {load1[0]:.2f}"
    )
    print(f"{'':34s} {'median':>8s} {'min-max':>15s} {'/anchor':>8s} {'cpu':>7s} {'/anchor':>8s}")
    for name in commands:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"{name:34s} {w:7.2f}s {min(walls[name]):6.2f}-{max(walls[name]):6.2f}s "
            f"{w / anchor:7.2f}x {c:6.2f}s {c / anchor_cpu:7.2f}x"
        )


if __name__ == "__main__":
    main()
