"""Cold start and memory: sma-log's first screen against a one-Label Textual app.

Each run starts the command in a fresh tmux server (100x30), polls the screen until
the expected text is visible, records the wall time since the process was started and
the peak resident memory (VmHWM) of the app's process, then kills it. Runs alternate
between the two commands so machine noise hits both alike.

    python benchmarks/startup.py [--runs 15] [--src DIR]

``--src`` adds sma-log run from another checkout (``git archive REV | tar -x -C DIR``)
through PYTHONPATH, interleaved with the rest: a before/after in one run.
A third command is the same first screen built from Textual's bare widgets
(``benchmarks/bare_home.py``): what Textual itself costs for a screen of this size.

Targets (issues 2, 13): start-up <= 1.3x the one-Label app; peak RSS <= 1.3x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
TMUX = shutil.which("tmux") or "tmux"


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(command: list[str], expect: str, env: dict[str, str]) -> tuple[float, int]:
    sock = tempfile.mktemp(prefix="bench-tmux-")
    t0 = time.perf_counter()
    subprocess.run(
        [
            TMUX,
            "-S",
            sock,
            "new-session",
            "-d",
            "-s",
            "b",
            "-x",
            "100",
            "-y",
            "30",
            "env",
            *[f"{k}={v}" for k, v in env.items()],
            *command,
        ],
        check=True,
    )
    try:
        while True:
            out = subprocess.run(
                [TMUX, "-S", sock, "capture-pane", "-p", "-t", "b"],
                capture_output=True,
                text=True,
            ).stdout
            if expect in out:
                elapsed = time.perf_counter() - t0
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"{command} never showed {expect!r}:\n{out}")
            time.sleep(0.005)
        pid = int(
            subprocess.run(
                [TMUX, "-S", sock, "list-panes", "-t", "b", "-F", "#{pane_pid}"],
                capture_output=True,
                text=True,
            ).stdout.split()[0]
        )
        time.sleep(0.3)  # let it settle, then read its peak memory
        rss = vm_hwm_kb(pid)
    finally:
        subprocess.run([TMUX, "-S", sock, "kill-server"], capture_output=True)
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--src", default=None, help="also run sma-log from this checkout")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sma-log-bench-"))
    env = {"SMA_LOG_CONFIG": str(work / "settings.json"), "TERM": "xterm-256color"}
    db = work / "bench.db"
    sma_log = shutil.which("sma-log")
    if sma_log is None:
        sys.exit("sma-log is not installed (python -m pip install -e .)")
    # A database with some history (created once, outside the timing).
    subprocess.run(
        [sma_log, "demo", str(db), "--procedures", "200"], check=True, capture_output=True
    )
    # The demo has an open procedure: the app starts straight into the live screen.
    commands = {
        "one-Label Textual app": (
            [sys.executable, str(HERE / "one_label.py")],
            "No procedure in progress",
        ),
        "bare widgets, home's layout": (
            [sys.executable, str(HERE / "bare_home.py")],
            "IN PROGRESS",
        ),
        "sma-log (demo db, 200 procedures)": ([sma_log, "--db", str(db)], "IN PROGRESS"),
    }
    if args.src:
        src = str(Path(args.src).resolve())
        commands["sma-log from --src"] = (
            ["env", f"PYTHONPATH={src}", sys.executable, "-m", "sma_log", "--db", str(db)],
            "IN PROGRESS",
        )
    results: dict[str, list[tuple[float, int]]] = {k: [] for k in commands}
    for _ in range(args.runs):
        for name, (cmd, expect) in commands.items():
            results[name].append(measure(cmd, expect, env))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs each")
    base_t = statistics.median(t for t, _ in results["one-Label Textual app"])
    base_m = statistics.median(m for _, m in results["one-Label Textual app"])
    for name, rows in results.items():
        t = statistics.median(x for x, _ in rows)
        m = statistics.median(x for _, x in rows)
        print(
            f"{name:36s} first screen {t * 1000:6.0f} ms ({t / base_t:.2f}x)   "
            f"peak RSS {m / 1024:6.1f} MB ({m / base_m:.2f}x)"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
