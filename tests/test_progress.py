"""Progress of long commands (issue 11 item 5): a bar on a terminal, nothing in a pipe.

The terminal cases run the installed ``sma-log`` (or this Python) under a real
pseudo-terminal (python's pty module); the pipe cases under CliRunner and with
stderr a pipe.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from sma_log.cli import main
from sma_log.commands.progress import progress_bar
from sma_log.demo import write_demo

SMA_LOG = str(Path(sys.executable).with_name("sma-log"))


def _demo(path: Path, n: int = 300) -> Path:
    from datetime import UTC, datetime

    write_demo(path, procedures=n, seed=3, now=datetime(2026, 3, 27, 9, tzinfo=UTC))
    return path


def _in_terminal(argv: list[str], cwd: Path, limit: float = 120.0) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr a pseudo-terminal; all it printed."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, out.decode("utf-8", "replace")


def test_import_in_a_terminal_shows_counts_and_stage(tmp_path: Path) -> None:
    src = _demo(tmp_path / "src.db")
    rc, text = _in_terminal(
        [SMA_LOG, "--db", str(tmp_path / "new.db"), "--user", "t", "import", str(src)], tmp_path
    )
    assert rc == 0, text
    assert "Importing" in text
    assert "procedures" in text
    # the final count: every patient and procedure of the file, 100 %
    import sqlite3

    conn = sqlite3.connect(src)
    total = sum(
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("patients", "procedures")
    )
    conn.close()
    assert f"{total}/{total}" in text
    assert "100%" in text
    # the report follows on a line of its own
    assert "\nImported " in text.replace("\r\n", "\n")


def test_import_with_stderr_a_pipe_prints_no_progress(tmp_path: Path) -> None:
    src = _demo(tmp_path / "src.db")
    proc = subprocess.run(
        [SMA_LOG, "--db", str(tmp_path / "new.db"), "--user", "t", "import", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Importing" not in proc.stdout
    assert proc.stdout.startswith("Imported ")


def test_import_under_clirunner_output_unchanged(tmp_path: Path) -> None:
    src = _demo(tmp_path / "src.db", 60)
    runner = CliRunner()
    args = ["--db", str(tmp_path / "new.db"), "--user", "t", "import", str(src)]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "Importing" not in first.output and "\r" not in first.output
    assert first.stderr == ""
    dry = runner.invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Importing" not in dry.output and dry.stderr == ""
    assert dry.stdout.startswith("Dry run (nothing written)")


def test_demo_hook_counts_procedures_to_the_end(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    seen: list[int] = []
    result = write_demo(
        tmp_path / "d.db",
        procedures=2500,
        seed=1,
        now=datetime(2026, 3, 27, 9, tzinfo=UTC),
        progress=seen.append,
    )
    assert len(seen) >= 2  # one call a batch
    assert seen == sorted(seen)
    assert seen[-1] == result["procedures"] == 2500


def test_demo_with_progress_in_a_terminal(tmp_path: Path) -> None:
    """What ``sma-log demo`` does with the helper (see the lead's wiring in cli.py)."""
    code = (
        "from sma_log.commands.progress import progress_bar\n"
        "from sma_log.demo import write_demo\n"
        "with progress_bar('Writing demo', total=2500, unit='procedures') as bar:\n"
        "    write_demo('d.db', procedures=2500, seed=1, progress=bar.update_to)\n"
        "print('done')\n"
    )
    rc, text = _in_terminal([sys.executable, "-c", code], tmp_path)
    assert rc == 0, text
    assert "Writing demo" in text
    assert "2500/2500" in text and "procedures" in text
    assert text.replace("\r\n", "\n").rstrip().endswith("\ndone")


def test_helper_silent_when_not_a_terminal(tmp_path: Path) -> None:
    import io

    stream = io.StringIO()
    with progress_bar("Working", total=10, stream=stream) as bar:
        assert not bar.enabled
        for _ in bar.wrap(range(10)):
            pass
        bar.stage("x")
        bar.update_to(10)
    assert stream.getvalue() == ""
    assert bar.done == 10


def test_helper_in_a_terminal_shows_label_count_and_item(tmp_path: Path) -> None:
    code = (
        "from sma_log.commands.progress import progress_bar\n"
        "with progress_bar('Counting', total=5) as bar:\n"
        "    for i in bar.wrap(range(5)):\n"
        "        bar.stage('step-' + str(i))\n"
        "print('after')\n"
    )
    rc, text = _in_terminal([sys.executable, "-c", code], tmp_path)
    assert rc == 0, text
    assert "Counting" in text and "5/5" in text and "step-4" in text
    assert text.replace("\r\n", "\n").rstrip().endswith("\nafter")


def test_helper_refused_before_work_shows_no_bar(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from sma_log.commands.progress import progress_bar\n"
        "with progress_bar('Never', total=5) as bar:\n"
        "    pass\n"
        "print('only this')\n"
    )
    rc, text = _in_terminal([sys.executable, "-c", code], tmp_path)
    assert rc == 0, text
    assert "Never" not in text and "only this" in text


def test_the_installed_demo_and_info_check_show_progress_in_a_terminal(tmp_path: Path) -> None:
    """The commands themselves, wired in cli.py: ``demo`` and ``info --check``."""
    db = tmp_path / "d.db"
    rc, text = _in_terminal([SMA_LOG, "demo", str(db), "-n", "1500"], tmp_path)
    assert rc == 0, text
    assert "Writing demo" in text and "1500/1500" in text
    assert "\nWrote demo database" in text.replace("\r\n", "\n")
    rc, text = _in_terminal([SMA_LOG, "--db", str(db), "info", "--check"], tmp_path)
    assert rc == 0, text
    assert "Checking" in text and "3/3" in text
    assert "check:" in text and "ok" in text
    piped = subprocess.run(
        [SMA_LOG, "--db", str(db), "info", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert piped.returncode == 0 and piped.stderr == "" and "Checking" not in piped.stdout
