"""A real terminal for the installed ``sma-log``: tmux on its own server socket.

Shared by the crash tests and ``benchmarks/stress_crash.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

TMUX = shutil.which("tmux")


def _sma_log() -> list[str]:
    """The ``sma-log`` installed beside the interpreter running the tests, never whichever
    is first on PATH (``venv/bin/python -m pytest`` without activating the venv)."""
    script = Path(sys.executable).parent / "sma-log"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "sma_log"]


# The command line that starts sma-log: ``[*SMA_LOG, "--db", ...]``.
SMA_LOG: list[str] = _sma_log()


class Terminal:
    """One tmux session running one command, on its own tmux server socket."""

    def __init__(
        self,
        folder: Path,
        name: str,
        command: list[str],
        env: dict[str, str],
        size: tuple[int, int] = (100, 32),
    ) -> None:
        assert TMUX is not None
        self.socket = str(folder / f"tmux-{name}")
        self.name = name
        # COLUMNS/LINES (set under pytest) would override the terminal's real size.
        env_args = ["-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items())]
        subprocess.run(
            [
                TMUX,
                "-S",
                self.socket,
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                "env",
                *env_args,
                *command,
            ],
            check=True,
        )

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        out = subprocess.run(
            [TMUX, "-S", self.socket, *args], check=True, capture_output=True, text=True
        )
        return out.stdout

    def key(self, key: str) -> None:
        self.tmux("send-keys", "-t", self.name, key)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"screen never matched; last screen:\n{text}")

    def pid(self) -> int:
        return int(self.tmux("list-panes", "-t", self.name, "-F", "#{pane_pid}").split()[0])

    def sigkill(self) -> None:
        """SIGKILL the app: no clean-up, no atexit, like a crash or a pulled plug."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # a zombie until tmux reaps it: /proc says so
            try:
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    return
            except OSError:
                return
            time.sleep(0.02)

    def kill_server(self) -> None:
        assert TMUX is not None
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True)
