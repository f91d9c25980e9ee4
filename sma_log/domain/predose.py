"""The pre-dose time-out and the drug's clock (issue 14): rules only, no storage.

CLINICAL-NOTES, "The procedure": the US label asks for a platelet count, coagulation
tests (PT, aPTT) and a quantitative spot urine protein at baseline and before each
dose (urine protein > 0.2 g/L: consider repeating and further evaluation); the EU SmPC
asks for them when clinically indicated. Platelet and coagulation cut-offs for a
lumbar puncture and the maximum age of a result are local policy: they are site
settings, empty by default — this module never invents one.

* **Items** (:data:`ITEMS`): consent, skin at the site, anticoagulant/antiplatelet,
  VP shunt, and the latest platelet count, coagulation (PT and aPTT, or an INR) and
  spot urine protein. Unknown stays unknown (None), never "no".
* **Required** items come from the site (:data:`PRESETS`: ``us`` all of them, ``eu``
  the four bedside questions, the labs when indicated).
* A **missing** required item or a **flagged** value never blocks: the time-out then
  needs a reason (:class:`ReasonNeeded`), which the Store keeps and audits.
* **Bad input** is refused with one sentence (:class:`~sma_log.domain.fields.ValidationError`):
  a lab date in the future, a result older than the site's limit, a value outside what
  a laboratory can report (a platelet count of −3).

Drug timing: the US label says to administer within 4 hours of *removal from the vial*
(the drug leaving the vial: drawn into the syringe), the EU SmPC to discard the drug 6
hours after *drawing it into the syringe*: both clocks therefore run from ``drawn_up``.
The time the vial left the fridge is recorded (warming without external heat) but
starts no label clock. The bolus is given over 1–3 minutes.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pendulum

from . import fields, vocab
from .cells import number_text
from .timeline import RuleError, State

#: The time-out's items, in the order they are asked.
ITEMS: tuple[str, ...] = (
    "consent",
    "skin",
    "antithrombotic",
    "vp_shunt",
    "platelets",
    "coagulation",
    "urine_protein",
)
ITEM_LABELS: dict[str, str] = {
    "consent": "consent",
    "skin": "skin at the site",
    "antithrombotic": "anticoagulant/antiplatelet",
    "vp_shunt": "VP shunt",
    "platelets": "platelet count",
    "coagulation": "coagulation (PT and aPTT, or INR)",
    "urine_protein": "spot urine protein",
}
BEDSIDE_ITEMS: tuple[str, ...] = ITEMS[:4]
LAB_ITEMS: tuple[str, ...] = ITEMS[4:]
#: Required items by label: US before each dose, EU when clinically indicated.
PRESETS: dict[str, frozenset[str]] = {
    "us": frozenset(ITEMS),
    "eu": frozenset(BEDSIDE_ITEMS),
}
#: Urine protein above this (g/L) is flagged: the US label's value.
URINE_PROTEIN_LABEL_MAX = 0.2
#: The label's bolus length: 1 to 3 minutes.
INJECTION_MIN_S, INJECTION_MAX_S = 60.0, 180.0
#: The label's limit from drawing up to the injection, in hours.
DRUG_LIMIT_HOURS: dict[str, float] = {"us": 4.0, "eu": 6.0}
#: 12 mg in 5 mL (CLINICAL-NOTES); the high-dose volumes are not in the notes.
DOSE_VOLUME_ML: dict[str, float] = {
    code: 5.0 for code in ("std_loading_1", "std_loading_2", "std_loading_3", "std_loading_4")
} | {"std_maintenance": 5.0}

#: Canonical unit of each test and the other spellings a lab export may use (factor to
#: the canonical unit).
LAB_UNITS: dict[str, str] = {
    "platelets": "10^9/L",
    "pt": "s",
    "aptt": "s",
    "inr": "ratio",
    "urine_protein": "g/L",
}
_UNIT_FACTORS: dict[str, dict[str, float]] = {
    "platelets": {
        "10^9/l": 1,
        "x10^9/l": 1,
        "×10⁹/l": 1,
        "10^3/ul": 1,
        "x10^3/ul": 1,
        "k/ul": 1,
        "/nl": 1,
        "g/l": 1,
    },
    "pt": {"s": 1, "sec": 1, "seconds": 1},
    "aptt": {"s": 1, "sec": 1, "seconds": 1},
    "inr": {"ratio": 1, "": 1, "inr": 1},
    "urine_protein": {"g/l": 1, "mg/dl": 0.01, "mg/l": 0.001},
}
#: Which setting holds each test's flag limit, and its direction.
_LIMITS: tuple[tuple[str, str, str], ...] = (
    ("platelets", "platelets_min", "below"),
    ("pt", "pt_max_s", "above"),
    ("aptt", "aptt_max_s", "above"),
    ("inr", "inr_max", "above"),
)


class ReasonNeeded(RuleError):
    """A required item is missing or a value flagged: the time-out needs a reason."""

    def __init__(self, missing: Iterable[str], flags: Iterable[str], flag_texts: Iterable[str]):
        self.missing = tuple(missing)
        self.flags = tuple(flags)
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(ITEM_LABELS[m] for m in self.missing))
        texts = list(flag_texts)
        if texts:
            parts.append("flagged " + "; ".join(texts))
        super().__init__("Give a reason to go ahead: " + "; ".join(parts))


@dataclass(frozen=True)
class Rules:
    """The site's time-out settings (built from :class:`sma_log.config.Settings`)."""

    required: frozenset[str] = PRESETS["eu"]
    platelets_min: float | None = None
    pt_max_s: float | None = None
    aptt_max_s: float | None = None
    inr_max: float | None = None
    lab_max_age_days: float | None = None
    label: str = "eu"
    drug_warn_min: float = 30.0


