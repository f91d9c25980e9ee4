"""Stress: SIGKILL the installed sma-log 100 times at random moments (issue 5, class 1).

    python benchmarks/stress_crash.py [--kills 100] [--seed 1]

Prints kills / actions shown / actions found / lost as JSON; exit 1 if anything was
lost, duplicated or inconsistent. The driver is tests/reliability/crash.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.crash import CrashDriver


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sma-crash-"))
    began = time.monotonic()
    try:
        driver = CrashDriver(folder, args.seed)
        figures = driver.run(args.kills)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report = {"seed": args.seed, **figures.as_dict(), "seconds": round(time.monotonic() - began)}
    print(json.dumps(report, indent=2))
    bad = figures.failures or figures.lost or figures.duplicated
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
