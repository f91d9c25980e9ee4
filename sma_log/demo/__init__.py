"""Demo data: a realistic, deterministic sma-log database for looking around and benchmarks.

``write_demo(path, procedures=60, seed=1, now=...)`` writes a new database whose
contents depend only on ``seed`` and ``now`` (same inputs, identical table contents,
ULIDs included). ``sma-log --demo`` uses :func:`demo_database` for a throw-away copy.

What is in it (all invented; study codes ``DEMO-001`` …):

* patients of SMA types 1–4 with birth years, sex and motor status that fit the type,
  and a spine (Cobb angle 0–110°, axial rotation, hardware, BMI) that drives how
  hard their punctures are;
* each patient's procedures on the label's schedule (12 mg loading days 0, 14, 28, 63
  then every ~4 months; some already on maintenance; a few on the 50/28 mg high-dose
  regimen or switching to it), on weekdays in clinic hours, all in the past;
* set-ups mostly ultrasound (pre-puncture marking or real-time) with a paramedian
  approach, some midline, and fluoroscopy/CT with transforaminal access for fused
  spines; sedation mostly none;
* timelines: 1–6 attempts (more with severe scoliosis, rotation, fusion, obesity),
  redirections, bone-contact/paraesthesia/blood flags, occasional level changes,
  notes, sedation changes and an undone (voided) redirection; procedure times of
  roughly 2–30 minutes; a few failures with a reason and a fallback;
* satisfaction at 5 minutes mostly 4–5; the two most recent ended procedures (and a
  rare older one) still have the score pending;
* exactly one procedure still open, started a few minutes before ``now``;
* the follow-ups the Store schedules at each end (5-minute score due end + 5 min,
  72-hour call due end + 72 h, in UTC), as of ``now``: the 5-minute one done iff the
  procedure has its score; the 72-hour ones of the last days upcoming, due or overdue
  (some with unanswered calls, three patients always have one around today), older ones
  mostly done (satisfaction mostly 4–5, a few PDPH with onset, severity and treatment,
  some back pain; a few entered late), some "not reachable" or "declined", and a few of
  the last month left open, i.e. missed.

How it stays consistent with the app: the timeline is generated as events, and the
derived columns of ``procedures`` and the rows of ``attempts`` are computed from those
events by :func:`sma_log.domain.timeline.replay`, mapped to columns exactly as
``Store._sync_derived`` maps them (``tests/test_demo.py`` runs the Store's own
``_sync_derived`` on a demo file, and replays a demo through the Store's public
methods, and checks that nothing differs).

Speed: rows are generated in Python and written with ``executemany`` in one
``BEGIN IMMEDIATE`` transaction (in chunks), not through the per-action Store methods
(each of which is its own fsync'd transaction). 100k procedures take seconds.

Audit log (a deliberate choice): the app audits every insert/update of every clinical
row as it happens. A demo has no history of people doing things, and one audit row per
event/attempt/update would triple the file for nothing, so the demo writes exactly one
``audit_log`` row per inserted patient, procedure, follow-up and contact attempt:
action ``insert``, field ``*``, user ``demo``, at the record's creation time, new
value = the row as finally written (JSON, as the Store writes it). Events and
attempts are not audited individually. A ``meta`` row ``demo`` (JSON: seed, procedures, now)
marks the file as a demo database; ``sma-log demo --force`` only ever replaces files carrying it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ulid.base32 import ENCODE as CROCKFORD

from .domain import fields, schedule, timeline, vocab
from .storage import reportcache
from .storage.errors import DatabaseRefused, StorageError
from .storage.store import Store

DEMO_USER = "demo"
DEMO_FILE_NAME = "sma-log-demo.db"
DEMO_META_KEY = "demo"
GENERATOR_VERSION = 2  # 2: follow-ups and contact attempts

_EPOCH = datetime(1970, 1, 1)
_SEC = 1_000_000
_MIN = 60 * _SEC
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_CHUNK = 2_000  # procedures per executemany batch

OPERATORS = ("Dr Conti", "Dr Greco", "Dr Marino", "Dr Ferrari", "Dr Romano")
ASSISTANTS = ("Nurse Bruno", "Nurse Gallo", "Nurse Costa", "Nurse Fontana")
FAILURE_REASONS = (
    "No CSF after {n} attempts",
    "Bone contact at every interspace; severe rotation",
    "No acoustic window through the fusion mass",
    "Patient could not tolerate the position",
)
PROCEDURE_NOTES = (
    "Patient anxious; paused for reassurance",
    "Parent present, holding hand",
    "Rescanned before the next attempt",
    "Long needle needed",
    "Brief vasovagal episode, resolved lying flat",
)
CLOSE_REASONS = {
    "unreachable": ("No answer after 3 calls", "Phone number not in service"),
    "declined": ("Family declined the call", "Patient asked not to be called"),
}
OTHER_EVENTS = (
    "Mild fever the evening after, resolved without treatment",
    "Dizziness on standing for a day",
    "Bruise at the puncture site",
)
OUTCOME_NOTES = (
    "Uneventful after a difficult start",
    "Patient asked for the same operator next time",
    "Consider CT guidance next time",
)

PATIENT_COLUMNS = (
    "id",
    "study_code",
    "sma_type",
    "birth_year",
    "sex",
    "motor_status",
    "created_at",
    "updated_at",
)
PROCEDURE_COLUMNS = (
    "id",
    "patient_id",
    "status",
    "operator",
    "assistant",
    "regimen",
    "dose_mg",
    "guidance",
    "approach",
    "level_intended",
    "level_final",
    "position",
    "needle_tip",
    "needle_gauge",
    "needle_length_mm",
    "cobb_angle",
    "axial_rotation",
    "hardware",
    "bmi",
    "sedation",
    "sedation_agent",
    "csf_removed_ml",
    "csf_appearance",
    "drug_delivered",
    "failure_reason",
    "fallback",
    "note",
    "satisfaction_5min",
    "started_at",
    "ended_at",
    "anchor_boot_id",
    "anchor_boottime",
    "attempts_n",
    "redirections_n",
    "first_attempt_success",
    "first_puncture_at",
    "csf_at",
    "injection_start_at",
    "injection_end_at",
    "procedure_min",
    "puncture_min",
    "created_at",
    "updated_at",
    "cancelled_at",
    "cancel_reason",
)
FOLLOWUP_COLUMNS = (
    "id",
    "procedure_id",
    "kind",
    "due_at",
    "state",
    "closed_reason",
    "completed_at",
    "late",
    "contact_attempts_n",
    "last_contact_at",
    "satisfaction",
    "pdph",
    "pdph_onset_hours",
    "pdph_orthostatic",
    "pdph_severity",
    "pdph_treatment",
    "pdph_resolved",
    "back_pain_nrs",
    "radicular_pain",
    "nausea_vomiting",
    "other_event",
    "other_event_serious",
    "contact_method",
    "assessor",
    "created_at",
    "updated_at",
    "early",
    "offset_min",
    "other_event_any",
)
CONTACT_ATTEMPT_COLUMNS = ("id", "followup_id", "at", "outcome", "by_user", "note", "voided_at")
#: The follow-up answers (``complete_followup`` writes all of them, unanswered ones None).
ANSWER_COLUMNS = tuple(fields.FOLLOWUP_FIELDS)
ATTEMPT_COLUMNS = (
    "id",
    "procedure_id",
    "number",
    "at",
    "level",
    "approach",
    "redirections",
    "bone_contact",
    "paraesthesia",
    "blood",
    "csf_obtained",
    "voided",
)
EVENT_COLUMNS = (
    "id",
    "procedure_id",
    "seq",
    "kind",
    "at",
    "value",
    "attempt_id",
    "voided_at",
    "recorded_by",
)
AUDIT_COLUMNS = (
    "id",
    "at",
    "user",
    "action",
    "table_name",
    "record_id",
    "field",
    "old_value",
    "new_value",
)
_LEVELS = vocab.codes(vocab.LEVELS)
#: Patients (by index) whose last procedure was this many days before today, so the
#: queue always has 72-hour calls around "now" (due today, tomorrow, yesterday).
RECENT_DAYS_AGO = {3: 3, 4: 2, 5: 4}
# Crockford base32 (the ULID alphabet), two digits at a time: 26 digits = 13 pairs.
_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


class DemoRefused(StorageError):
    """The demo file cannot be written where asked (exists, or is not a demo database)."""


def _offset_min(end: int, at: int) -> float:
    """Minutes from the end to ``at`` (microseconds), as the Store stores them."""
    return timeline.whole_second_minutes((at - end) / _SEC)


def _text(us: int) -> str:
    """Microseconds since the epoch → the stored form (same as ``clock.to_text``)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _to_us(now: Any) -> int:
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    # A plain datetime (a pendulum DateTime's subtraction returns an Interval).
    now = datetime(*now.timetuple()[:6], now.microsecond)
    return (now - _EPOCH) // timedelta(microseconds=1)