def required_items(spec: str, label: str) -> frozenset[str]:
    """The required items of a ``timeout_required`` setting: ``label`` (the preset of
    the dosing label), ``us``, ``eu``, ``none``, or a comma list of item codes.
    ValueError with one sentence for anything else."""
    text = spec.strip().lower()
    if text in ("", "label"):
        return PRESETS.get(label, PRESETS["eu"])
    if text in PRESETS:
        return PRESETS[text]
    if text == "none":
        return frozenset()
    codes = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in codes if c not in ITEMS]
    if unknown:
        raise ValueError(
            f"unknown time-out item {unknown[0]!r}: use label, us, eu, none or a comma "
            f"list of {', '.join(ITEMS)}"
        )
    return frozenset(codes)


@dataclass(frozen=True)
class LabResult:
    id: str
    test: str
    value: float
    unit: str
    taken_on: _dt.date
    source: str | None = None


def parse_date(raw: Any, name: str = "taken_on", label: str = "Date") -> _dt.date:
    """A calendar date typed ``YYYY-MM-DD`` (or a date); ValidationError otherwise."""
    if isinstance(raw, _dt.datetime):
        return raw.date()
    if isinstance(raw, _dt.date):
        return raw
    text = str(raw or "").strip()
    if not text:
        raise fields.ValidationError(name, f"{label} is required (YYYY-MM-DD)")
    try:
        return _dt.date.fromisoformat(text[:10] if len(text) > 10 and text[10] in "T " else text)
    except ValueError:
        raise fields.ValidationError(
            name, f"{label}: {text[:30]!r} is not a date; use YYYY-MM-DD"
        ) from None


