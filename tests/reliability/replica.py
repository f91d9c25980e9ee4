"""The replication promise (issue 15): SIGKILL the writers and Litestream, restore.

Each *round* starts the real ``sma-log replicate`` (which runs Litestream 0.5 from the
pinned wheel) on one database, waits for its first copy, then starts one or two
*writer* processes: the Store from other processes, committing bedside actions
(a patient, a procedure start, each bedside key, the end) at bedside-to-burst pace.
After each commit a writer appends ``time kind key`` to its log (O_APPEND, before the
next action). At a random moment the writers and ``sma-log replicate`` with its
Litestream are killed with SIGKILL, in a random order. Then ``sma-log restore``
restores the replica into a new file and the copy is compared with the logs:

* every action committed more than one sync interval before Litestream was killed
  must be there (*lost beyond the interval*: must be 0); those within the last
  interval may be missing (counted: the promise allows them);
* nothing is duplicated or invented: each key once, every restored row also in the
  live file; every clinical row has its audited insert;
* the restored file is 0600.

The next round replicates the same file again (the writers go on where they
stopped). The last round ends with the drill itself: the database file (with its
-wal and -shm) is deleted and restored in its place.

Used by tests/reliability/test_replica_promise.py; the full run by hand:
``python tests/reliability/replica.py run /tmp/replica-run 5000 1`` (a new folder).
Run as ``python replica.py writer DB LOG NAME N SEED`` it is one writer.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SETUP = {
    "operator": "Dr Rossi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "local",
}
FLOW = [
    "attempt",
    "redirect",
    "flag:bone_contact",
    "attempt",
    "csf",
    "injection_start",
    "injection_end",
]
# Attempts are not audited since schema 5 (every column derived from the audited events).
CLINICAL = ("patients", "procedures", "events", "followups")


def sma_log() -> list[str]:
    script = Path(sys.executable).parent / "sma-log"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sma_log"]


# ---------------------------------------------------------------- the writer process
def writer(db: str, log: str, name: str, n: int, seed: int) -> None:
    """Commit ``n`` actions (or until killed); log each one after its commit."""
    from sma_log.domain.clock import Clock
    from sma_log.storage.store import Store

    rng = random.Random(seed)
    fd = os.open(log, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def done(kind: str, key: str) -> None:
        os.write(fd, f"{time.time():.6f} {kind} {key}\n".encode())

    def pause(i: int) -> None:
        if (i // 25) % 2 == 0:  # bedside pace, then a burst
            time.sleep(rng.uniform(0, 0.008))

    store = Store.open(db, name, clock=Clock(monotonic=False))
    count = 0
    with open(log, encoding="utf-8") as fh:
        k = sum(1 for _ in fh)  # go on where the last round stopped
    try:
        while count < n:
            k += 1
            pt = store.create_patient({"study_code": f"{name}-{seed}-{k}", "sma_type": "2"})
            done("patients", pt["id"])
            proc = store.start_procedure(pt["id"], SETUP)
            done("procedures", proc)
            seq = 1
            count += 2
            for action in FLOW:
                pause(count)
                kind, _, value = action.partition(":")
                store.record(proc, kind, value or None)
                seq += 1
                done("events", f"{proc}:{seq}")
                count += 1
            store.end_procedure(proc, {"drug_delivered": "yes"})
            seq += 1
            done("events", f"{proc}:{seq}")
            count += 1
    except Exception as exc:  # every error is counted by the test (a "locked" would be one)
        os.write(fd, f"{time.time():.6f} ERROR {type(exc).__name__}:{exc}\n".encode())
        raise
    finally:
        store.close()


# ---------------------------------------------------------------- the rounds
def _start_replicate(db: Path, replica: Path, folder: Path, interval: float) -> Any:
    err = open(folder / "replicate.log", "ab")  # noqa: SIM115 - kept open while it runs
    proc = subprocess.Popen(
        [
            *sma_log(),
            *("--db", str(db), "replicate", "--to", str(replica)),
            *("--sync-interval", str(interval), "--log", str(folder / "litestream.log")),
        ],
        stdout=err,
        stderr=err,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: sma-log and its Litestream
    )
    proc.log_file = err  # type: ignore[attr-defined]
    return proc


def _wait_first_copy(proc: Any, folder: Path, seen: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = (folder / "replicate.log").read_text(errors="replace").splitlines()
        if sum("replica in step" in line for line in lines) > seen:
            return seen + 1
        if proc.poll() is not None:
            raise AssertionError(f"sma-log replicate stopped: {lines[-3:]}")
        time.sleep(0.05)  # waiting for another process's output, not for logic
    raise AssertionError("no first copy within a minute")


def _kill_group(proc: Any) -> float:
    t = time.time()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.log_file.close()
    return t


def read_logs(folder: Path) -> tuple[list[tuple[float, str, str]], list[str]]:
    actions, errors = [], []
    for log in sorted(folder.glob("writer-*.log")):
        for line in log.read_text(encoding="utf-8").splitlines():
            t, kind, key = line.split(" ", 2)
            if kind == "ERROR":
                errors.append(key)
            else:
                actions.append((float(t), kind, key))
    return actions, errors


def _keys(conn: sqlite3.Connection) -> dict[str, list[str]]:
    return {
        "patients": [r[0] for r in conn.execute("SELECT id FROM patients")],
        "procedures": [r[0] for r in conn.execute("SELECT id FROM procedures")],
        "events": [f"{r[0]}:{r[1]}" for r in conn.execute("SELECT procedure_id, seq FROM events")],
    }


def check_copy(
    copy: Path,
    live: dict[str, set[str]],
    actions: list[tuple[float, str, str]],
    cutoff: float,
    interval: float,
    writers: int,
) -> dict[str, Any]:
    """The restored ``copy`` against the writers' logs and the live file's keys."""
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        keys = _keys(conn)
        problems = []
        logged = {a[2] for a in actions}
        in_flight: list[str] = []
        for table, values in keys.items():
            if len(values) != len(set(values)):
                problems.append(f"{table}: {len(values) - len(set(values))} duplicated")
            extra = set(values) - live[table]
            if extra & logged:
                problems.append(f"{table}: {len(extra & logged)} logged rows not in the live file")
            in_flight += sorted(extra - logged)
        # A writer killed inside COMMIT (its log frames written, SQLite's index of the
        # log not yet updated) leaves a transaction Litestream can read and ship, but
        # the live file drops it when its log restarts: an action whose commit never
        # returned (found: 3 in 63 rounds). At most one per writer: a patient or a
        # procedure start (procedure + first event) or one event.
        if len({key.split(":")[0] for key in in_flight}) > writers:
            problems.append(f"{len(in_flight)} rows not in the live file: {in_flight[:4]}")
        have = {table: set(values) for table, values in keys.items()}
        lost_beyond = [a for a in actions if a[0] < cutoff and a[2] not in have[a[1]]]
        lost_within = [a for a in actions if a[0] >= cutoff and a[2] not in have[a[1]]]
        # the oldest commit missing that was made before Litestream's kill: the lag seen
        before_kill = [cutoff + interval - a[0] for a in lost_within if a[0] < cutoff + interval]
        for table in CLINICAL:
            missing = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
                f"WHERE a.table_name = '{table}' AND a.record_id = t.id AND a.field = '*')"
            ).fetchone()[0]
            if missing:
                problems.append(f"{missing} {table} rows without an audited insert")
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return {
        "restored_actions": sum(len(v) for v in have.values()),
        "lost_beyond": len(lost_beyond),
        "lost_within": len(lost_within),
        "in_flight_shipped": len({key.split(":")[0] for key in in_flight}),
        "lag_seen_s": round(max(before_kill, default=0.0), 3),
        "problems": problems,
        "integrity": integrity,
        "mode": oct(copy.stat().st_mode & 0o777),
    }


def _live_keys(db: Path) -> dict[str, set[str]]:
    # Read-write, so SQLite recovers the log of the killed writers first: a commit whose
    # last frame reached the log as the writer was killed (before SQLite's index of the
    # log said so) is in the file, as Litestream saw it, but a read-only reader that
    # trusts the stale index does not see it (found: 2 such rows in 28 rounds).
    conn = sqlite3.connect(db)
    try:
        return {table: set(values) for table, values in _keys(conn).items()}
    finally:
        conn.close()


def _restore(replica: Path, target: Path) -> float:
    t = time.monotonic()
    out = subprocess.run(
        [*sma_log(), "restore", "--from", str(replica), "--to", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"restore failed: {out.stderr.strip()}")
    return time.monotonic() - t


def _wait_first_action(folder: Path, before: int, writers: list[Any]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(read_logs(folder)[0]) > before or any(w.poll() is not None for w in writers):
            return
        time.sleep(0.02)  # waiting for another process's output, not for logic
    raise AssertionError("the writers wrote nothing in 30 s")


def _round(
    rep: Any,
    folder: Path,
    copies: int,
    db: Path,
    n_writers: int,
    per_round: int,
    rng: random.Random,
    seed: int,
    writers: list[Any],
) -> tuple[int, str, float]:
    """One round up to the kills (``writers`` is filled with the writer processes):
    (first copies seen, kill order, Litestream's kill time)."""
    copies = _wait_first_copy(rep, folder, copies)
    writers += [
        subprocess.Popen(
            [
                *(sys.executable, __file__, "writer", str(db)),
                *(str(folder / f"writer-{w}.log"), f"w{w}", str(per_round // n_writers)),
                str(seed),
            ],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for w in range(n_writers)
    ]
    _wait_first_action(folder, len(read_logs(folder)[0]), writers)
    time.sleep(rng.uniform(0.0, 2.0))  # the random moment of the kill (not logic)
    order = rng.choice(["litestream first", "writers first", "together"])
    if order == "writers first":
        for w in writers:
            w.kill()
        time.sleep(rng.uniform(0, 0.3))
    t_kill = _kill_group(rep)
    if order == "litestream first":
        time.sleep(rng.uniform(0, 0.3))
    for w in writers:
        w.kill()
        w.wait()
    return copies, order, t_kill


def run(
    folder: Path,
    min_actions: int,
    seed: int,
    interval: float = 1.0,
    max_rounds: int = 20,
    per_round: int = 400,
) -> dict[str, Any]:
    """Kill rounds on one file until the writers committed ``min_actions`` (at least
    three rounds); figures for the test and RELIABILITY.md."""
    rng = random.Random(seed)
    db = folder / "bedside.db"
    replica = folder / "replica" / "laptop-1"
    from sma_log.storage.store import Store

    Store.open(db, "setup").close()  # a new, empty sma-log database
    figures: dict[str, Any] = {
        "rounds": [],
        "kills": 0,
        "lost_beyond": 0,
        "lost_within": 0,
        "problems": [],
        "writer_errors": [],
    }
    copies = 0
    r = 0
    while r < 3 or (len(read_logs(folder)[0]) < min_actions and r < max_rounds):
        rep = _start_replicate(db, replica, folder, interval)
        writers: list[Any] = []
        n_writers = 2 if r % 2 else 1  # two writers + Litestream together every other round
        try:
            copies, order, t_kill = _round(
                rep, folder, copies, db, n_writers, per_round, rng, seed, writers
            )
        finally:  # a failed round leaves no process behind
            if rep.poll() is None:  # not killed yet (nor reaped: its group is still its)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(rep.pid, signal.SIGKILL)
                rep.wait()
            for w in writers:
                w.kill()
                w.wait()
        figures["kills"] += 1 + len(writers)
        actions, errors = read_logs(folder)
        figures["writer_errors"] += errors
        live = _live_keys(db)
        r += 1
        last = r >= 3 and (len(actions) >= min_actions or r >= max_rounds)
        if last:  # the drill: the file is lost, restored in its place
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            target = db
        else:
            target = folder / f"restored-{r}.db"
        took = _restore(replica, target)
        result = check_copy(target, live, actions, t_kill - interval, interval, n_writers)
        result.update(round=r, writers=n_writers, order=order, restore_s=round(took, 2))
        result["actions"] = len(actions)
        figures["rounds"].append(result)
        figures["lost_beyond"] += result["lost_beyond"]
        figures["lost_within"] += result["lost_within"]
        figures["problems"] += [f"round {r}: {p}" for p in result["problems"]]
        if result["integrity"] != "ok":
            figures["problems"].append(f"round {r}: integrity {result['integrity']}")
        if result["mode"] != "0o600":
            figures["problems"].append(f"round {r}: restored file {result['mode']}")
        with open(folder / "litestream.log", "a") as fh:
            fh.write(f"==== round {r} killed at {t_kill:.6f} ({order})\n")
    figures["actions"] = len(read_logs(folder)[0])
    figures["lag_seen_s"] = max(r["lag_seen_s"] for r in figures["rounds"])
    figures["in_flight_shipped"] = sum(r["in_flight_shipped"] for r in figures["rounds"])
    return figures


def main() -> None:
    """``writer DB LOG NAME N SEED`` (one writer process), or the full run by hand:
    ``run FOLDER MIN_ACTIONS SEED [MAX_ROUNDS]`` prints the figures as JSON."""
    if sys.argv[1] == "writer":
        writer(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif sys.argv[1] == "run":
        import json

        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=False)
        start = time.monotonic()
        rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 100
        figures = run(folder, int(sys.argv[3]), int(sys.argv[4]), max_rounds=rounds)
        figures["seconds"] = round(time.monotonic() - start, 1)
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
