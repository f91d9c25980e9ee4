"""Stress: two processes on one database file (issue 5, class 2).

    python benchmarks/stress_two_terminals.py [--actions 1500] [--cli-every 40] [--pace 0.05]

A bedside process (Store, bedside pace alternating with bursts) and an office process
(follow-ups through the Store, plus sma-log followups/report/export subprocesses).
Prints actions, errors, "database is locked" errors, lost writes and audit problems
as JSON; exit 1 unless all are zero. The workers are tests/reliability/twoterm.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.twoterm import run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--actions", type=int, default=1500, help="per process")
    ap.add_argument("--cli-every", type=int, default=40)
    ap.add_argument("--pace", type=float, default=0.05, help="max pause at bedside pace (s)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sma-two-"))
    try:
        figures = run(folder, args.actions, args.actions, args.cli_every, args.pace)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    bad = figures["errors"] or figures["lost"] or figures["audit_problems"]
    return 1 if bad or figures["integrity"] != "ok" else 0


if __name__ == "__main__":
    sys.exit(main())
