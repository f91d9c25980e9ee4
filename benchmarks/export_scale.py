"""CSV export time and memory at 1k / 10k / 100k procedures, next to ``sqlite3 -csv``.

    python benchmarks/export_scale.py [--sizes 1000,10000,100000] [--repeat 3]

For each size a demo database is written (``sma_log.demo.write_demo``, fixed seed and
"now"), then, each in its own process (so peak memory is that export's alone):

* ``sma-log export --format csv`` de-identified (the default) and ``--identifiers``:
  the whole folder (6 tables + procedures_analysis + data_dictionary);
* ``sqlite3 -csv`` dumping the same six tables (``SELECT *``, one file each), the
  equivalent query in the SQLite shell on the same file in the same run;
* the procedures table alone both ways (one query against one query).

Times are medians of --repeat runs (the export's own time, measured inside the child
process after its imports; the shell's is the whole process). Peak memory is the
child's maximum resident set size (os.wait4). Ratios matter, not absolute times.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TABLES = ("patients", "procedures", "attempts", "events", "followups", "contact_attempts")
CHILD = r"""
import sys, time
from pathlib import Path
from sma_log.commands.common import open_for_reading
from sma_log.export.common import ExportOptions
from sma_log.export import csvfiles
db, out, ident, only = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
opts = ExportOptions(identifiers=ident, tz="Europe/Rome")
store = open_for_reading(Path(db), "bench")
t = time.perf_counter()
if only == "all":
    csvfiles.write_csv(store, out, opts, force=False)
else:
    import csv
    from sma_log.export.common import open_private, register_functions
    register_functions(store.conn, opts.tz)
    plan = csvfiles.column_plan(store.conn, only, opts)
    sql, params = csvfiles.table_query(only, plan, opts)
    out.mkdir()
    with open_private(out / f"{only}.csv") as fh:
        w = csv.writer(fh)
        w.writerow([c.name for c in plan])
        csvfiles._write_rows(w, store.conn.execute(sql, params), csvfiles.Progress(0, "", False))
print(time.perf_counter() - t)
"""


def run_child(args: list[str], stdin: str = "") -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of a child process."""
    t = time.perf_counter()
    p = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert p.stdin is not None
    p.stdin.write(stdin)
    p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    out = p.stdout.read() if p.stdout else ""
    err = p.stderr.read() if p.stderr else ""
    if status != 0:
        raise SystemExit(f"child failed: {' '.join(args[:3])}: {err}")
    return wall, usage.ru_maxrss / 1024, out


def sma_export(db: Path, work: Path, ident: bool, only: str) -> tuple[float, float]:
    out = work / f"out-{os.getpid()}-{time.monotonic_ns()}"
    _, rss, text = run_child(
        [sys.executable, "-c", CHILD, str(db), str(out), str(int(ident)), only]
    )
    shutil.rmtree(out)
    return float(text.strip()), rss


def shell_export(db: Path, work: Path, tables: tuple[str, ...]) -> tuple[float, float]:
    out = work / f"shell-{time.monotonic_ns()}"
    out.mkdir()
    script = "".join(f".once {out / t}.csv\nSELECT * FROM {t};\n" for t in tables)
    wall, rss, _ = run_child(["sqlite3", "-csv", "-header", str(db)], script)
    shutil.rmtree(out)
    return wall, rss


def median(fn, repeat: int) -> tuple[float, float]:
    runs = [fn() for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sma-export-bench-"))
    try:
        print(
            f"{'procedures':>10} {'file MB':>8} | {'what':<34} {'sma-log s':>9} "
            f"{'sqlite3 s':>9} {'ratio':>6} | {'sma-log MB':>10} {'sqlite3 MB':>10}"
        )
        for n in (int(s) for s in args.sizes.split(",")):
            db = work / f"demo{n}.db"
            # In a child process: a child inherits its parent's peak RSS on Linux.
            now = "2026-03-27T09:00:00Z"
            run_child(
                [sys.executable, "-m", "sma_log", "demo", str(db), "-n", str(n), "--now", now]
            )
            size = db.stat().st_size / 2**20
            cases = (
                ("procedures table, de-identified", False, "procedures", ("procedures",)),
                ("procedures table, --identifiers", True, "procedures", ("procedures",)),
                ("whole folder, de-identified", False, "all", TABLES),
                ("whole folder, --identifiers", True, "all", TABLES),
            )
            for label, ident, only, tables in cases:
                ours, ours_mb = median(
                    functools.partial(sma_export, db, work, ident, only), args.repeat
                )
                shell, shell_mb = median(
                    functools.partial(shell_export, db, work, tables), args.repeat
                )
                print(
                    f"{n:>10} {size:>8.1f} | {label:<34} {ours:>9.3f} {shell:>9.3f} "
                    f"{ours / shell:>6.2f} | {ours_mb:>10.1f} {shell_mb:>10.1f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
