"""CSV export at 100k procedures: the SQL-built lines against the plain Python writer.

    python benchmarks/export_csv.py [--db /tmp/x100k.db] [--runs 3] [--out /tmp/o]

Makes the demo database if it is missing (``python -m sma_log demo -n 100000 --seed 1
--now 2026-06-01T09:00:00Z DB``, 3-5 min), then times ``python -m sma_log --db DB export
--format csv --out OUT --force`` (whole process, wall clock), the two paths
interleaved so a change of load hits both alike, and checks that both wrote the same
bytes.

The two paths exist side by side only at commit e946c49 (issue 12): there
``SMA_CSV_SQL=1`` picks the SQL-built lines and ``SMA_CSV_SQL=0`` the Python writer
(``git worktree add /tmp/e946c49 e946c49`` and run this script with that tree first
on ``PYTHONPATH``). Later code has the Python writer only and ignores the variable, so
both columns then time the same writer.

Measured (issue 12, 2 shared cores, demo -n 100000 --seed 1: 28,571 patients, 100,000
procedures, 183,862 attempts, 1,019,440 events; de-identified export, whole process,
3 interleaved runs):

    SQL-built lines   30.56, 28.56, 22.57 s   median 28.56 s
    Python writer     52.33, 33.69, 34.33 s   median 34.33 s
    Python / SQL      1.20 (medians); same bytes: True

The SQL path was not 2x faster, so it was deleted: the CSV files are written by
``csv.writer`` with one cell function per column (sma_log/export/csvfiles.py), whose
bytes tests/test_export_csv_digests.py pins to what the SQL path wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def run(db: Path, out: Path, sql: bool) -> float:
    env = {**os.environ, "SMA_CSV_SQL": "1" if sql else "0"}
    cmd = [sys.executable, "-m", "sma_log", "--db", str(db), "export", "--format", "csv"]
    started = time.perf_counter()
    subprocess.run([*cmd, "--out", str(out), "--force"], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, default=Path("/tmp/x100k.db"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/o"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.db.exists():
        demo = ["demo", "-n", "100000", "--seed", "1", "--now", "2026-06-01T09:00:00Z"]
        subprocess.run([sys.executable, "-m", "sma_log", *demo, str(args.db)], check=True)
    times: dict[str, list[float]] = {"sql": [], "python": []}
    digests: dict[str, str] = {}
    for i in range(args.runs):
        for name in ("sql", "python"):
            out = args.out.with_name(f"{args.out.name}-{name}")
            t = run(args.db, out, name == "sql")
            times[name].append(t)
            digests[name] = digest(out)
            print(f"run {i + 1} {name:6s} {t:6.2f} s", flush=True)
    for name, ts in times.items():
        shown = ", ".join(f"{t:.2f}" for t in ts)
        print(f"{name:6s} runs: {shown} s; median {statistics.median(ts):.2f} s")
    ratio = statistics.median(times["python"]) / statistics.median(times["sql"])
    print(f"python / sql (medians): {ratio:.2f}")
    print("same bytes:", digests["sql"] == digests["python"])


if __name__ == "__main__":
    main()