def parse_lab(
    test: Any,
    value: Any,
    taken_on: Any,
    *,
    unit: Any = None,
    today: _dt.date,
    rules: Rules,
) -> tuple[str, float, str, _dt.date]:
    """One lab result as typed (or read from a lab export): (test, value in the canonical
    unit, that unit, date). Refused with :class:`~sma_log.domain.fields.ValidationError`:
    an unknown test or unit, a value a laboratory cannot report, a date in the future,
    a date older than the site's maximum age."""
    code = str(test or "").strip().lower()
    if code not in LAB_UNITS:
        raise fields.ValidationError(
            "test", f"Test: choose one of {', '.join(vocab.codes(vocab.LAB_TESTS))}"
        )
    spelled = "" if unit is None else str(unit).strip().lower().replace(" ", "")
    factors = _UNIT_FACTORS[code]
    if unit is not None and spelled not in factors and spelled != LAB_UNITS[code].lower():
        raise fields.ValidationError(
            "unit",
            f"Unit {str(unit)[:20]!r} is not one sma-log converts for "
            f"{vocab.label(vocab.LAB_TESTS, code)} (use {LAB_UNITS[code]})",
        )
    factor = factors.get(spelled, 1.0) if unit is not None else 1.0
    spec = fields.LAB_VALUE_FIELDS[code]
    raw = value
    if factor != 1 and raw is not None and str(raw).strip():
        try:  # the range is checked after the conversion
            number = fields._parse_number(fields.FieldSpec("value", spec.label, "float"), raw)
        except fields.ValidationError as exc:
            raise fields.ValidationError("value", exc.message) from None
        raw = round(float(number) * factor, 6)
    try:
        parsed = spec.parse(raw)
    except fields.ValidationError as exc:
        raise fields.ValidationError("value", exc.message) from None
    if parsed is None:
        raise fields.ValidationError("value", f"{spec.label}: a value is required")
    when = parse_date(taken_on)
    check_lab_date(when, today, rules)
    return code, float(parsed), LAB_UNITS[code], when


def check_lab_date(when: _dt.date, today: _dt.date, rules: Rules) -> None:
    if when > today:
        raise fields.ValidationError(
            "taken_on", f"The result's date {when.isoformat()} is in the future"
        )
    limit = rules.lab_max_age_days
    if limit is not None and (today - when).days > limit:
        raise fields.ValidationError(
            "taken_on",
            f"The result of {when.isoformat()} is older than the site's limit "
            f"({number_text(limit)} days)",
        )


def lab_fresh(lab: LabResult, on: _dt.date, rules: Rules) -> bool:
    """Usable for a procedure on ``on``: taken that day or before, within the site's age."""
    if lab.taken_on > on:
        return False
    limit = rules.lab_max_age_days
    return limit is None or (on - lab.taken_on).days <= limit


def usable_labs(labs: Iterable[LabResult], on: _dt.date, rules: Rules) -> dict[str, LabResult]:
    """The latest fresh result of each test (by date, then as listed: newest first)."""
    out: dict[str, LabResult] = {}
    for lab in labs:
        if not lab_fresh(lab, on, rules):
            continue
        best = out.get(lab.test)
        if best is None or lab.taken_on > best.taken_on:
            out[lab.test] = lab
    return out


@dataclass
class Check:
    """What a time-out says: missing required items, flags, notices, completeness."""

    required: tuple[str, ...]
    missing: tuple[str, ...]
    flags: tuple[str, ...]
    flag_texts: tuple[str, ...]
    notices: tuple[str, ...] = ()
    present: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def needs_reason(self) -> bool:
        return bool(self.missing or self.flags)


def _present(item: str, items: Mapping[str, Any], labs: Mapping[str, LabResult]) -> bool:
    if item in BEDSIDE_ITEMS:
        if items.get(item) is None:
            return False
        if item == "antithrombotic" and items.get(item) not in (None, "none"):
            # "none, or agent and last dose time"
            return (
                items.get("antithrombotic_agent") is not None
                and items.get("antithrombotic_last_at") is not None
            )
        return True
    if item == "coagulation":
        return ("pt" in labs and "aptt" in labs) or "inr" in labs
    return item in labs


