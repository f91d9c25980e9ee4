"""Key to screen: ``a`` on sma-log's live screen until the Attempts box changes in the
terminal, against a minimal Textual counter app (``benchmarks/counter_app.py``) until
its Label changes. Same method both sides: each app runs in its own tmux server
(100x30), the key goes in with ``send-keys`` and ``capture-pane`` is polled about
every millisecond until the change is drawn. Samples alternate (one of each in turn)
so machine noise hits both alike; medians and the ratio are printed.

    python benchmarks/key_screen.py [--runs 40] [--procedures 200] [--src DIR]

``--src`` adds sma-log run from another checkout (e.g. ``git archive HEAD~3 | tar -x -C
DIR``) through PYTHONPATH on a copy of the same file, interleaved: a before/after.

Target (issue 13): sma-log <= 1.5x the counter app. The key's commit alone is
``benchmarks/attempt_latency.py``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
TMUX = shutil.which("tmux") or "tmux"


class Term:
    """One command in its own tmux server."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.sock = tempfile.mktemp(prefix="bench-key-")
        self.tmux(
            "new-session", "-d", "-s", "b", "-x", "100", "-y", "30",
            "env", *[f"{k}={v}" for k, v in env.items()], *command,
        )  # fmt: skip

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            [TMUX, "-S", self.sock, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "b")

    def key(self, key: str) -> None:
        self.tmux("send-keys", "-t", "b", key)

    def wait_for(self, done: Callable[[str], bool], timeout: float = 20) -> str:
        t0 = time.perf_counter()
        while True:
            out = self.screen()
            if done(out):
                return out
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(out)
            time.sleep(0.001)

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.sock, "kill-server"], capture_output=True)


def attempts_box(screen: str) -> str | None:
    """The big Attempts box of the live screen (number and caption), or None."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        j = line.find(" Attempts ")
        if j >= 0 and "╭" in line[:j]:
            a, b = line.rfind("╭", 0, j), line.find("╮", j)
            return "\n".join(row[a:b] for row in lines[i + 1 : i + 7])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--procedures", type=int, default=200)
    parser.add_argument("--src", default=None, help="run sma-log from this checkout")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sma-log-bench-"))
    env = {"SMA_LOG_CONFIG": str(work / "settings.json"), "TERM": "xterm-256color"}
    sma_log = str(Path(sys.executable).with_name("sma-log"))
    db = work / "bench.db"
    subprocess.run(
        [sma_log, "demo", str(db), "--procedures", str(args.procedures)],
        check=True,
        capture_output=True,
    )
    apps = {"sma-log": Term([sma_log, "--db", str(db)], env)}
    if args.src:  # the same file copied, run from the other checkout, interleaved
        other = work / "other.db"
        shutil.copy(db, other)
        src_env = {**env, "PYTHONPATH": str(Path(args.src).resolve())}
        apps["sma-log from --src"] = Term(
            [sys.executable, "-m", "sma_log", "--db", str(other)], src_env
        )
    counter = Term([sys.executable, str(HERE / "counter_app.py")], env)
    samples: dict[str, list[float]] = {name: [] for name in [*apps, "counter"]}
    try:
        for app in apps.values():
            app.wait_for(lambda s: "IN PROGRESS" in s)
        time.sleep(1)
        for app in apps.values():
            app.key("Enter")  # home: Enter resumes the procedure in progress
            app.wait_for(lambda s: attempts_box(s) is not None)
        counter.wait_for(lambda s: "count: 0" in s)
        time.sleep(1)
        for i in range(args.runs):
            for name, app in apps.items():
                before = attempts_box(app.screen())
                app.key("a")
                t0 = time.perf_counter()
                app.wait_for(lambda s, before=before: attempts_box(s) not in (None, before))
                samples[name].append((time.perf_counter() - t0) * 1000)
                time.sleep(0.15)
            counter.key("a")
            t0 = time.perf_counter()
            counter.wait_for(lambda s, i=i: f"count: {i + 1}" in s)
            samples["counter"].append((time.perf_counter() - t0) * 1000)
            time.sleep(0.15)
        t0 = time.perf_counter()
        for _ in range(50):
            counter.screen()
        poll = (time.perf_counter() - t0) / 50 * 1000
    finally:
        for app in apps.values():
            app.close()
        counter.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved samples each")
    base = statistics.median(samples["counter"])
    for name, v in samples.items():
        q = statistics.quantiles(v, n=4)
        what = "a -> Label drawn" if name == "counter" else "a -> Attempts box drawn"
        print(
            f"{name + ' ' + what:48s} median {statistics.median(v):6.1f} ms  "
            f"IQR {q[0]:.1f}-{q[2]:.1f}  min {min(v):.1f}  {statistics.median(v) / base:.2f}x"
        )
    print(f"one capture-pane poll {poll:.1f} ms")


if __name__ == "__main__":
    main()
