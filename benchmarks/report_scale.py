"""Report time and memory against database size, next to the sqlite3 shell on the same file.

For each size a demo database is written (``sma-log demo``; reused from --dir if it
is already there), then, alternating runs so machine noise hits all alike, each as its
own process (wall time of the whole command, Python start-up included; peak RSS from
os.wait4):

* ``sma-log report --by approach --format csv``: the whole file, per procedure (the
  kept fact rows summarised by the one rule set, in Python);
* the same with ``--unit patient`` (each patient summarised from their rows), and
  ``report --unit patient`` ungrouped (issue 13's command);
* the same with ``--from/--to`` covering the last 30 days of the file (the fact rows of
  the range);
* ``sqlite3`` running an equivalent GROUP BY (approach; counts, success, attempts,
  times, 72-h follow-up and PDPH through the same LEFT JOIN) on the file: what the
  report would cost computed from the tables each time; and the same per patient
  (``GROUP BY p.patient_id``: issue 13's anchor for ``--unit patient``).

    python benchmarks/report_scale.py [--sizes 1000,10000,100000,1000000] [--runs 5] [--dir D]

Target (issue 10): the report over 100k procedures in at most 1 s from the CLI, with
one rule set (the SQL histograms kept by triggers, which met issue 4's 0.3 s / 1 M <
1 s with a second copy of the rules, were dropped); memory flat. A file whose kept
facts were built by other definitions is rebuilt once before timing.

Target (issue 13): ``report --unit patient`` at most 1 s at 100k procedures. Measured
(``--sizes 100000 --runs 3`` on the issue's 100k demo file, 2 shared cores) and the
interleaved before/after runs: README, "Report and export at scale".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

SQL = """SELECT p.approach, count(*), count(DISTINCT p.patient_id), sum(p.drug_delivered),
  avg(p.attempts_n), sum(p.attempts_n <= 2), sum(p.attempts_n <= 4), avg(p.redirections_n),
  sum(p.first_attempt_success), avg(p.procedure_min), min(p.procedure_min),
  max(p.procedure_min), avg(p.puncture_min), avg(p.satisfaction_5min), sum(p.sedation = 'none'),
  sum(f.state = 'done'), avg(f.satisfaction), sum(f.pdph)
FROM procedures p LEFT JOIN followups f ON f.procedure_id = p.id AND f.kind = 'day3'
WHERE p.status = 'ended' GROUP BY p.approach;"""
#: The same per patient (issue 13's anchor for ``--unit patient``).
PATIENT_SQL = SQL.replace("SELECT p.approach,", "SELECT p.patient_id,").replace(
    "GROUP BY p.approach", "GROUP BY p.patient_id"
)


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def last_month(db: Path) -> tuple[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        last = conn.execute("SELECT max(started_at) FROM procedures").fetchone()[0]
    finally:
        conn.close()
    import pendulum

    end = pendulum.parse(last).date()
    return str(end.subtract(days=29)), str(end)


def code_definitions() -> str:
    from sma_log.storage import reportcache

    return reportcache.definition_version()


def stored_definitions(db: Path) -> str | None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'report_definitions'").fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sma-log-report-bench"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sma = shutil.which("sma-log") or "sma-log"
    sqlite = shutil.which("sqlite3")
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        db = args.dir / f"demo-{size}.db"
        if not db.exists():
            print(f"writing {db} ...", file=sys.stderr, flush=True)
            subprocess.run(
                [sma, "demo", str(db), "-n", str(size), "--now", "2026-03-27T09:00:00Z"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        if stored_definitions(db) != code_definitions():
            subprocess.run(
                [sma, "--db", str(db), "info", "--rebuild-report"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        base = [sma, "--db", str(db), "report", "--by", "approach", "--format", "csv"]
        lo, hi = last_month(db)
        cmds = {
            "cli": base,
            "patient": [*base, "--unit", "patient"],
            "patient1": [sma, "--db", str(db), "report", "--unit", "patient", "--format", "csv"],
            "month": [*base, "--from", lo, "--to", hi],
        }
        if sqlite:
            cmds["sql"] = [sqlite, "-readonly", str(db), SQL]
            cmds["sql1"] = [sqlite, "-readonly", str(db), PATIENT_SQL]
        run(cmds["cli"])  # warm the page cache (and upgrade an older file once)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        rss: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for key, cmd in cmds.items():
                wall, mb = run(cmd)
                times[key].append(wall)
                rss[key].append(mb)
        med = {k: statistics.median(v) for k, v in times.items()}
        peak = {k: max(v) for k, v in rss.items()}
        results.append((size, db.stat().st_size / 1e6, med, peak))
        print(f"done {size}: {med} {peak}", file=sys.stderr, flush=True)
    print()
    print(f"Medians of {args.runs} runs; wall seconds of the whole command; peak RSS in MB.")
    head = (
        "procedures",
        "file MB",
        "report (whole file)",
        "--unit patient",
        "--from/--to last 30 days",
        "sqlite3 GROUP BY",
        "--unit patient, ungrouped",
        "sqlite3 per-patient GROUP BY",
        "report peak RSS",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for size, mb, m, p in results:
        cells = [f"{size:,}", f"{mb:,.0f}"]
        cells += [f"{m[k]:.3f}" for k in ("cli", "patient", "month")]
        cells.append(f"{m['sql']:.3f}" if "sql" in m else "—")
        cells.append(f"{m['patient1']:.3f}")
        cells.append(f"{m['sql1']:.3f}" if "sql1" in m else "—")
        cells.append(f"{p['cli']:.0f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
