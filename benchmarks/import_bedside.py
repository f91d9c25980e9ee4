"""The attempt key during a long import: how long the bedside waits, and import speed.

    python benchmarks/import_bedside.py [--procedures 20000] [--code DIR] [--source PATH]
                                        [--dir DIR] [--every 1.0]

1. Builds a source database with ``sma-log demo`` (``--procedures``, seed 1, a fixed
   ``now``), or uses ``--source``.
2. A fresh target file gets one patient (``BENCH-1``) and a procedure in progress.
3. A second process (the bedside) opens the target and, every ``--every`` seconds,
   presses the attempt key: ``Store.record(proc_id, "attempt")``. It times each press
   from the call to the return after COMMIT (the wait for the write lock included)
   and notes any refusal ("The database is busy").
4. Meanwhile ``sma-log import SOURCE`` runs into the target, as its own process.

Prints the waits (n, median, p95, max, how many over 1 s, refusals), the import's wall
time and its throughput (procedures and rows a second). ``--code DIR`` runs every
process with that copy of the package (``PYTHONPATH=DIR``), e.g. an older checkout
unpacked with ``git archive``, for before/after figures on the same machine.

Target (issue 10): every press recorded, the longest wait well under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOW = "2026-03-27T09:00:00Z"
SETUP = {
    "operator": "Bench",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "none",
}

BEDSIDE = r"""
import json, sys, time
from pathlib import Path
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

target, stop, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
every = float(sys.argv[4])
setup = json.loads(sys.argv[5])
store = Store.open(target, "bedside", clock=Clock(monotonic=False))
patient = store.create_patient({"study_code": "BENCH-1"})
proc = store.start_procedure(patient["id"], setup)
ready.write_text(proc)
next_press = time.monotonic()
while not stop.exists():
    next_press = max(next_press + every, time.monotonic())  # no catch-up bursts
    t0 = time.perf_counter()
    try:
        store.record(proc, "attempt")
        ok, err = True, None
    except Exception as exc:  # what the bedside would show: one line
        ok, err = False, str(exc)
    wait = time.perf_counter() - t0
    print(json.dumps({"t": time.time() - wait, "wait": wait, "ok": ok, "error": err}), flush=True)
    time.sleep(max(0.0, next_press - time.monotonic()))
store.close()
"""


def env_for(code: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def build_source(path: Path, procedures: int, code: Path | None) -> None:
    t0 = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-m", "sma_log", "demo", str(path)),
            *("--procedures", str(procedures), "--seed", "1", "--now", NOW),
        ],
        check=True,
        env=env_for(code),
        cwd=code or None,
        stdout=subprocess.DEVNULL,
    )
    print(f"source: {procedures} procedures written in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--procedures", type=int, default=20_000)
    parser.add_argument("--code", type=Path, default=None, help="PYTHONPATH for every process")
    parser.add_argument("--source", type=Path, default=None, help="an existing source file")
    parser.add_argument("--dir", default=None, help="where the scratch files go")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between presses")
    args = parser.parse_args()
    code = args.code.resolve() if args.code else None
    folder = Path(tempfile.mkdtemp(prefix="sma-log-import-bedside-", dir=args.dir))
    source = args.source
    if source is None:
        source = folder / "source.db"
        build_source(source, args.procedures, code)
    target = folder / "target.db"
    stop, ready = folder / "stop", folder / "ready"
    env = env_for(code)
    bedside = subprocess.Popen(
        [
            *(sys.executable, "-c", BEDSIDE, str(target), str(stop), str(ready)),
            *(str(args.every), json.dumps(SETUP)),
        ],
        env=env,
        cwd=code or None,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if bedside.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the bedside process did not start")
        time.sleep(0.05)
    time.sleep(1.5)  # a few presses with nobody else writing
    t0 = time.perf_counter()
    imp = subprocess.run(
        [
            *(sys.executable, "-m", "sma_log", "--db", str(target), "--user", "bench"),
            *("import", str(source), "--format", "json"),
        ],
        env=env,
        cwd=code or None,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    t_end = time.time()
    time.sleep(1.5)
    stop.write_text("")
    out, _ = bedside.communicate(timeout=60)
    presses = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    # presses started while the import ran ("t": when the key was pressed)
    during = [p for p in presses if t_end - seconds <= p["t"] <= t_end]
    if imp.returncode not in (0, 3):
        print(imp.stderr)
        raise SystemExit(f"import failed (exit {imp.returncode})")
    report = json.loads(imp.stdout)
    counts = report["counts"]
    rows = sum(c["inserted"] + c["updated"] + c["skipped"] for c in counts.values())
    procedures = sum(counts.get("procedures", {}).values())
    waits = [p["wait"] for p in during]
    failed = [p for p in during if not p["ok"]]
    print(f"python {sys.version.split()[0]}, code {code or 'installed'}, folder {folder}")
    print(
        f"import: {procedures} procedures, {rows} rows in {seconds:.1f} s = "
        f"{procedures / seconds:.0f} procedures/s, {rows / seconds:.0f} rows/s "
        f"(exit {imp.returncode})"
    )
    if not waits:
        print("bedside: no press during the import")
        return
    waits_sorted = sorted(waits)
    p95 = waits_sorted[min(len(waits) - 1, int(0.95 * len(waits)))]
    print(
        f"bedside during the import: {len(waits)} presses, median {statistics.median(waits):.3f} s,"
        f" p95 {p95:.3f} s, max {max(waits):.3f} s, over 1 s: {sum(w > 1 for w in waits)},"
        f" refused: {len(failed)}"
    )
    if failed:
        print(f"  first refusal: {failed[0]['error']}")
    quiet = [p["wait"] for p in presses if p not in during]
    if quiet:
        print(f"bedside outside the import: {len(quiet)} presses, max {max(quiet):.3f} s")


if __name__ == "__main__":
    main()
