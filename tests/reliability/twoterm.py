"""Two terminals, one file: a bedside process and an office process on one database.

* bedside: patients, procedures and every bedside action through ``Store`` (what the
  live screen calls), alternating bedside pace (short pauses) and bursts (no pause);
* office: the follow-up queue (no answer, 72-hour answers, close/reopen) through
  ``Store``, and at intervals the real commands in a subprocess:
  ``sma-log followups --format json``, ``sma-log report --format json`` and
  ``sma-log export`` (json and sqlite).

Scores and calls are taken in their windows (issue 9: earlier ones are refused): each
bedside score travels its process's clock 5 minutes past the end and back, and the
office process runs 72 hours ahead of the bedside (pendulum travel, clock running).

Every error either process meets is counted (a "database is locked" would be one);
afterwards every write each process counted must be in the file exactly once, and
every clinical row must have its audited insert, every update its audit rows.

Used by tests/reliability/test_two_terminals.py and benchmarks/stress_two_terminals.py.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import sqlite3
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import pendulum

from sma_log.domain.clock import Clock
from sma_log.storage.store import Store

from .term import SMA_LOG

# Kept here (not imported from tests/factories.py): benchmarks/stress_two_terminals.py
# imports this module outside pytest.
SETUP = {
    "operator": "Dr Rossi",
    "regimen": "std_maintenance",
    "guidance": "us_realtime",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "local",
}
DAY3 = {
    "satisfaction": 4,
    "pdph": False,
    "radicular_pain": False,
    "nausea_vomiting": False,
    "back_pain_nrs": 2,
    "other_event_any": False,
    "contact_method": "phone",
    "assessor": "nurse",
}
FLOW = [
    "attempt",
    "redirect",
    "flag:bone_contact",
    "attempt",
    "redirect",
    "redirect",
    "flag:blood",
    "attempt",
    "csf",
    "injection_start",
    "injection_end",
]


def _pause(rng: random.Random, i: int, pace: float) -> None:
    # Bedside pace for 20 actions, then a burst of 20 at full speed.
    if (i // 20) % 2 == 0 and pace:
        time.sleep(rng.uniform(0, pace))


def bedside(path: str, n: int, seed: int, pace: float, out: Any) -> None:
    rng = random.Random(seed)
    counts = {"patients": 0, "procedures": 0, "events": 0, "scores": 0}
    errors: list[str] = []
    try:
        store = Store.open(path, "bedside", clock=Clock(monotonic=False))
        done = k = 0
        while done < n:
            k += 1
            try:
                pt = store.create_patient({"study_code": f"B-{seed}-{k}", "sma_type": "2"})
                counts["patients"] += 1
                done += 1
                proc = store.start_procedure(pt["id"], SETUP)
                counts["procedures"] += 1
                counts["events"] += 1
                done += 1
                for action in FLOW:
                    _pause(rng, done, pace)
                    kind, _, value = action.partition(":")
                    store.record(proc, kind, value or None)
                    counts["events"] += 1
                    done += 1
                if rng.random() < 0.3:
                    store.undo(proc)  # voids, adds no event
                    store.record(proc, "injection_end")
                    counts["events"] += 1
                    done += 2
                store.end_procedure(proc, {"drug_delivered": "yes"})
                counts["events"] += 1
                done += 1
                pendulum.travel_to(pendulum.now("UTC").add(minutes=5), freeze=False)
                try:  # the 5-minute score, in its window
                    store.set_score(proc, rng.randint(1, 5))
                finally:
                    pendulum.travel_back()
                counts["scores"] += 1
                done += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        store.close()
        counts["actions"] = done
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("bedside", counts, errors))


def _cli(db: str, folder: Path, args: list[str], i: int) -> str | None:
    out = subprocess.run(
        [*SMA_LOG, "--db", db, *args],
        capture_output=True,
        text=True,
        env={"SMA_LOG_CONFIG": str(folder / "settings.json"), "TZ": "UTC", "PATH": "/usr/bin"},
        timeout=120,
    )
    if out.returncode != 0:
        return f"sma-log {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}"
    if args[0] in ("followups", "report"):
        json.loads(out.stdout)
    return None


def office(path: str, n: int, seed: int, cli_every: int, folder: str, out: Any) -> None:
    rng = random.Random(seed)
    counts = {"no_answer": 0, "completed": 0, "closed": 0, "reopened": 0, "cli": 0}
    errors: list[str] = []
    work = Path(folder)
    # The office calls 72 hours after the bedside: every call is in its window.
    pendulum.travel_to(pendulum.now("UTC").add(hours=72), freeze=False)
    try:
        store = Store.open(path, "office", clock=Clock(monotonic=False))
        done = 0
        while done < n:
            if cli_every and done % cli_every == 0:
                which = counts["cli"] % 4
                args = [
                    ["followups", "--format", "json"],
                    ["report", "--format", "json"],
                    ["export", "--format", "json", "--out", str(work / f"e{done}.json")],
                    ["export", "--format", "sqlite", "--out", str(work / f"e{done}.sqlite")],
                ][which]
                problem = _cli(path, work, args, done)
                if problem:
                    errors.append(problem)
                counts["cli"] += 1
            try:
                queue = [
                    i for i in store.followup_queue(include_closed=True) if i.row["kind"] == "day3"
                ]
                if not queue:
                    time.sleep(0.01)
                    continue
                item = rng.choice(queue)
                state = item.row["state"]
                if state == "open":
                    r = rng.random()
                    if r < 0.6:
                        store.record_no_answer(item.id)
                        counts["no_answer"] += 1
                    elif r < 0.9:
                        store.complete_followup(item.id, DAY3)
                        counts["completed"] += 1
                    else:
                        store.close_followup(item.id, "unreachable", "no phone number")
                        counts["closed"] += 1
                elif state in ("unreachable", "declined"):
                    store.reopen_followup(item.id)
                    counts["reopened"] += 1
                else:
                    store.complete_followup(item.id, {**DAY3, "satisfaction": rng.randint(1, 5)})
                    counts["completed"] += 1
                done += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                done += 1
        store.close()
        counts["actions"] = done
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("office", counts, errors))


def run(folder: Path, n_bedside: int, n_office: int, cli_every: int, pace: float = 0.02) -> dict:
    db = folder / "shared.db"
    Store.open(db, "setup").close()
    ctx = mp.get_context("fork")
    q: Any = ctx.Queue()
    began = time.monotonic()
    procs = [
        ctx.Process(target=bedside, args=(str(db), n_bedside, 1, pace, q)),
        ctx.Process(target=office, args=(str(db), n_office, 2, cli_every, str(folder), q)),
    ]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        name, counts, errors = q.get(timeout=1800)
        results[name] = (counts, errors)
    for p in procs:
        p.join(timeout=60)
    seconds = time.monotonic() - began
    return check(db, results, seconds)


def check(db: Path, results: dict, seconds: float) -> dict:
    bed, bed_err = results["bedside"]
    off, off_err = results["office"]
    conn = sqlite3.connect(db)
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    lost: list[str] = []
    expect = {
        "patients": bed["patients"],
        "procedures": bed["procedures"],
        "events": bed["events"],
        "contact_attempts": off["no_answer"],
    }
    for table, n in expect.items():
        got = one(f"SELECT count(*) FROM {table}")
        if got != n:
            lost.append(f"{table}: {got} rows for {n} writes")
    scored = one("SELECT count(*) FROM procedures WHERE satisfaction_5min IS NOT NULL")
    if scored != bed["scores"]:
        lost.append(f"scores: {scored} for {bed['scores']}")
    audit_problems: list[str] = []
    # (attempts: a cache of the events, not audited since schema 5)
    for table in ("patients", "procedures", "events", "followups", "contact_attempts"):
        missing = one(
            f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
            f"WHERE a.table_name = '{table}' AND a.record_id = t.id AND a.field = '*')"
        )
        if missing:
            audit_problems.append(f"{missing} {table} rows without an audited insert")
    # Every follow-up change the office made is audited: no answers bump
    # contact_attempts_n (one audit row each); completions set satisfaction.
    bumps = one(
        "SELECT count(*) FROM audit_log a JOIN audit_tx t ON t.n = a.tx "
        "WHERE a.table_name = 'followups' AND a.field = 'contact_attempts_n' AND t.user = 'office'"
    )
    if bumps != off["no_answer"]:
        audit_problems.append(f"{bumps} audited call counts for {off['no_answer']} calls")
    from sma_log.storage import auditlog  # new values are decoded (schema 5)

    closes = sum(
        e["new_value"] is not None
        for e in auditlog.entries(conn, "a.table_name = 'followups' AND a.field = 'closed_reason'")
    )
    if closes != off["closed"]:
        audit_problems.append(f"{closes} audited closes for {off['closed']}")
    early = one("SELECT count(*) FROM followups WHERE state = 'done' AND early")
    if early:  # nobody confirmed an early score or call: the clocks took each in its window
        audit_problems.append(f"{early} scores or calls flagged early")
    integrity = one("PRAGMA integrity_check")
    from sma_log.storage import reportcache

    # Both processes' writes went through the report triggers: the kept figures match.
    audit_problems += [f"report cache: {p}" for p in reportcache.check(conn)]
    conn.close()
    errors = bed_err + off_err
    return {
        "bedside_actions": bed.get("actions", 0),
        "office_actions": off.get("actions", 0),
        "office_cli_runs": off["cli"],
        "office_counts": off,
        "errors": len(errors),
        "locked_errors": sum("lock" in e.lower() or "busy" in e.lower() for e in errors),
        "error_samples": errors[:5],
        "lost": lost,
        "audit_problems": audit_problems,
        "integrity": integrity,
        "seconds": round(seconds, 1),
    }