def evaluate(items: Mapping[str, Any], labs: Mapping[str, LabResult], rules: Rules) -> Check:
    """Judge a time-out: ``items`` are the bedside answers (None: unknown), ``labs``
    the usable results by test (:func:`usable_labs`)."""
    required = tuple(i for i in ITEMS if i in rules.required)
    present = tuple(i for i in ITEMS if _present(i, items, labs))
    missing = tuple(i for i in required if i not in present)
    flags: list[str] = []
    texts: list[str] = []
    notices: list[str] = []
    if items.get("consent") is False or items.get("consent") == 0:
        flags.append("consent")
        texts.append("consent not confirmed")
    if items.get("skin") == "infected_inflamed":
        flags.append("skin")
        texts.append("infected or inflamed skin at the site")
    up = labs.get("urine_protein")
    if up is not None and up.value > URINE_PROTEIN_LABEL_MAX:
        flags.append("urine_protein")
        texts.append(
            f"urine protein {number_text(up.value)} g/L > {number_text(URINE_PROTEIN_LABEL_MAX)}"
            " (label: consider repeating and further evaluation)"
        )
    for test, setting, direction in _LIMITS:
        limit = getattr(rules, setting)
        lab = labs.get(test)
        if limit is None or lab is None:
            continue
        if (direction == "below" and lab.value < limit) or (
            direction == "above" and lab.value > limit
        ):
            flags.append(test)
            sign = "<" if direction == "below" else ">"
            texts.append(
                f"{fields.LAB_VALUE_FIELDS[test].label} {number_text(lab.value)} "
                f"{sign} {number_text(limit)} (site limit)"
            )
    kind = items.get("antithrombotic")
    if kind not in (None, "none"):
        agent = items.get("antithrombotic_agent")
        last = items.get("antithrombotic_last_at")
        when = f", last dose {last}" if last else ", last dose unknown"
        notices.append(f"{vocab.label(vocab.ANTITHROMBOTIC, kind)}: {agent or '?'}{when}")
    if items.get("vp_shunt") in (True, 1):
        notices.append("VP shunt (label: benefit/risk unknown)")
    return Check(required, missing, tuple(flags), tuple(texts), tuple(notices), present)


def check_confirm(check: Check, reason: str | None) -> None:
    """Going ahead with a missing item or a flag needs a reason; raises ReasonNeeded."""
    if check.needs_reason and not (reason and reason.strip()):
        raise ReasonNeeded(check.missing, check.flags, check.flag_texts)


def clean_items(values: Mapping[str, Any], now: pendulum.DateTime) -> dict[str, Any]:
    """The time-out items as stored (yes/no as 0/1, the last dose as stored text);
    ValidationError for a bad one (nothing is saved)."""
    from .clock import from_text, to_text

    out: dict[str, Any] = {}
    for name, raw in values.items():
        if name == "antithrombotic_last_at":
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                out[name] = None
                continue
            if isinstance(raw, _dt.datetime):
                when = pendulum.instance(raw)
            else:
                try:
                    when = from_text(str(raw).strip())
                except ValueError:
                    raise fields.ValidationError(
                        name, "Last dose: give a time (YYYY-MM-DD HH:MM)"
                    ) from None
            if when > now:
                raise fields.ValidationError(name, "Last dose: the time is in the future")
            out[name] = to_text(when)
            continue
        spec = fields.TIMEOUT_FIELDS.get(name)
        if spec is None:
            raise fields.ValidationError(name, f"Unknown field: {name}")
        value = spec.parse(raw)
        out[name] = int(value) if isinstance(value, bool) else value
    return out


