"""Latency of the attempt key: Store.record('attempt') until its COMMIT has returned,
against a raw sqlite3 INSERT + COMMIT in the same journal mode (WAL, synchronous=FULL)
on the same disk, in the same run (alternating, so noise hits both alike).

    python benchmarks/attempt_latency.py [--n 400] [--dir /path/on/the/target/disk]

Target (issue 2): <= 1.5x the raw INSERT + COMMIT.

What the attempt key does inside its one IMMEDIATE transaction: read the procedure and
its events, check the rules, insert the event and its audit row, insert the attempt
row and its audit row, update the procedure's derived columns; then COMMIT (one
fsync). The screen is redrawn from what this returns.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

SETUP = {
    "operator": "Bench",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "none",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sma-log-latency-", dir=args.dir))
    store = Store.open(folder / "app.db", "bench", clock=Clock(monotonic=False))
    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = FULL")
    raw.execute("CREATE TABLE attempts(id TEXT PRIMARY KEY, procedure_id TEXT, at TEXT)")
    app_ms: list[float] = []
    raw_ms: list[float] = []
    proc = None
    for i in range(args.n):
        if i % 5 == 0:  # a realistic procedure: up to 5 attempts, then the next patient
            pt = store.create_patient({"study_code": f"B-{i}"})
            proc = store.start_procedure(pt["id"], SETUP)
        assert proc is not None
        t0 = time.perf_counter()
        store.record(proc, "attempt")
        app_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        raw.execute("BEGIN")
        raw.execute(
            "INSERT INTO attempts VALUES (?, ?, ?)", (f"id-{i}", "p", "2026-01-01T00:00:00Z")
        )
        raw.execute("COMMIT")
        raw_ms.append((time.perf_counter() - t0) * 1000)
    a, r = statistics.median(app_ms), statistics.median(raw_ms)
    a95 = statistics.quantiles(app_ms, n=20)[18]
    r95 = statistics.quantiles(raw_ms, n=20)[18]
    print(
        f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, n={args.n}, "
        f"folder {folder}"
    )
    print(f"raw INSERT+COMMIT (WAL, FULL)     median {r:.3f} ms   p95 {r95:.3f} ms")
    print(
        f"attempt key (Store.record)         median {a:.3f} ms   p95 {a95:.3f} ms   "
        f"ratio {a / r:.2f}x"
    )


if __name__ == "__main__":
    main()
