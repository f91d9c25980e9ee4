"""Stress: hostile input with hypothesis at full count (issue 5, class 3).

    python benchmarks/stress_hostile.py [--examples 3500]

Runs tests/reliability/test_hostile.py with SMA_LOG_HOSTILE_EXAMPLES=N: N examples for
each of the field-spec, Store and in-process CLI tests and N/6 real-argv (non-UTF-8)
subprocess runs, so >= 10,000 generated cases at the default. Prints the count and
the failures as JSON; exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=3500)
    args = ap.parse_args()
    n = args.examples
    began = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:warnings",
            "tests/reliability/test_hostile.py",
        ],
        cwd=ROOT,
        env={**os.environ, "SMA_LOG_HOSTILE_EXAMPLES": str(n)},
        capture_output=True,
        text=True,
    )
    tail = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", tail)) else 0
    report = {
        "generated_cases": 3 * n + max(10, n // 6),
        "per_test": {
            "field_specs": n,
            "store_writes": n,
            "cli_options": n,
            "cli_real_argv_bytes": max(10, n // 6),
        },
        "pytest": tail,
        "failures": failed,
        "seconds": round(time.monotonic() - began),
    }
    if out.returncode:
        report["output"] = out.stdout[-4000:]
    print(json.dumps(report, indent=2))
    return 1 if out.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
