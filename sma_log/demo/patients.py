"""Patients: how many procedures each has, who they are, their spine and set-up, their schedule.

A patient's profile fixes what stays from one procedure to the next: SMA type, age, motor
status and sex; a spine (Cobb angle, axial rotation, hardware, BMI) that makes punctures
harder (``difficulty``, 0 to about 1); and the set-up the team uses for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .draws import Draws
from .units import DAY, HOUR, MIN, dt, text

OPERATORS = ("Dr Conti", "Dr Greco", "Dr Marino", "Dr Ferrari", "Dr Romano")
ASSISTANTS = ("Nurse Bruno", "Nurse Gallo", "Nurse Costa", "Nurse Fontana")
#: Patients (by index) whose last procedure was this many days before today, so the
#: queue always has 72-hour calls around "now" (due today, tomorrow, yesterday).
RECENT_DAYS_AGO = {3: 3, 4: 2, 5: 4}
#: The first patients' last procedure, started this many seconds before now: the open
#: one (a few minutes ago), then two ended today whose score is still pending.
RECENT_STARTS = {0: (180, 540), 1: (50 * 60, 75 * 60), 2: (150 * 60, 220 * 60)}
#: The mode of those patients' last procedure (all others are "ended").
LAST_MODE = {0: "open", 1: "pending", 2: "pending"}

SMA_TYPES = {1: 20, 2: 45, 3: 30, 4: 5}
AGES = {1: (1, 12), 2: (2, 30), 3: (4, 55), 4: (25, 65)}
#: Motor status by type: drawn (chance of the first, else the second) or fixed.
MOTOR_DRAWN = {2: (0.8, "sitter", "non_sitter"), 3: (0.55, "walker", "sitter")}
MOTOR_FIXED = {1: "non_sitter", 4: "walker"}
#: Cobb angle by type: ``random.triangular(low, high, mode)``.
COBB = {1: (0, 60, 15), 2: (5, 110, 55), 3: (0, 60, 8), 4: (0, 20, 3)}
#: Axial rotation: the first whose score limit is above the patient's score, else severe.
ROTATION_LIMITS = ((0.5, "none"), (1.2, "mild"), (2.0, "moderate"))
ROTATION_DIFFICULTY = {"none": 0, "mild": 0.05, "moderate": 0.12, "severe": 0.25}
HARDWARE_DIFFICULTY = {"none": 0, "growing_rods": 0.1, "posterior_fusion": 0.25}
#: BMI: (mean, sd, lowest, highest) for types 1–2 and for the others.
BMI_SMALL = (16.5, 3, 11.0, 30.0)
BMI_OTHER = (23, 5, 14.0, 45.0)
LEVELS_INTENDED = {"L3-L4": 55, "L4-L5": 40, "L2-L3": 5}
SEDATION_YOUNG = {"none": 55, "local": 10, "iv_sedation": 25, "general": 10}
SEDATION_OLDER = {"none": 80, "local": 10, "oral_anxiolytic": 6, "iv_sedation": 3, "general": 1}
#: The first doses of a new (or continuing) patient: (day from the first dose, regimen).
FIRST_DOSES = {
    "new_std": (
        (0, "std_loading_1"),
        (14, "std_loading_2"),
        (28, "std_loading_3"),
        (63, "std_loading_4"),
    ),
    "new_high": ((0, "high_loading_1"), (14, "high_loading_2")),
    "ongoing": ((0, "std_maintenance"),),
}


@dataclass
class Profile:
    """What a patient's procedures share: the patient row's values, difficulty, set-up."""

    patient: dict[str, Any]
    difficulty: float
    setup: dict[str, Any]


def procedure_counts(draw: Draws, procedures: int) -> list[int]:
    """How many of the ``procedures`` each patient has (about 3.5 each, at least one)."""
    patients = max(1, min(procedures, round(procedures / 3.5)))
    counts = [1] * patients
    weights = [draw.rng.uniform(0.2, 1.8) for _ in range(patients)]
    for i in draw.rng.choices(range(patients), weights, k=procedures - patients):
        counts[i] += 1
    return counts


def profile(draw: Draws, year: int) -> Profile:
    """A new patient: who they are, their spine, and the set-up used for them."""
    sma_type = draw.pick(SMA_TYPES)
    age = {t: draw.rng.randint(lo, hi) for t, (lo, hi) in AGES.items()}[sma_type]
    motor = _motor(draw, sma_type)
    cobb = float(round({t: draw.rng.triangular(*c) for t, c in COBB.items()}[sma_type]))
    hardware = _hardware(draw, sma_type, age, cobb)
    rotation = _rotation(cobb / 30 + draw.rng.uniform(-0.6, 0.6))
    mean, sd, lowest, highest = BMI_SMALL if sma_type in (1, 2) else BMI_OTHER
    bmi = round(min(highest, max(lowest, draw.rng.gauss(mean, sd))), 1)
    difficulty = (
        min(cobb, 110) / 110 * 0.55
        + ROTATION_DIFFICULTY[rotation]
        + HARDWARE_DIFFICULTY.get(hardware, 0.1)
        + (0.15 if bmi >= 30 else 0)
    )
    guidance, approach = _guidance_and_approach(draw, hardware)
    position = _position(draw, guidance, motor)
    tip, gauge = _needle(draw)
    sedation, agent = _sedation(draw, age)
    patient = {
        "sma_type": sma_type,
        "birth_year": year - age,
        "sex": draw.pick({"female": 49, "male": 50, "other": 1}),
        "motor_status": motor,
    }
    setup = {
        "operator": draw.rng.choice(OPERATORS),
        "assistant": draw.rng.choice((*ASSISTANTS, None)),
        "guidance": guidance,
        "approach": approach,
        "level_intended": draw.pick(LEVELS_INTENDED),
        "position": position,
        "needle_tip": tip,
        "needle_gauge": gauge,
        "needle_length_mm": _needle_length(approach, bmi, cobb),
        "cobb_angle": cobb,
        "axial_rotation": rotation,
        "hardware": hardware,
        "bmi": bmi,
        "sedation": sedation,
        "sedation_agent": agent,
    }
    return Profile(patient, difficulty, setup)


def _motor(draw: Draws, sma_type: int) -> str:
    # Drawn for types 2 and 3 whatever the type (the draws stay in step).
    drawn = {t: yes if draw.chance(p) else no for t, (p, yes, no) in MOTOR_DRAWN.items()}
    return {**MOTOR_FIXED, **drawn}[sma_type]


def _hardware(draw: Draws, sma_type: int, age: int, cobb: float) -> str:
    if cobb <= 40 or sma_type not in (1, 2, 3):
        return "none"
    r = draw.rng.random()
    if age >= 11 and r < 0.5:
        return "laminotomy_window" if draw.chance(0.1) else "posterior_fusion"
    if age < 11 and r < 0.3:
        return "growing_rods"
    return "none"


def _rotation(score: float) -> str:
    return next((name for limit, name in ROTATION_LIMITS if score < limit), "severe")


def _guidance_and_approach(draw: Draws, hardware: str) -> tuple[str, str]:
    """The imaging and the approach carried from procedure to procedure."""
    if hardware == "posterior_fusion":
        guidance = draw.pick({"ct": 55, "fluoroscopy": 30, "us_realtime": 15})
        through = guidance != "us_realtime" and draw.chance(0.75)
        return guidance, "transforaminal" if through else "paramedian"
    if hardware == "laminotomy_window":
        guidance = draw.pick({"us_realtime": 50, "fluoroscopy": 50})
        return guidance, draw.pick({"paramedian": 50, "other": 50})
    guidance = draw.pick({"us_marking": 55, "us_realtime": 30, "landmark": 10, "fluoroscopy": 5})
    midline = 0.7 if guidance == "landmark" else 0.22
    return guidance, "midline" if draw.chance(midline) else "paramedian"


def _position(draw: Draws, guidance: str, motor: str) -> str:
    if guidance == "ct":
        return "prone"
    if motor == "walker" and draw.chance(0.3):
        return "sitting"
    return draw.rng.choice(("lateral_left", "lateral_right"))


def _needle(draw: Draws) -> tuple[str, int]:
    """The needle's tip and gauge."""
    if draw.chance(0.6):
        return "pencil_point", draw.rng.choice((22, 24, 25))
    return "quincke", draw.rng.choice((20, 22))


