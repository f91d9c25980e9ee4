"""``sma-log --help`` / ``--version`` against ``python -c pass`` plus click's own import.

Each run starts a fresh process and times it to exit (wall clock); the commands
alternate run by run so machine noise hits all of them alike; medians are printed.
The anchor is ``python -c pass`` plus the extra time of ``python -c "import click"``
(what any click CLI pays), so the target reads: sma-log's own share <= 1.5x of that.

    python benchmarks/cli_startup.py [--runs 21]

Target (issue 13): ``--help`` and ``--version`` <= 1.5x (python -c pass + click's import).
The installed ``sma-log`` beside ``sys.executable`` is timed (a console-script
wrapper), and ``python -m sma_log`` beside it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    py = sys.executable
    exe = str(Path(py).with_name("sma-log"))
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import click'": [py, "-c", "import click"],
        "sma-log --help": [exe, "--help"],
        "sma-log --version": [exe, "--version"],
        "python -m sma_log --version": [py, "-m", "sma_log", "--version"],
    }
    for cmd in commands.values():  # warm the page cache, outside the timing
        timed(cmd)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    anchor = med["python -c 'import click'"]
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved runs, medians")
    print(f"anchor = python -c pass + click's import = {anchor:.0f} ms")
    for name, ms in med.items():
        print(f"{name:30s} {ms:6.0f} ms   {ms / anchor:.2f}x anchor")


if __name__ == "__main__":
    main()
