"""Report time against database size, next to the sqlite3 shell on the same file.

For each size a demo database is written (``sma-log demo``; reused from --dir if it
is already there), then, alternating runs so machine noise hits all alike:

* ``sma-log report --by approach --format csv`` (procedure unit), as a subprocess;
* the same with ``--unit patient``;
* in-process: streaming the analysis rows alone, and rows + statistics;
* the ``sqlite3`` shell running an equivalent GROUP BY (approach; counts, success,
  attempts, times, 72-h follow-up and PDPH through the same LEFT JOIN) on the file.

    python benchmarks/report_scale.py [--sizes 1000,10000,100000] [--runs 3] [--dir D]

Targets (issue 4): report over 100k procedures < 0.3 s, over 1M < 1 s.
"""

from __future__ import annotations

import argparse
import shutil
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


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def in_process(db: Path, with_stats: bool, unit: str = "procedure") -> float:
    from sma_log.domain import stats
    from sma_log.storage.analysis import iter_analysis_rows
    from sma_log.storage.store import Store

    t0 = time.perf_counter()
    with Store.open(db, "bench", create=False, readonly=True) as store:
        cols = [*stats.NEEDED, "approach"]
        rows = iter_analysis_rows(store, columns=cols, order=False)
        if with_stats:
            stats.summarise(rows, "approach", unit)  # type: ignore[arg-type]
        else:
            for _ in rows:
                pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=3)
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
        base = [sma, "--db", str(db), "report", "--by", "approach", "--format", "csv"]
        times: dict[str, list[float]] = {k: [] for k in ("cli", "cli_pt", "rows", "stats", "sql")}
        for _ in range(args.runs):
            times["cli"].append(wall(base))
            times["cli_pt"].append(wall([*base, "--unit", "patient"]))
            times["rows"].append(in_process(db, with_stats=False))
            times["stats"].append(in_process(db, with_stats=True))
            if sqlite:
                times["sql"].append(wall([sqlite, "-readonly", str(db), SQL]))
        med = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
        size_mb = db.stat().st_size / 1e6
        results.append((size, size_mb, med))
        print(f"done {size}: {med}", file=sys.stderr, flush=True)
    print()
    print(f"Medians of {args.runs} runs; times in seconds (CLI = subprocess wall time).")
    head = (
        "procedures",
        "file MB",
        "report CLI",
        "CLI --unit patient",
        "rows only (in-proc)",
        "rows+stats (in-proc)",
        "sqlite3 GROUP BY",
        "CLI / sqlite3",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for size, mb, m in results:
        cells = [f"{size:,}", f"{mb:,.0f}"]
        cells += [f"{m[k]:.3f}" for k in ("cli", "cli_pt", "rows", "stats", "sql")]
        cells.append(f"{m['cli'] / m['sql']:.1f}x" if m["sql"] == m["sql"] else "—")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