def _needle_length(approach: str, bmi: float, cobb: float) -> int:
    if approach == "transforaminal":
        return 150
    return 120 if bmi >= 30 or cobb > 60 else 90


def _sedation(draw: Draws, age: int) -> tuple[str, str | None]:
    """The sedation and its agent (for IV sedation and general anaesthesia)."""
    sedation = draw.pick(SEDATION_YOUNG if age < 6 else SEDATION_OLDER)
    if sedation == "iv_sedation":
        return sedation, draw.rng.choice(("midazolam", "propofol", "dexmedetomidine"))
    return sedation, "sevoflurane" if sedation == "general" else None


def plan(draw: Draws, k: int) -> list[tuple[int, str]]:
    """``k`` (day offset from the first dose, regimen) pairs for one patient."""
    kind = draw.pick({"ongoing": 45, "new_std": 48, "new_high": 7})
    doses = list(FIRST_DOSES[kind])
    switch_at = draw.rng.randint(5, 9) if kind != "new_high" and draw.chance(0.1) else None
    while len(doses) < k:
        day = doses[-1][0] + 120 + draw.rng.randint(-4, 10)
        maintenance = "high_maintenance" if doses[-1][1].startswith("high") else None
        if switch_at is not None and len(doses) == switch_at:
            doses.append((day, "high_loading_1"))  # one 50 mg dose in place of the next 12 mg
        else:
            doses.append((day, maintenance or "std_maintenance"))
    return doses[:k]


def starts(
    draw: Draws, i: int, doses: list[tuple[int, str]], now: int, today: int
) -> list[tuple[int, str]]:
    """(start, regimen) of patient ``i``'s procedures: the last one ``days_ago`` or today."""
    last_start = now - draw.sec(*RECENT_STARTS[i]) if i in RECENT_STARTS else None
    days_ago = draw.rng.randint(1, 120)
    days_ago = RECENT_DAYS_AGO.get(i, days_ago)  # a 72-hour call due today, tomorrow, late
    last_day = today - days_ago * DAY if last_start is None else today
    last_offset = doses[-1][0]
    out = []
    for j, (offset, regimen) in enumerate(doses):
        if j == len(doses) - 1 and last_start is not None:
            out.append((last_start, regimen))
        else:
            out.append((_clinic_start(draw, last_day - (last_offset - offset) * DAY), regimen))
    return out


def _clinic_start(draw: Draws, day_start: int) -> int:
    """A time in clinic hours (07:30–15:00) that day, a weekend moved to the Friday."""
    weekday = dt(day_start).weekday()
    if weekday >= 5:
        day_start -= (weekday - 4) * DAY
    return day_start + 7 * HOUR + 30 * MIN + draw.sec(0, 7.5 * 3600)


def patient_row(draw: Draws, code: str, created: int, prof: Profile) -> dict[str, Any]:
    """The ``patients`` row, created at ``created`` (its id drawn now)."""
    return {
        "id": draw.id(created),
        "study_code": code,
        **prof.patient,
        "created_at": text(created),
        "updated_at": text(created),
    }
