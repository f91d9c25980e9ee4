"""CSV export time and memory at 1k / 10k / 100k procedures, next to ``sqlite3 -csv``.

    python benchmarks/export_scale.py [--sizes 1000,10000,100000] [--repeat 5]
                                      [--dir /tmp/export-bench]

Demo databases are made once in --dir (``sma-log demo PATH -n N --now
2026-03-27T09:00:00Z``) and reused. Then, each run in its own process (so peak memory
is that run's alone), runs alternating so a load change hits both sides alike:

* ``procedures``: the procedures table alone, de-identified, as the export writes each
  table (``csvfiles.bad_rows`` then ``csvfiles.write_table``);
* ``folder``: ``sma-log export --format csv`` de-identified (the default): six tables,
  procedures_analysis and data_dictionary (``csvfiles.write_csv``);
* ``folder --identifiers``: the same, identified.

Each is set beside two runs of the SQLite shell (``sqlite3 -csv -header``) on the same
file in the same run:

* ``SELECT *``: the same tables dumped as stored (no join, order, masking or dates);
* same query: the shell runs the export's own queries (``csvfiles.column_plan``'s SQL
  and ``storage.analysis.analysis_sql``: same rows, order, columns, minutes) with the
  cell rules written in plain SQL: an id mask as ``'0000000000' || substr(x, 11)``, a
  local date as ``date(x, 'localtime')`` with ``TZ`` set to the export's zone in the
  shell's environment (the C library's zone rules, the same IANA data). It does the
  CSV quoting itself; it lacks only the formula guard and writes REALs with 15 digits.
  (Until issue 12 these queries came from the export's SQL line builders; since the
  export writes with ``csv.writer`` and one cell function per column, the shell's
  column is the export's reads plus those two rules.)

Times are medians of --repeat runs; the export's is measured inside the child after
its imports (Python start-up is ≈ 0.1–0.3 s more), the shell's is its whole process.
Peak memory is the child's maximum resident set size (os.wait4). Read the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

NOW = "2026-03-27T09:00:00Z"
TZ = "Europe/Rome"
TABLES = ("patients", "procedures", "attempts", "events", "followups", "contact_attempts")
CHILD = r"""
import sys, time
from pathlib import Path
from sma_log.commands.common import open_for_reading
from sma_log.export.common import ExportOptions, LocalDates, Tally
from sma_log.export import csvfiles
db, out, only, tz = sys.argv[1], Path(sys.argv[2]), sys.argv[4], sys.argv[5]
ident = sys.argv[3] == "1"
opts = ExportOptions(identifiers=ident, tz=tz)
store = open_for_reading(Path(db), "bench")
t = time.perf_counter()
if only == "all":
    csvfiles.write_csv(store, out, opts, force=False)
else:  # one table, as write_csv writes each
    conn = store.conn
    conn.execute("BEGIN")
    out.mkdir()
    plan = csvfiles.column_plan(conn, only, opts)
    bad = csvfiles.bad_rows(conn, only, plan, opts, LocalDates(opts.tz))
    csvfiles.write_table(
        conn, out / f"{only}.csv", only, plan, opts, Tally(None), frozenset(bad)
    )
    conn.execute("COMMIT")
print(time.perf_counter() - t)
"""


def run_child(
    args: list[str], stdin: str = "", env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of a child process."""
    t = time.perf_counter()
    p = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    p.stdin.write(stdin)
    p.stdin.close()
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"child failed: {' '.join(args[:3])}: {err}")
    return wall, usage.ru_maxrss / 1024, out


