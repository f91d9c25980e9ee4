"""Key to screen drawn, in a real terminal: home, queue, patient page, report.

For each database given, the app (the ``sma-log`` beside this Python) runs in a fresh
tmux server (100x30). Each step sends one key and polls ``capture-pane`` (every 2 ms)
until the text that only the finished screen shows is there; the time from the key
to that moment is one sample. Steps repeat ``--runs`` times, in turn, so noise hits
every screen alike; the medians are printed per file.

    python benchmarks/screens.py /tmp/d200.db /tmp/d100k.db [--runs 5]

Each file is copied first (the app opens its file read-write).

Make the files with ``sma-log demo -n N --seed 1 PATH`` (the demo's "now" is the
time it is made, so the queue has due and overdue rows).

Target (issue 13): every screen drawn in <= 300 ms at 100k procedures; the report's
figures within 1 s and its plots after them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TMUX = shutil.which("tmux") or "tmux"
#: The command under test: ``$SMA_LOG_CMD`` if set (an executable path, e.g. a wrapper
#: running another checkout: refused if it does not exist, never silently replaced), else
#: the ``sma-log`` beside this Python.
SMA_LOG = Path(os.environ.get("SMA_LOG_CMD") or Path(sys.executable).with_name("sma-log"))
if os.environ.get("SMA_LOG_CMD") and not SMA_LOG.exists():
    sys.exit(f"SMA_LOG_CMD={SMA_LOG}: no such executable (give a path, not a command line)")

#: What only the finished screen shows (a regex over the whole pane).
#: Home: a filled table (Patients is below the fold at 100x30 when scores are pending).
HOME = re.compile(r"(Patients|Recent procedures)\s*\n\s*Study code[^\n]*\n\s*\S+")
QUEUE = re.compile(
    r"Follow-ups.*\n(.*\n)*?\s*(?i:missed|overdue|due|upcoming)\s+\S+|No open follow"
)
REPORT_FRAME = re.compile(r"Report\s*\n(.*\n)*?\s*Group by")
REPORT_FIGURES = re.compile(r"Procedures, n\s+\S+\s+\d+")
#: The plot box's title is set in the same refresh as its plot (the y axis may be below
#: row 30 of the pane since the report's "missed" line: the title row and the box's top).
REPORT_PLOTS = re.compile(r"─ Attempts per procedure ─[^\n]*\n[^\n]*┌")
PATIENT = re.compile(r"Patient \S+\s*\n(.*\n)*?\s*Follow-ups\s*\n\s*Procedure\s+What")


class Term:
    def __init__(self, db: Path, config: Path) -> None:
        self.sock = tempfile.mktemp(prefix="bench-screens-")
        env = {"SMA_LOG_CONFIG": str(config), "TERM": "xterm-256color"}
        cmd = [str(SMA_LOG) if SMA_LOG.exists() else "sma-log", "--db", str(db)]
        self.tmux(
            "new-session", "-d", "-s", "b", "-x", "100", "-y", "30", "env",
            *[f"{k}={v}" for k, v in env.items()], *cmd,
        )  # fmt: skip

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            [TMUX, "-S", self.sock, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "b")

    def wait(self, pattern: re.Pattern[str], timeout: float = 60.0) -> float:
        t0 = time.perf_counter()
        while not pattern.search(self.screen()):
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{pattern.pattern!r} not on screen:\n{self.screen()}")
            time.sleep(0.002)
        return time.perf_counter() - t0

    def key(self, key: str, *patterns: re.Pattern[str]) -> list[float]:
        """Send ``key``; the seconds until each pattern in turn is on screen."""
        self.tmux("send-keys", "-t", "b", key)
        t0 = time.perf_counter()
        out = []
        for p in patterns:
            self.wait(p)
            out.append(time.perf_counter() - t0)
        return out

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.sock, "kill-server"], capture_output=True)
        Path(self.sock).unlink(missing_ok=True)


def settle(term: Term, pattern: re.Pattern[str]) -> None:
    """Wait for ``pattern`` and for the screen to stop changing (workers done)."""
    term.wait(pattern)
    last, same = term.screen(), 0
    while same < 25:  # 50 ms unchanged
        time.sleep(0.002)
        now = term.screen()
        same = same + 1 if now == last else 0
        last = now


def run(db: Path, runs: int) -> dict[str, list[float]]:
    """One app on a copy of ``db`` (the app opens its file read-write)."""
    config = Path(tempfile.mkdtemp(prefix="bench-screens-cfg-")) / "settings.json"
    copy = config.parent / db.name
    shutil.copyfile(db, copy)
    term = Term(copy, config)
    samples: dict[str, list[float]] = {}
    try:
        settle(term, HOME)
        for _ in range(runs):
            t = term.key("f", QUEUE)
            samples.setdefault("queue (f)", []).append(t[0])
            settle(term, QUEUE)
            t = term.key("Escape", HOME)
            samples.setdefault("home (Esc)", []).append(t[0])
            settle(term, HOME)
            t = term.key("t", REPORT_FRAME, REPORT_FIGURES, REPORT_PLOTS)
            for name, v in zip(("report frame", "report figures", "report plots"), t, strict=True):
                samples.setdefault(f"{name} (t)", []).append(v)
            settle(term, REPORT_PLOTS)
            term.key("Escape", HOME)
            settle(term, HOME)
            # the patient page: Tab to the Patients table (open -> scores -> recent ->
            # patients), Enter on its first row
            for _ in range(3):
                term.tmux("send-keys", "-t", "b", "Tab")
                time.sleep(0.05)
            settle(term, HOME)
            t = term.key("Enter", PATIENT)
            samples.setdefault("patient page (Enter)", []).append(t[0])
            settle(term, PATIENT)
            term.key("Escape", HOME)
            settle(term, HOME)
    finally:
        term.close()
        shutil.rmtree(config.parent, ignore_errors=True)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("SMA_LOG_DB", None)
    results = {db: run(db, args.runs) for db in args.db}
    names = list(next(iter(results.values())))
    print(
        f"{'median ms (runs=' + str(args.runs) + ')':34}"
        + "".join(f"{d.name:>14}" for d in results)
    )
    for name in names:
        cells = "".join(f"{statistics.median(r[name]) * 1000:14.0f}" for r in results.values())
        print(f"{name:34}{cells}")
    for db, r in results.items():  # every sample, for the spread
        for name, v in r.items():
            print(db.name, name, " ".join(f"{x * 1000:.0f}" for x in v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