def _audit_json(row: dict[str, Any]) -> str:
    # The same text Store._insert writes for an insert: the row without its id.
    return json.dumps(
        {k: v for k, v in row.items() if k != "id"}, ensure_ascii=False, sort_keys=True
    )


def derived_columns(state: timeline.State) -> dict[str, Any]:
    """The procedure's derived columns, exactly as the Store writes them."""
    return timeline.derived_columns(
        state, lambda dt: _text((dt - _EPOCH) // timedelta(microseconds=1))
    )


def attempt_rows(state: timeline.State, proc_id: str) -> list[dict[str, Any]]:
    """The ``attempts`` rows of a replayed state (as ``Store._sync_derived`` inserts them)."""
    rows = []
    for att in [*state.attempts, *state.voided_attempts]:
        rows.append(
            {
                "id": att.id,
                "procedure_id": proc_id,
                "at": _text((att.at - _EPOCH) // timedelta(microseconds=1)),
                **timeline.attempt_columns(att),
            }
        )
    return rows


class _Generator:
    def __init__(self, procedures: int, seed: int, now_us: int) -> None:
        self.n = procedures
        self.now = now_us
        self.rng = random.Random(f"sma-log-demo-data-{seed}")
        self.id_rng = random.Random(f"sma-log-demo-ids-{seed}")
        self.today = now_us - now_us % _DAY
        self.year = _dt(now_us).year
        self.open_id: str | None = None
        self.pending = 0
        self.followups = self.open_followups = self.contact_attempts = 0
        # Follow-ups draw from their own streams, so adding them left the patients,
        # procedures and events of a seed as they were.
        self.fu_rng = random.Random(f"sma-log-demo-followups-{seed}")
        self.fu_id_rng = random.Random(f"sma-log-demo-followup-ids-{seed}")

    # ------------------------------------------------------------------ helpers
    def _id(self, us: int) -> str:
        """A ULID for the instant ``us``: 48-bit milliseconds + 80 seeded random bits."""
        value = (us // 1000) << 80 | self.id_rng.getrandbits(80)
        return "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])

    def _fid(self, us: int) -> str:
        """A follow-up or contact-attempt ULID (its own random stream)."""
        value = (us // 1000) << 80 | self.fu_id_rng.getrandbits(80)
        return "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])

    def _sec(self, lo: float, hi: float) -> int:
        return int(self.rng.uniform(lo, hi) * _SEC)

    def _pick(self, weighted: dict[Any, float]) -> Any:
        return self.rng.choices(tuple(weighted), tuple(weighted.values()))[0]

    def _poisson(self, mean: float, cap: int) -> int:
        limit, k, p = math.exp(-mean), 0, self.rng.random()
        while p > limit and k < cap:
            k += 1
            p *= self.rng.random()
        return k

    # ------------------------------------------------------------------ patients
    def _procedure_counts(self) -> list[int]:
        patients = max(1, min(self.n, round(self.n / 3.5)))
        counts = [1] * patients
        weights = [self.rng.uniform(0.2, 1.8) for _ in range(patients)]
        for i in self.rng.choices(range(patients), weights, k=self.n - patients):
            counts[i] += 1
        return counts

    def _patient_profile(self) -> dict[str, Any]:
        rng = self.rng
        sma_type = self._pick({1: 20, 2: 45, 3: 30, 4: 5})
        age = {
            1: rng.randint(1, 12),
            2: rng.randint(2, 30),
            3: rng.randint(4, 55),
            4: rng.randint(25, 65),
        }[sma_type]
        motor = {
            1: "non_sitter",
            2: "sitter" if rng.random() < 0.8 else "non_sitter",
            3: "walker" if rng.random() < 0.55 else "sitter",
            4: "walker",
        }[sma_type]
        cobb = {
            1: rng.triangular(0, 60, 15),
            2: rng.triangular(5, 110, 55),
            3: rng.triangular(0, 60, 8),
            4: rng.triangular(0, 20, 3),
        }[sma_type]
        cobb = float(round(cobb))
        hardware = "none"
        if cobb > 40 and sma_type in (1, 2, 3):
            r = rng.random()
            if age >= 11 and r < 0.5:
                hardware = "laminotomy_window" if rng.random() < 0.1 else "posterior_fusion"
            elif age < 11 and r < 0.3:
                hardware = "growing_rods"
        rot_score = cobb / 30 + rng.uniform(-0.6, 0.6)
        rotation = (
            "none"
            if rot_score < 0.5
            else "mild"
            if rot_score < 1.2
            else "moderate"
            if rot_score < 2.0
            else "severe"
        )
        if sma_type in (1, 2):
            bmi = min(30.0, max(11.0, rng.gauss(16.5, 3)))
        else:
            bmi = min(45.0, max(14.0, rng.gauss(23, 5)))
        bmi = round(bmi, 1)
        difficulty = (
            min(cobb, 110) / 110 * 0.55
            + {"none": 0, "mild": 0.05, "moderate": 0.12, "severe": 0.25}[rotation]
            + {"none": 0, "growing_rods": 0.1, "posterior_fusion": 0.25}.get(hardware, 0.1)
            + (0.15 if bmi >= 30 else 0)
        )
        # The set-up carried from procedure to procedure.
        if hardware == "posterior_fusion":
            guidance = self._pick({"ct": 55, "fluoroscopy": 30, "us_realtime": 15})
            approach = (
                "transforaminal"
                if guidance != "us_realtime" and rng.random() < 0.75
                else "paramedian"
            )
        elif hardware == "laminotomy_window":
            guidance = self._pick({"us_realtime": 50, "fluoroscopy": 50})
            approach = self._pick({"paramedian": 50, "other": 50})
        else:
            guidance = self._pick(
                {"us_marking": 55, "us_realtime": 30, "landmark": 10, "fluoroscopy": 5}
            )
            midline = 0.7 if guidance == "landmark" else 0.22
            approach = "midline" if rng.random() < midline else "paramedian"
        if guidance == "ct":
            position = "prone"
        elif motor == "walker" and rng.random() < 0.3:
            position = "sitting"
        else:
            position = rng.choice(("lateral_left", "lateral_right"))
        tip = "pencil_point" if rng.random() < 0.6 else "quincke"
        gauge = rng.choice((22, 24, 25)) if tip == "pencil_point" else rng.choice((20, 22))
        length = 90
        if approach == "transforaminal":
            length = 150
        elif bmi >= 30 or cobb > 60:
            length = 120
        if age < 6:
            sedation = self._pick({"none": 55, "local": 10, "iv_sedation": 25, "general": 10})
        else:
            sedation = self._pick(
                {"none": 80, "local": 10, "oral_anxiolytic": 6, "iv_sedation": 3, "general": 1}
            )
        agent = None
        if sedation == "iv_sedation":
            agent = rng.choice(("midazolam", "propofol", "dexmedetomidine"))
        elif sedation == "general":
            agent = "sevoflurane"
        return {
            "patient": {
                "sma_type": sma_type,
                "birth_year": self.year - age,
                "sex": self._pick({"female": 49, "male": 50, "other": 1}),
                "motor_status": motor,
            },
            "difficulty": difficulty,
            "setup": {
                "operator": rng.choice(OPERATORS),
                "assistant": rng.choice((*ASSISTANTS, None)),
                "guidance": guidance,
                "approach": approach,
                "level_intended": self._pick({"L3-L4": 55, "L4-L5": 40, "L2-L3": 5}),
                "position": position,
                "needle_tip": tip,
                "needle_gauge": gauge,
                "needle_length_mm": length,
                "cobb_angle": cobb,
                "axial_rotation": rotation,
                "hardware": hardware,
                "bmi": bmi,
                "sedation": sedation,
                "sedation_agent": agent,
            },
        }

    def _schedule(self, k: int) -> list[tuple[int, str]]:
        """``k`` (day offset from the first dose, regimen) pairs for one patient."""
        rng = self.rng
        kind = self._pick({"ongoing": 45, "new_std": 48, "new_high": 7})
        if kind == "new_std":
            plan = [(0, "std_loading_1"), (14, "std_loading_2"), (28, "std_loading_3")]
            plan.append((63, "std_loading_4"))
        elif kind == "new_high":
            plan = [(0, "high_loading_1"), (14, "high_loading_2")]
        else:
            plan = [(0, "std_maintenance")]
        switch_at = rng.randint(5, 9) if kind != "new_high" and rng.random() < 0.1 else None
        while len(plan) < k:
            day = plan[-1][0] + 120 + rng.randint(-4, 10)
            maintenance = "high_maintenance" if plan[-1][1].startswith("high") else None
            if switch_at is not None and len(plan) == switch_at:
                plan.append((day, "high_loading_1"))  # one 50 mg dose in place of the next 12 mg
            else:
                plan.append((day, maintenance or "std_maintenance"))
        return plan[:k]

    def _clinic_start(self, day_start: int) -> int:
        weekday = _dt(day_start).weekday()
        if weekday >= 5:  # Saturday/Sunday → the Friday before
            day_start -= (weekday - 4) * _DAY
        return day_start + 7 * _HOUR + 30 * _MIN + self._sec(0, 7.5 * 3600)

    # ------------------------------------------------------------------ procedures
    def _timeline(
        self, t0: int, setup: dict[str, Any], difficulty: float
    ) -> tuple[list[tuple[str, int, str | None, int | None]], bool, int]:
        """Raw events ``(kind, at, value, voided_at)``; whether it failed; attempt count."""
        rng = self.rng
        d = difficulty
        p_success = min(0.82, max(0.2, 0.75 - 0.55 * d))
        attempts = 1
        while attempts < 6 and rng.random() > p_success:
            attempts += 1
        failed = attempts >= 4 and rng.random() < 0.04 + 0.3 * d
        guidance = setup["guidance"]
        # As Store.start_procedure writes it: "code|agent", or the bare code.
        start = "|".join(v for v in (setup["sedation"], setup["sedation_agent"]) if v)
        events: list[tuple[str, int, str | None, int | None]] = [("start", t0, start, None)]
        prep = {
            "us_marking": (120, 420),
            "us_realtime": (60, 240),
            "landmark": (30, 120),
            "fluoroscopy": (180, 480),
            "ct": (240, 600),
        }[guidance]
        t = t0 + self._sec(*prep)
        level, approach = setup["level_intended"], setup["approach"]
        sedate_at = (
            2
            if setup["sedation"] in ("none", "local") and attempts >= 3 and rng.random() < 0.15
            else 0
        )
        voided_done = rng.random() > 0.04
        for n in range(1, attempts + 1):
            if n > 1:
                t += self._sec(40, 150) + (self._sec(30, 90) if guidance == "ct" else 0)
            events.append(("attempt", t, None, None))
            if n > 1 and rng.random() < 0.35:
                i = _LEVELS.index(level)
                level = _LEVELS[max(0, min(len(_LEVELS) - 1, i + rng.choice((-1, 1))))]
                if approach == "midline" and rng.random() < 0.5:
                    approach = "paramedian"
                t += self._sec(5, 20)
                events.append(("attempt_detail", t, f"{level}|{approach}", None))
            success_here = n == attempts and not failed
            actions = ["redirect"] * self._poisson(0.4 + 2.2 * d, 6)
            if rng.random() < (0.1 if success_here else 0.25 + 0.5 * d):
                actions.append("bone_contact")
            if rng.random() < 0.04:
                actions.append("paraesthesia")
            if rng.random() < 0.05:
                actions.append("blood")
            rng.shuffle(actions)
            for action in actions:
                t += self._sec(8, 40)
                if action == "redirect":
                    events.append(("redirect", t, None, None))
                    if not voided_done:  # a key pressed twice, undone a moment later
                        voided_done = True
                        t += self._sec(1, 2)
                        undo = t + self._sec(2, 5)
                        events.append(("redirect", t, None, undo))
                        t = undo
                else:
                    events.append(("flag", t, action, None))
            if n == sedate_at:
                t += self._sec(20, 60)
                code = self._pick({"oral_anxiolytic": 50, "iv_sedation": 50})
                # As Store.record stores it: "code|agent", or the bare code without an agent.
                value = "iv_sedation|midazolam" if code == "iv_sedation" else code
                events.append(("sedation", t, value, None))
        if rng.random() < 0.05:
            t += self._sec(10, 60)
            events.append(("note", t, rng.choice(PROCEDURE_NOTES), None))
        if failed:
            t += self._sec(60, 300)
            events.append(("end", t, "failed", None))
        else:
            t += self._sec(10, 40)
            events.append(("csf", t, None, None))
            t += self._sec(30, 150)  # about 5 mL of CSF let out first
            events.append(("injection_start", t, None, None))
            t += self._sec(60, 180)
            events.append(("injection_end", t, None, None))
            t += self._sec(20, 120)
            events.append(("end", t, "delivered", None))
        return events, failed, attempts

    def _procedure(
        self,
        patient_id: str,
        t0: int,
        regimen: str,
        profile: dict[str, Any],
        mode: str,
    ) -> tuple[dict[str, Any], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """One procedure: its row, attempts rows and events rows.

        ``mode``: "ended", "pending" (ended, score not yet taken) or "open".
        """
        rng = self.rng
        setup = dict(profile["setup"])
        if rng.random() < 0.1:  # the set-up is not always the same as last time
            setup["level_intended"] = self._pick({"L3-L4": 55, "L4-L5": 40, "L2-L3": 5})
        if rng.random() < 0.15:
            setup["operator"] = rng.choice(OPERATORS)
        raw, failed, attempts_n = self._timeline(t0, setup, profile["difficulty"])
        if mode == "open":
            duration = raw[-1][1] - t0
            elapsed = min(self._sec(180, 540), int(duration * 0.7))
            shift = self.now - elapsed - t0
            raw = [
                (k, at + shift, v, None if vo is None else vo + shift)
                for k, at, v, vo in raw
                if at + shift <= self.now and (vo is None or vo + shift <= self.now)
            ]
            t0 += shift
        proc_id = self._id(t0)
        events: list[timeline.Event] = []
        event_rows: list[tuple[Any, ...]] = []
        current: str | None = None
        for seq, (kind, at, value, voided_at) in enumerate(raw, start=1):
            ev_id = self._id(at)
            # As Store.record: the current attempt, except on attempts, the start and the end.
            attempt_id = current if kind not in ("attempt", "start", "end") else None
            if kind == "attempt":
                current = ev_id
            events.append(
                timeline.Event(ev_id, kind, _dt(at), value, attempt_id, voided_at is not None)
            )
            event_rows.append(
                (
                    ev_id,
                    proc_id,
                    seq,
                    kind,
                    _text(at),
                    value,
                    attempt_id,
                    None if voided_at is None else _text(voided_at),
                    DEMO_USER,
                )
            )
        state = timeline.replay(events, setup["level_intended"], setup["approach"])
        row: dict[str, Any] = {
            "id": proc_id,
            "patient_id": patient_id,
            "status": "open",
            **setup,
            "regimen": regimen,
            "dose_mg": float(vocab.DOSE_MG[regimen]),
            "level_final": None,
            "csf_removed_ml": 5.0,
            "csf_appearance": None,
            "drug_delivered": None,
            "failure_reason": None,
            "fallback": None,
            "note": None,
            "satisfaction_5min": None,
            "started_at": _text(t0),
            "ended_at": None,
            "anchor_boot_id": None,
            "anchor_boottime": None,
            **derived_columns(state),
            "created_at": _text(t0),
            "updated_at": _text(raw[-1][1]),
            "cancelled_at": None,
            "cancel_reason": None,
        }
        if mode != "open":
            end_us = raw[-1][1]
            row["status"] = "ended"
            row["ended_at"] = _text(end_us)
            row["updated_at"] = _text(end_us)
            if failed:
                row["drug_delivered"] = 0
                row["failure_reason"] = rng.choice(FAILURE_REASONS).format(n=attempts_n)
                row["fallback"] = (
                    "reschedule"
                    if setup["guidance"] == "ct"
                    else self._pick({"ct": 40, "fluoroscopy": 40, "reschedule": 20})
                )
                row["csf_removed_ml"] = 0.0
            else:
                row["drug_delivered"] = 1
                row["level_final"] = state.current.level if state.current else None
                row["csf_removed_ml"] = self._pick({5.0: 85, 4.0: 5, 6.0: 5, 3.0: 5})
                blood = any(a.blood for a in state.attempts)
                row["csf_appearance"] = (
                    "blood_tinged"
                    if blood and rng.random() < 0.6
                    else self._pick({"clear": 94, "blood_tinged": 5, "xanthochromic": 1})
                )
            if rng.random() < 0.03:
                row["note"] = rng.choice(OUTCOME_NOTES)
            if mode == "pending" or rng.random() < 0.005:
                self.pending += 1
            else:
                if failed:
                    score = self._pick({4: 30, 3: 40, 2: 25, 1: 5})
                elif attempts_n >= 4:
                    score = self._pick({5: 45, 4: 35, 3: 15, 2: 5})
                else:
                    score = self._pick({5: 74, 4: 21, 3: 4, 2: 1})
                row["satisfaction_5min"] = score
                row["updated_at"] = _text(end_us + self._sec(240, 420))
        else:
            self.open_id = proc_id
        attempts = [tuple(a[c] for c in ATTEMPT_COLUMNS) for a in attempt_rows(state, proc_id)]
        return row, attempts, event_rows

    def batches(self) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
        """Rows to insert, in batches of whole patients (parents before children)."""
        counts = self._procedure_counts()
        width = max(3, len(str(len(counts))))
        batch: dict[str, list[tuple[Any, ...]]] = _empty()
        procs_in_batch = 0
        for i, k in enumerate(counts):
            profile = self._patient_profile()
            plan = self._schedule(k)
            last_offset = plan[-1][0]
            if i == 0:  # the open procedure: started a few minutes ago (shifted below)
                last_start = self.now - self._sec(180, 540)
            elif i == 1:  # ended within the hour: score pending
                last_start = self.now - self._sec(50 * 60, 75 * 60)
            elif i == 2:  # ended earlier today: score pending
                last_start = self.now - self._sec(150 * 60, 220 * 60)
            else:
                last_start = None
            days_ago = self.rng.randint(1, 120)
            if i in RECENT_DAYS_AGO:  # a 72-hour call due today, one tomorrow, one late
                days_ago = RECENT_DAYS_AGO[i]
            last_day = self.today - days_ago * _DAY if last_start is None else self.today
            starts = []
            for j, (offset, regimen) in enumerate(plan):
                if j == k - 1 and last_start is not None:
                    starts.append((last_start, regimen))
                else:
                    day = last_day - (last_offset - offset) * _DAY
                    starts.append((self._clinic_start(day), regimen))
            created = starts[0][0] - self._sec(300, 1800)
            patient_id = self._id(created)
            patient = {
                "id": patient_id,
                "study_code": f"DEMO-{i + 1:0{width}d}",
                **profile["patient"],
                "created_at": _text(created),
                "updated_at": _text(created),
            }
            batch["patients"].append(tuple(patient[c] for c in PATIENT_COLUMNS))
            batch["audit_log"].append(self._audit(created, "patients", patient))
            for j, (start, regimen) in enumerate(starts):
                last = j == k - 1
                mode = "ended"
                if last and i == 0:
                    mode = "open"
                elif last and i in (1, 2):
                    mode = "pending"
                row, attempts, events = self._procedure(patient_id, start, regimen, profile, mode)
                batch["procedures"].append(tuple(row[c] for c in PROCEDURE_COLUMNS))
                batch["attempts"].extend(attempts)
                batch["events"].extend(events)
                batch["audit_log"].append(self._audit(_us_of(row["created_at"]), "procedures", row))
                if row["status"] == "ended":
                    made, calls = self._followups(row)
                    for table, records in (("followups", made), ("contact_attempts", calls)):
                        columns = _COLUMNS[table]
                        for rec in records:
                            batch[table].append(tuple(rec[c] for c in columns))
                            at = rec["created_at"] if table == "followups" else rec["at"]
                            batch["audit_log"].append(self._audit(_us_of(at), table, rec, True))
                    self.followups += len(made)
                    self.open_followups += sum(r["state"] == "open" for r in made)
                    self.contact_attempts += len(calls)
                procs_in_batch += 1
            if procs_in_batch >= _CHUNK:
                yield batch
                batch, procs_in_batch = _empty(), 0
        if any(batch.values()):
            yield batch

    # ------------------------------------------------------------------ follow-ups
    def _followups(self, proc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The follow-ups of an ended procedure and their contact attempts, as of ``now``.

        As the Store writes them: both kinds scheduled at the end (created_at = the
        end; ``updated_at`` = the last change), due end + 5 min / + 72 h
        in UTC (``schedule.due_at``). The 5-minute one is done iff the procedure has its
        score (closed by ``set_score``: satisfaction, completed_at, late). The 72-hour
        one gets a whole history planned (no-answer calls, then answers, "not reachable"
        or "declined", or nothing) and only what happened before ``now`` is kept, so
        recent ones are upcoming or due, some overdue with calls, older ones mostly done,
        a few missed.
        """
        end = _us_of(proc["ended_at"])
        stamp = proc["ended_at"]
        made: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for kind, _ in schedule.FOLLOWUP_KINDS:
            delay = schedule.FOLLOWUP_DELAY[kind]
            due = end + int(delay.total_seconds()) * _SEC
            row: dict[str, Any] = dict.fromkeys(FOLLOWUP_COLUMNS)
            row.update(
                id=self._fid(end),
                procedure_id=proc["id"],
                kind=kind,
                due_at=_text(due),
                state="open",
                late=0,
                early=0,
                contact_attempts_n=0,
                created_at=stamp,
                updated_at=stamp,
            )
            made.append(row)
            if kind == "score_5min":
                if proc["satisfaction_5min"] is not None:
                    at = _us_of(proc["updated_at"])  # when set_score ran
                    row.update(
                        state="done",
                        satisfaction=proc["satisfaction_5min"],
                        completed_at=_text(at),
                        late=int(self._missed(kind, due, at)),
                        offset_min=_offset_min(end, at),
                    )
                continue
            calls.extend(self._day3_history(row, proc, end, due))
        for row in made:  # as the Store does: updated_at follows the last change
            row["updated_at"] = max(
                v for v in (row["created_at"], row["last_contact_at"], row["completed_at"]) if v
            )
        return made, calls

    @staticmethod
    def _missed(kind: str, due: int, at: int) -> bool:
        window = schedule.DEFAULT_WINDOWS[kind]
        return at > due + round(window.after_hours * 3600) * _SEC

    def _day3_history(
        self, row: dict[str, Any], proc: dict[str, Any], end: int, due: int
    ) -> list[dict[str, Any]]:
        rng = self.fu_rng
        window = schedule.DEFAULT_WINDOWS["day3"]
        opens = due - round(window.before_hours * 3600) * _SEC
        closes = due + round(window.after_hours * 3600) * _SEC
        outcome = self._fu_pick({"done": 80, "late": 4, "unreachable": 6, "declined": 3, "open": 7})
        if outcome == "open" and self.now - end > 30 * _DAY:
            outcome = "done"  # old follow-ups were all dealt with in the end
        n_calls = {
            "done": self._fu_pick({0: 65, 1: 25, 2: 10}),
            "late": self._fu_pick({1: 40, 2: 60}),
            "unreachable": 3,
            "declined": self._fu_pick({0: 70, 1: 30}),
            "open": self._fu_pick({0: 40, 1: 35, 2: 25}),
        }[outcome]
        assessor = rng.choice(ASSISTANTS)
        # The first call around the due time (the end's clock time three days on, within
        # the window), the next ones 1-6 hours apart: all before the window closes.
        t = max(opens, due + int(rng.uniform(-3, 5) * _HOUR))
        planned: list[int] = []
        for _ in range(n_calls):
            planned.append(t)
            t += int(rng.uniform(1, 6) * _HOUR)
        if outcome == "late" or outcome == "unreachable":
            t = closes + int(rng.uniform(1, 48) * _HOUR)
        finished = t if outcome != "open" else None
        calls = []
        for at in planned:
            if at > self.now:
                break
            calls.append(
                {
                    "id": self._fid(at),
                    "followup_id": row["id"],
                    "at": _text(at),
                    "outcome": "no_answer",
                    "by_user": DEMO_USER,
                    "note": "Voicemail left" if rng.random() < 0.3 else None,
                    "voided_at": None,
                }
            )
        if calls:
            row["contact_attempts_n"] = len(calls)
            row["last_contact_at"] = calls[-1]["at"]
        if finished is None or finished > self.now:
            return calls  # still open: upcoming, due, overdue or missed as of now
        row["completed_at"] = _text(finished)
        if outcome in ("unreachable", "declined"):
            row["state"] = outcome
            row["closed_reason"] = rng.choice(CLOSE_REASONS[outcome])
            return calls
        row.update(self._day3_answers(proc, assessor))
        row.update(
            state="done",
            late=int(self._missed("day3", due, finished)),
            offset_min=_offset_min(end, finished),
        )
        return calls

    def _day3_answers(self, proc: dict[str, Any], assessor: str) -> dict[str, Any]:
        """Plausible answers at 72 h (as ``complete_followup`` stores them)."""
        rng = self.fu_rng
        answers: dict[str, Any] = dict.fromkeys(ANSWER_COLUMNS)
        risk = (0.04 if proc["needle_tip"] == "pencil_point" else 0.1) + 0.02 * max(
            0, (proc["attempts_n"] or 0) - 1
        )
        pdph = rng.random() < risk
        answers["pdph"] = int(pdph)
        if pdph:
            answers.update(
                pdph_onset_hours=rng.randint(6, 60),
                pdph_orthostatic=int(rng.random() < 0.85),
                pdph_severity=rng.randint(3, 9),
                pdph_treatment=self._fu_pick(
                    {"conservative": 50, "caffeine": 25, "blood_patch": 10, "none": 15}
                ),
                pdph_resolved=int(rng.random() < 0.6),
            )
            answers["satisfaction"] = self._fu_pick({5: 15, 4: 30, 3: 35, 2: 15, 1: 5})
        else:
            answers["satisfaction"] = self._fu_pick({5: 62, 4: 28, 3: 7, 2: 2, 1: 1})
        answers["back_pain_nrs"] = (
            rng.randint(1, 5) if rng.random() < 0.25 else 0
        )  # some back pain at the site
        answers["radicular_pain"] = int(rng.random() < 0.03)
        answers["nausea_vomiting"] = int(rng.random() < (0.3 if pdph else 0.04))
        answers["other_event_any"] = 0
        if rng.random() < 0.01:
            answers["other_event_any"] = 1
            answers["other_event"] = rng.choice(OTHER_EVENTS)
            answers["other_event_serious"] = 0
        answers["contact_method"] = "phone" if rng.random() < 0.85 else "in_person"
        answers["assessor"] = assessor
        return answers

    def _fu_pick(self, weighted: dict[Any, float]) -> Any:
        return self.fu_rng.choices(tuple(weighted), tuple(weighted.values()))[0]

    def _audit(
        self, at: int, table: str, row: dict[str, Any], own_ids: bool = False
    ) -> tuple[Any, ...]:
        return (
            self._fid(at) if own_ids else self._id(at),
            _text(at),
            DEMO_USER,
            "insert",
            table,
            row["id"],
            "*",
            None,
            _audit_json(row),
        )


def _us_of(text: str) -> int:
    return (datetime.fromisoformat(text[:-1]) - _EPOCH) // timedelta(microseconds=1)


def _empty() -> dict[str, list[tuple[Any, ...]]]:
    # Parents before children: the batch is inserted in this order.
    return {table: [] for table in _COLUMNS}


_COLUMNS = {
    "patients": PATIENT_COLUMNS,
    "procedures": PROCEDURE_COLUMNS,
    "attempts": ATTEMPT_COLUMNS,
    "events": EVENT_COLUMNS,
    "followups": FOLLOWUP_COLUMNS,
    "contact_attempts": CONTACT_ATTEMPT_COLUMNS,
    "audit_log": AUDIT_COLUMNS,
}


def _insert_sql(table: str) -> str:
    cols = _COLUMNS[table]
    return f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


def is_demo_database(path: Path) -> bool:
    """True if ``path`` is an sma-log database written by :func:`write_demo`.

    Reads the header first (never opens a foreign file through SQLite), then the
    ``meta`` table read-only and ``immutable`` (so SQLite creates no -wal/-shm files
    beside someone's database). The ``demo`` row is written before the file is moved
    into place and fully checkpointed, so the main file alone answers.
    """
    from urllib.parse import quote

    from .storage.db import inspect_header

    try:
        inspect_header(path)
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True)
    except (DatabaseRefused, sqlite3.Error):
        return False
    try:
        found = conn.execute("SELECT 1 FROM meta WHERE key = ?", (DEMO_META_KEY,)).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return found is not None


def write_demo(
    path: str | os.PathLike[str],
    procedures: int = 60,
    seed: int = 1,
    now: datetime | None = None,
    *,
    force: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Write a new demo database at ``path``; return what it holds (counts, seconds).

    An existing ``path`` is refused (:class:`DemoRefused`, nothing touched) unless
    ``force`` is given *and* it is itself a demo database. The file is built beside
    ``path`` and moved into place only when complete. ``progress(done)`` is called
    with the number of procedures written so far after each batch (of ``procedures``).
    """
    if procedures < 1:
        raise ValueError("procedures must be at least 1 (one of them is the open procedure)")
    began = time.perf_counter()
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        if not force:
            raise DemoRefused(f"{path}: already exists; choose another path or use --force")
        if not path.is_file() or not is_demo_database(path):
            raise DemoRefused(
                f"{path}: exists and is not an sma-log demo database; --force only replaces "
                "demo databases (delete it yourself if you mean to)"
            )
    now_us = _to_us(now)
    gen = _Generator(procedures, seed, now_us)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.demo-{os.getpid()}.tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    try:
        store = Store.open(tmp, DEMO_USER)
        try:
            conn = store.conn
            # The file is private to this process until it is moved into place, so the
            # bulk load needs no journal; WAL and synchronous=FULL are restored after.
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # The report's caches are filled once at the end, not by a trigger per row.
                with reportcache.suspended(conn):
                    written = 0
                    for batch in gen.batches():
                        for table, rows in batch.items():
                            if rows:
                                rows.sort()  # by id (ULID, so by time): fewer page splits
                                conn.executemany(_insert_sql(table), rows)
                        written += len(batch["procedures"])
                        if progress is not None:
                            progress(written)
                meta = {
                    "seed": seed,
                    "procedures": procedures,
                    "now": _text(now_us),
                    "generator": GENERATOR_VERSION,
                }
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (DEMO_META_KEY, json.dumps(meta, sort_keys=True)),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            counts: dict[str, Any] = store.counts()
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            store.close()
        _fsync(tmp)
        if force:
            for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    side.unlink()
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise DemoRefused(f"{path}: already exists; choose another path") from None
        _fsync(path.parent)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: could not write the demo database ({exc})") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    counts["open"] = 1
    counts["pending_scores"] = gen.pending
    counts["followups"] = gen.followups
    counts["open_followups"] = gen.open_followups
    counts["contact_attempts"] = gen.contact_attempts
    counts["open_procedure_id"] = gen.open_id
    counts["seconds"] = round(time.perf_counter() - began, 3)
    return counts


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk; the bulk load ran unsynced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def demo_database(tmpdir: str | os.PathLike[str], procedures: int = 60, seed: int = 1) -> Path:
    """A fresh demo database inside ``tmpdir`` (for ``sma-log --demo``); returns its path."""
    path = Path(tmpdir) / DEMO_FILE_NAME
    write_demo(path, procedures=procedures, seed=seed)
    return path