def shell_queries(db: Path, ident: bool, tables: tuple[str, ...], analysis: bool) -> list[str]:
    """The export's own queries in plain SQL (what the shell can run): its reads, with
    the id mask and the local date in SQL (``date(x, 'localtime')``: the shell runs
    with ``TZ`` set); the formula guard is left out."""
    from sma_log.commands.common import open_for_reading
    from sma_log.export import csvfiles
    from sma_log.export.common import DATE, MASK_ID, ExportOptions

    def cell(sql: str, rule: str) -> str:
        if rule == MASK_ID:
            return f"'0000000000' || substr({sql}, 11)"
        return f"date({sql}, 'localtime')" if rule == DATE else sql

    opts = ExportOptions(identifiers=ident, tz=TZ)
    store = open_for_reading(db, "bench")
    conn = store.conn
    queries = []
    for table in tables:
        plan = csvfiles.column_plan(conn, table, opts)
        cols = ", ".join(f"{cell(c.sql, c.cell)} AS {c.name}" for c in plan)
        where, params = csvfiles._where(table, opts)
        assert not params
        queries.append(
            f"SELECT {cols} FROM {csvfiles._FROM[table]} WHERE {where} "
            f"ORDER BY {csvfiles._ORDER[table]}"
        )
    if analysis:
        from sma_log.storage import analysis as am

        names = [c.name for c in csvfiles.analysis_columns(opts)]
        inner, _, _ = am.analysis_sql(names, tz=TZ)
        cols = ", ".join(f"{cell(n, csvfiles.analysis_cell(n, opts))} AS {n}" for n in names)
        queries.append(f"SELECT {cols} FROM ({inner}) a")
    store.close()
    return queries


def ours(db: Path, work: Path, ident: bool, only: str) -> tuple[float, float]:
    out = work / f"out-{time.monotonic_ns()}"
    args = [sys.executable, "-c", CHILD, str(db), str(out), str(int(ident)), only, TZ]
    _, rss, text = run_child(args)
    shutil.rmtree(out)
    return float(text.strip()), rss


def shell(db: Path, work: Path, queries: list[str]) -> tuple[float, float]:
    out = work / f"shell-{time.monotonic_ns()}"
    out.mkdir()
    script = "".join(f".once {out / str(i)}.csv\n{q};\n" for i, q in enumerate(queries))
    env = {**os.environ, "TZ": TZ}  # date(x, 'localtime') is the export's local date
    wall, rss, _ = run_child(["sqlite3", "-csv", "-header", str(db)], script, env)
    shutil.rmtree(out)
    return wall, rss


def make_demo(path: Path, n: int) -> None:
    if not path.exists():
        cmd = [sys.executable, "-m", "sma_log", "demo", str(path), "-n", str(n), "--now", NOW]
        run_child(cmd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/export-bench")
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / f"work-{os.getpid()}"
    work.mkdir()
    print(
        f"{'procs':>6} {'MB':>5} | {'what':<22} {'sma-log s':>9} {'SELECT* s':>9} "
        f"{'ratio':>5} {'sameq s':>8} {'ratio':>5} | {'sma MB':>6} {'sh MB':>6}"
    )
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            db = folder / f"demo{n}.db"
            make_demo(db, n)
            ours(db, work, False, "patients")  # a schema upgrade, if any, happens here
            size = db.stat().st_size / 2**20
            cases = (
                ("procedures", False, "procedures", ("procedures",), False),
                ("folder", False, "all", TABLES, True),
                ("folder --identifiers", True, "all", TABLES, True),
            )
            for label, ident, only, tables, analysis in cases:
                star = [f"SELECT * FROM {t}" for t in tables]
                same = shell_queries(db, ident, tables, analysis)
                runs: dict[str, list[tuple[float, float]]] = {"o": [], "a": [], "b": []}
                for _ in range(args.repeat):
                    runs["o"].append(ours(db, work, ident, only))
                    runs["a"].append(shell(db, work, star))
                    runs["b"].append(shell(db, work, same))
                med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
                rss = {k: max(r[1] for r in v) for k, v in runs.items()}
                print(
                    f"{n:>6} {size:>5.0f} | {label:<22} {med['o']:>9.3f} {med['a']:>9.3f} "
                    f"{med['o'] / med['a']:>5.2f} {med['b']:>8.3f} {med['o'] / med['b']:>5.2f} "
                    f"| {rss['o']:>6.0f} {max(rss['a'], rss['b']):>6.0f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