def parse_when(text: str, tz: str, now: pendulum.DateTime) -> pendulum.DateTime:
    """A local time typed at the bedside: ``HH:MM`` (today in ``tz``) or
    ``YYYY-MM-DD HH:MM``; refused when unreadable or in the future."""
    raw = (text or "").strip()
    local_now = now.in_timezone(tz)
    try:
        if len(raw) <= 5 and ":" in raw:
            hh, mm = raw.split(":")
            when = local_now.replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
        else:
            parsed = _dt.datetime.fromisoformat(raw.replace("T", " "))
            when = pendulum.instance(parsed.replace(tzinfo=None), tz=tz)
            if parsed.tzinfo is not None:
                when = pendulum.instance(parsed)
    except (ValueError, TypeError):
        raise fields.ValidationError(
            "when", f"{raw[:30]!r} is not a time: type HH:MM or YYYY-MM-DD HH:MM"
        ) from None
    if when > now:
        raise fields.ValidationError("when", f"{raw} is in the future")
    return when.in_timezone("UTC")


# ---------------------------------------------------------------- the drug's clock
@dataclass(frozen=True)
class DrugClock:
    reference: str | None
    limit_h: float
    deadline: _dt.datetime | None
    remaining_s: float | None
    status: str  # unknown | ok | warn | expired | used
    text: str


def drug_clock(
    drug_times: Mapping[str, _dt.datetime],
    label: str,
    now: _dt.datetime,
    warn_min: float = 30.0,
    injected_at: _dt.datetime | None = None,
) -> DrugClock:
    """Time left against the label's limit, counted from the drawing up.

    ``status``: ``unknown`` (not drawn up yet), ``ok``, ``warn`` (``warn_min`` minutes
    or less left), ``expired`` (past the limit: the label says discard), ``used`` (the
    injection started: ``remaining_s`` is what was left then, negative when late).
    """
    limit = DRUG_LIMIT_HOURS.get(label, DRUG_LIMIT_HOURS["eu"])
    drawn = drug_times.get("drawn_up")
    if drawn is None:
        return DrugClock(None, limit, None, None, "unknown", "not drawn up yet")
    deadline = drawn + _dt.timedelta(hours=limit)
    at = injected_at or now
    remaining = (deadline - at).total_seconds()
    if injected_at is not None:
        status = "used"
        text = (
            f"injected {_minutes(abs(remaining))} "
            f"{'before' if remaining >= 0 else 'AFTER'} the {number_text(limit)} h limit"
        )
    elif remaining <= 0:
        status, text = "expired", f"EXPIRED {_minutes(-remaining)} ago (label: discard)"
    elif remaining <= warn_min * 60:
        status, text = "warn", f"{_minutes(remaining)} left of {number_text(limit)} h"
    else:
        status, text = "ok", f"{_minutes(remaining)} left of {number_text(limit)} h"
    return DrugClock("drawn_up", limit, deadline, remaining, status, text)


def _minutes(seconds: float) -> str:
    total = math.floor(seconds / 60)
    h, m = divmod(total, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def injection_seconds(state: State) -> float | None:
    ms = state.milestones
    if "injection_start" in ms and "injection_end" in ms:
        return float(round((ms["injection_end"] - ms["injection_start"]).total_seconds()))
    return None


def injection_flag(seconds: float | None) -> str | None:
    """None within the label's 1–3 minutes (or unknown), else what is wrong."""
    if seconds is None:
        return None
    if seconds < INJECTION_MIN_S:
        return "shorter than 1 min (label: 1–3 min)"
    if seconds > INJECTION_MAX_S:
        return "longer than 3 min (label: 1–3 min)"
    return None


def dose_volume_ml(regimen: str | None) -> float | None:
    return DOSE_VOLUME_ML.get(regimen or "")


def csf_vs_dose_text(csf_ml: float | None, regimen: str | None) -> str:
    """``CSF removed 5 mL / dose 5 mL`` (the dose volume is unknown for the high dose)."""
    dose = dose_volume_ml(regimen)
    csf = "?" if csf_ml is None else number_text(csf_ml)
    vol = "? (not in the clinical notes)" if dose is None else f"{number_text(dose)} mL"
    return f"CSF removed {csf} mL / dose volume {vol}"
