"""Two real processes, each with its own Store on one file, writing at full speed."""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from pathlib import Path
from typing import Any

import pendulum
from conftest import VALID_SETUP

from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

N_ACTIONS = 300
N_PATIENTS = N_ACTIONS // 4  # create, start, end, score


def _bedside(path: str, proc_id: str, barrier: Any, out: Any) -> None:
    """Logs attempts and redirections on one open procedure."""
    errors: list[str] = []
    done = 0
    began = ended = worst = 0.0
    try:
        store = Store.open(path, "bedside", clock=Clock(monotonic=False))
        barrier.wait(timeout=30)
        began = time.monotonic()
        for i in range(N_ACTIONS):
            t = time.monotonic()
            try:
                store.record(proc_id, "attempt" if i % 2 == 0 else "redirect")
                done += 1
            except Exception as exc:
                errors.append(f"{i}: {type(exc).__name__}: {exc}")
            worst = max(worst, time.monotonic() - t)
        ended = time.monotonic()
        store.close()
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("bedside", done, errors, (began, ended, worst)))


def _office(path: str, barrier: Any, out: Any) -> None:
    """Creates patients, starts and ends their procedures, sets their scores."""
    errors: list[str] = []
    done = 0
    began = ended = worst = 0.0
    outcome = {"drug_delivered": "no", "failure_reason": "test", "fallback": "reschedule"}
    try:
        store = Store.open(path, "office", clock=Clock(monotonic=False))
        barrier.wait(timeout=30)
        began = time.monotonic()
        for i in range(N_PATIENTS):
            steps = [
                lambda i=i: store.create_patient({"study_code": f"C-{i:04d}"}),
                lambda i=i: store.start_procedure(
                    store.find_patient(f"C-{i:04d}")["id"], VALID_SETUP
                ),
                lambda i=i: store.end_procedure(_open_of(store, f"C-{i:04d}"), outcome),
                lambda i=i: _score_in_window(store, _last_of(store, f"C-{i:04d}"), 1 + i % 5),
            ]
            for step in steps:
                t = time.monotonic()
                try:
                    step()
                    done += 1
                except Exception as exc:
                    errors.append(f"{i}: {type(exc).__name__}: {exc}")
                worst = max(worst, time.monotonic() - t)
        ended = time.monotonic()
        store.close()
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("office", done, errors, (began, ended, worst)))


def _score_in_window(store: Store, proc_id: str, score: int) -> None:
    """The 5-minute score, taken 5 minutes after the end: this process's clock travels
    there (the other process keeps the real one) and comes back."""
    pendulum.travel_to(pendulum.now("UTC").add(minutes=5), freeze=False)
    try:
        store.set_score(proc_id, score)
    finally:
        pendulum.travel_back()


def _open_of(store: Store, code: str) -> str:
    row = store.one(
        "SELECT p.id FROM procedures p JOIN patients pt ON pt.id = p.patient_id "
        "WHERE pt.study_code = ? AND p.status = 'open'",
        (code,),
    )
    assert row is not None
    return str(row["id"])


def _last_of(store: Store, code: str) -> str:
    row = store.one(
        "SELECT p.id FROM procedures p JOIN patients pt ON pt.id = p.patient_id "
        "WHERE pt.study_code = ? ORDER BY p.started_at DESC LIMIT 1",
        (code,),
    )
    assert row is not None
    return str(row["id"])


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with Store.open(path, "setup", clock=Clock(monotonic=False)) as s:
        patient = s.create_patient({"study_code": "BEDSIDE-1"})
        proc_id = s.start_procedure(patient["id"], VALID_SETUP)

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_bedside, args=(str(path), proc_id, barrier, out)),
        ctx.Process(target=_office, args=(str(path), barrier, out)),
    ]
    for w in workers:
        w.start()
    got = [out.get(timeout=120) for _ in workers]
    results = {name: (done, errors) for name, done, errors, _ in got}
    timing = {name: t for name, _, _, t in got}
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0

    assert results["bedside"] == (N_ACTIONS, [])
    assert results["office"] == (N_PATIENTS * 4, [])

    with Store.open(path, "checker", clock=Clock(monotonic=False)) as s:
        c = s.conn
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        # bedside: every action landed, in order
        view = s.load_procedure(proc_id)
        kinds = [e.kind for e in view.events]
        assert kinds == ["start"] + ["attempt", "redirect"] * (N_ACTIONS // 2)
        assert [r[0] for r in c.execute(
            "SELECT seq FROM events WHERE procedure_id = ? ORDER BY seq", (proc_id,)
        )] == list(range(1, N_ACTIONS + 2))  # fmt: skip
        assert view.row["attempts_n"] == N_ACTIONS // 2
        assert view.row["redirections_n"] == N_ACTIONS // 2
        n_attempts = c.execute(
            "SELECT count(*) FROM attempts WHERE procedure_id = ?", (proc_id,)
        ).fetchone()[0]
        assert n_attempts == N_ACTIONS // 2
        # office: every patient, procedure, end and score landed
        assert s.counts()["patients"] == N_PATIENTS + 1
        scored = c.execute(
            "SELECT count(*) FROM procedures WHERE status = 'ended' AND satisfaction_5min "
            "BETWEEN 1 AND 5 AND patient_id != ?",
            (patient["id"],),
        ).fetchone()[0]
        assert scored == N_PATIENTS
        in_window = c.execute(
            "SELECT count(*) FROM followups WHERE kind = 'score_5min' AND state = 'done' "
            "AND NOT early AND NOT late AND offset_min >= 4"
        ).fetchone()[0]
        assert in_window == N_PATIENTS
        # the audit log is complete: one insert row per clinical row, by the right user
        # (attempts: a cache of the events, not audited since schema 5)
        for table in ("patients", "procedures", "events"):
            missing = c.execute(
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
                "WHERE a.table_name = ? AND a.record_id = t.id AND a.field = '*')",
                (table,),
            ).fetchone()[0]
            assert missing == 0, table
            extra = c.execute(
                f"SELECT count(*) FROM audit_log a WHERE a.table_name = ? AND a.field = "
                f"'*' AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = a.record_id)",
                (table,),
            ).fetchone()[0]
            assert extra == 0, table
        users = dict(
            c.execute(
                "SELECT t.user, count(*) FROM audit_log a JOIN audit_tx t ON t.n = a.tx "
                "GROUP BY t.user"
            ).fetchall()
        )
        assert set(users) == {"setup", "bedside", "office"}
        # Both writers were busy at the same time (CLOCK_MONOTONIC is system-wide). Their
        # commits do not interleave finely: the waiting one backs off in SQLite's busy
        # handler while the other commits in a tight loop, so commits come in long runs.
        (b0, b1, b_worst), (o0, o1, o_worst) = timing["bedside"], timing["office"]
        assert b0 < o1 and o0 < b1, timing
        assert max(b_worst, o_worst) < 10.0, timing  # far inside the 15 s busy timeout
        score_updates = c.execute(
            "SELECT count(*) FROM audit_log a JOIN audit_tx t ON t.n = a.tx "
            "WHERE a.field = 'satisfaction_5min' AND t.user = 'office'"
        ).fetchone()[0]
        assert score_updates == N_PATIENTS
        redirect_updates = c.execute(
            "SELECT count(*) FROM audit_log a JOIN audit_tx t ON t.n = a.tx JOIN events e "
            "ON e.id = a.record_id WHERE a.table_name = 'events' AND a.field = '*' "
            "AND e.kind = 'redirect' AND t.user = 'bedside'"
        ).fetchone()[0]
        assert redirect_updates == N_ACTIONS // 2
