"""Follow-up scheduling: the 5-minute score and the 72-hour (day 3) follow-up.

Pure domain code: pendulum only (no Textual, no sqlite3).

Time rules (see ENGINEERING-NOTES, "Time (pendulum 3)"):

* Every instant going in or out is a timezone-aware pendulum ``DateTime``; the functions
  here work in UTC and return UTC. Convert for display with :func:`to_local` /
  :func:`format_local` only.
* "72 hours" means 72 *elapsed* hours (``add(hours=72)`` in UTC), so across the
  spring-forward night a 10:00 end is due at 11:00 local, across the fall-back night at
  09:00 local. ``add(days=3)`` would give 71 or 73 real hours and is never used.

Computed status of an open follow-up (``status``), for a due time ``due`` and a window
``(before, after)``::

    upcoming  now <  due - before
    due       due - before <= now <= due
    overdue   due <  now <= due + after
    missed    now >  due + after

"done", "unreachable" and "declined" are *stored* closing states, never computed here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pendulum
from pendulum.locales.locale import Locale

from . import fields, vocab
from .timeline import RuleError, whole_second_minutes

# --------------------------------------------------------------------------- kinds

FOLLOWUP_KINDS = vocab.FOLLOWUP_KINDS

#: Elapsed time from procedure end to the due time, per kind.
FOLLOWUP_DELAY: dict[str, pendulum.Duration] = {
    "score_5min": pendulum.duration(minutes=5),
    "day3": pendulum.duration(hours=72),
}


@dataclass(frozen=True)
class Window:
    """How long before its due time a follow-up counts as "due" and how long after it
    stays "overdue" before it becomes "missed". Hours, fractions allowed."""

    before_hours: float = 12
    after_hours: float = 24

    @property
    def before(self) -> pendulum.Duration:
        return pendulum.duration(seconds=round(self.before_hours * 3600))

    @property
    def after(self) -> pendulum.Duration:
        return pendulum.duration(seconds=round(self.after_hours * 3600))


#: The 5-minute score may be taken from this many minutes after the end (a setting):
#: a score pressed seconds after the end is not a 5-minute score.
DEFAULT_SCORE_EARLIEST_MIN = 4.0


def score_window(earliest_min: float = DEFAULT_SCORE_EARLIEST_MIN) -> Window:
    """The 5-minute score's window when it opens ``earliest_min`` after the end."""
    if not (0 <= earliest_min <= 5):
        raise ValueError("the 5-minute score opens between 0 and 5 minutes after the end")
    minutes_before_due = 5 - earliest_min
    return Window(before_hours=minutes_before_due / 60, after_hours=2)


#: Default windows. day3: from 12 h before to 24 h after the 72-hour mark (i.e. a call
#: between 60 h and 96 h after the end is on time or late-but-valid). score_5min: the
#: score opens 1 minute before its due time (4 minutes after the end, see
#: :data:`DEFAULT_SCORE_EARLIEST_MIN`) and is "overdue" for 2 hours, after which a
#: "5-minute" score is no longer meaningful.
DEFAULT_WINDOWS: dict[str, Window] = {
    "score_5min": score_window(),
    "day3": Window(before_hours=12, after_hours=24),
}

#: A follow-up missed for longer than this many days after its window closed leaves the
#: queue (a setting, ``missed_after_days``): it is still reachable through the queue's
#: "missed too" filter, ``sma-log followups --status missed`` and the report's
#: completeness line, and may still be entered late.
DEFAULT_MISSED_AFTER_DAYS = 14.0


def queue_cutoff(
    kind: str, now: pendulum.DateTime, window: Window, missed_after_days: float
) -> pendulum.DateTime:
    """The earliest due time (UTC) an open follow-up of ``kind`` may have and still be in
    the queue: one due before it was missed for longer than ``missed_after_days``
    (``now > due + window.after + missed_after_days``; at exactly that instant it stays)."""
    _check_kind(kind)
    if not (missed_after_days >= 0):
        raise ValueError("missed_after_days must be 0 or more")
    grace = pendulum.duration(seconds=round(missed_after_days * 86400))
    return _utc(now, "now") - window.after - grace


def long_missed(
    kind: str,
    due: pendulum.DateTime,
    now: pendulum.DateTime,
    window: Window,
    missed_after_days: float,
) -> bool:
    """Whether an open follow-up has been missed for longer than ``missed_after_days``
    after its window closed, and so leaves the queue (see :func:`queue_cutoff`)."""
    return _utc(due, "due") < queue_cutoff(kind, now, window, missed_after_days)


Status = Literal["upcoming", "due", "overdue", "missed"]
Timing = Literal["early", "on_time", "late"]

#: Queue order of computed states: overdue first, then due, upcoming, missed.
STATUS_ORDER: tuple[str, ...] = ("overdue", "due", "upcoming", "missed")
#: Stored closing states (set by the user, never computed).
CLOSED_STATUSES: tuple[str, ...] = ("done", "unreachable", "declined")

#: Status and kind in words (screens and the CLI say the same; never colour alone).
STATUS_WORDS: dict[str, str] = {
    "overdue": "overdue",
    "due": "due now",
    "upcoming": "upcoming",
    "missed": "missed",
    "done": "done",
    "unreachable": "not reachable",
    "declined": "declined",
}
KIND_WORDS: dict[str, str] = {"score_5min": "5-min score", "day3": "72-h call"}


def status_rank(state: str) -> int:
    """Sort rank for a state: computed states in ``STATUS_ORDER``, closed states after."""
    order = STATUS_ORDER + CLOSED_STATUSES
    return order.index(state) if state in order else len(order)


def _check_kind(kind: str) -> None:
    if kind not in FOLLOWUP_DELAY:
        known = ", ".join(FOLLOWUP_DELAY)
        raise ValueError(f"unknown follow-up kind {kind!r} (known: {known})")


def _utc(dt: pendulum.DateTime, name: str) -> pendulum.DateTime:
    if dt.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return pendulum.instance(dt).in_timezone("UTC")


def default_window(kind: str) -> Window:
    _check_kind(kind)
    return DEFAULT_WINDOWS[kind]


def due_at(kind: str, ended_at: pendulum.DateTime) -> pendulum.DateTime:
    """Due time (UTC) of a follow-up of ``kind`` for a procedure that ended at ``ended_at``.

    ``ended_at`` may carry any time zone; the arithmetic is done in UTC, so the result
    is always exactly the delay in elapsed seconds after the end.
    """
    _check_kind(kind)
    return _utc(ended_at, "ended_at") + FOLLOWUP_DELAY[kind]


def status(
    kind: str,
    due: pendulum.DateTime,
    now: pendulum.DateTime | None = None,
    window: Window | None = None,
) -> Status:
    """Computed state of an open follow-up (see the module docstring for the boundaries).

    ``now`` defaults to ``pendulum.now()``; ``window`` to ``DEFAULT_WINDOWS[kind]``.
    """
    _check_kind(kind)
    w = window if window is not None else DEFAULT_WINDOWS[kind]
    bounds = status_bounds(kind, now if now is not None else pendulum.now("UTC"), w)
    return status_at(_utc(due, "due"), bounds)


def status_bounds(
    kind: str, now: pendulum.DateTime, window: Window
) -> tuple[pendulum.DateTime, pendulum.DateTime, pendulum.DateTime]:
    """The due times (UTC) at which an open follow-up's status changes at ``now``, for
    :func:`status_at`: computed once for a whole queue instead of once per row."""
    _check_kind(kind)
    now_u = _utc(now, "now")
    return (now_u + window.before, now_u, now_u - window.after)


def status_at(
    due: pendulum.DateTime,
    bounds: tuple[pendulum.DateTime, pendulum.DateTime, pendulum.DateTime],
) -> Status:
    """The status of an open follow-up due at ``due`` (UTC) by :func:`status_bounds`."""
    upcoming_after, due_from, overdue_from = bounds
    if due > upcoming_after:  # now < due - before
        return "upcoming"
    if due >= due_from:  # now <= due
        return "due"
    if due >= overdue_from:  # now <= due + after
        return "overdue"
    return "missed"


class TooEarly(RuleError):
    """A score or follow-up taken before its window opens, without confirmation."""

    def __init__(self, kind: str, opens_at: pendulum.DateTime, ended_at: pendulum.DateTime):
        self.kind = kind
        self.opens_at = opens_at
        self.ended_at = ended_at
        what = KIND_WORDS.get(kind, kind)
        after = format_offset((opens_at - ended_at).total_seconds())
        super().__init__(
            f"Too early for the {what}: its window opens {after} after the end of the "
            "procedure; confirm to record it as early (it is flagged and left out of the "
            "in-window figures)"
        )


def opens_at(
    kind: str, ended_at: pendulum.DateTime, window: Window | None = None
) -> pendulum.DateTime:
    """When a follow-up of ``kind`` may first be taken: its due time less the window."""
    w = window if window is not None else default_window(kind)
    return due_at(kind, ended_at) - w.before


def timing(
    kind: str,
    ended_at: pendulum.DateTime,
    taken_at: pendulum.DateTime,
    window: Window | None = None,
) -> Timing:
    """Whether a score or follow-up taken at ``taken_at`` was early, on time or late.

    early: before the window opens; late: after it closes (the follow-up was
    "missed"); on_time: in between, boundaries included.
    """
    w = window if window is not None else default_window(kind)
    taken = _utc(taken_at, "taken_at")
    if taken < opens_at(kind, ended_at, w):
        return "early"
    if taken > due_at(kind, ended_at) + w.after:
        return "late"
    return "on_time"


def offset_minutes(ended_at: pendulum.DateTime, taken_at: pendulum.DateTime) -> float:
    """Minutes from the end of the procedure to when a score was taken (whole seconds)."""
    return whole_second_minutes(
        (_utc(taken_at, "taken_at") - _utc(ended_at, "ended_at")).total_seconds()
    )


def check_taken(
    kind: str,
    ended_at: pendulum.DateTime,
    taken_at: pendulum.DateTime,
    window: Window | None = None,
    *,
    early_ok: bool = False,
) -> Timing:
    """The timing of a score taken now; :class:`TooEarly` if early and not confirmed."""
    when = timing(kind, ended_at, taken_at, window)
    if when == "early" and not early_ok:
        w = window if window is not None else default_window(kind)
        raise TooEarly(kind, opens_at(kind, ended_at, w), _utc(ended_at, "ended_at"))
    return when


def format_offset(seconds: float) -> str:
    """A duration for people: "4:00 min", "1 h 05 min", "2 d 3 h"."""
    seconds = max(0, round(seconds))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d} min"
    hours, rest = divmod(seconds, 3600)
    if hours < 48:
        return f"{hours} h {rest // 60:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def queue_key(state: str, due: pendulum.DateTime) -> tuple[int, pendulum.DateTime]:
    """Sort key for the follow-up queue: by state rank, then earliest due first."""
    return (status_rank(state), _utc(due, "due"))


# --------------------------------------------------------------------------- phrases

# Wrapper templates around pendulum's localised duration ("5 hours", "5 ore").
_PHRASES: dict[str, tuple[str, str, str]] = {
    # locale: (future, past, now)
    "en": ("due in {}", "overdue by {}", "due now"),
    "it": ("scade tra {}", "in ritardo di {}", "scade ora"),
}


@functools.lru_cache(maxsize=64)
def resolve_locale(locale: str | None) -> str:
    """The pendulum locale to use: ``locale`` if pendulum has it, else its language
    (``pt_PT`` -> ``pt`` when present), else ``"en"``."""
    if not locale:
        return "en"
    norm = Locale.normalize_locale(locale)
    for candidate in (norm, norm.split("_")[0]):
        try:
            Locale.load(candidate)
        except ValueError:
            continue
        return candidate
    return "en"


def relative_phrase(
    due: pendulum.DateTime, now: pendulum.DateTime | None = None, locale: str = "en"
) -> str:
    """ "due in 5 hours" / "overdue by 2 hours" (rounded as pendulum's diff_for_humans).

    English and Italian have their own wording; other locales pendulum knows use its
    relative phrase ("in 5 Stunden" / "vor 2 Stunden"); unknown locales fall back to
    English.
    """
    loc = resolve_locale(locale)
    due_u = _utc(due, "due")
    now_u = _utc(now if now is not None else pendulum.now("UTC"), "now")
    if due_u == now_u:
        return _PHRASES.get(loc, _PHRASES.get(loc.split("_")[0], _PHRASES["en"]))[2]
    # An absolute Interval whose ``invert`` flag marks a due time in the future; this is
    # what diff_for_humans passes to format_diff (a signed diff formats as seconds).
    diff = due_u.diff(now_u)
    templates = _PHRASES.get(loc) or _PHRASES.get(loc.split("_")[0])
    if templates is None:
        # pendulum's own relative-to-now phrase in that language
        return pendulum.format_diff(diff, True, False, loc)
    amount = pendulum.format_diff(diff, True, True, loc)
    return (templates[0] if due_u > now_u else templates[1]).format(amount)


# --------------------------------------------------------------------------- time zones


def validate_timezone(name: str) -> str | None:
    """None if ``name`` is a known IANA time zone, else a message for the user."""
    if not name or not name.strip():
        return "Time zone is required (an IANA name such as Europe/Rome)"
    try:
        pendulum.timezone(name.strip())
    except (ValueError, OSError):
        hint = _suggest_timezone(name.strip())
        extra = f" — did you mean {hint}?" if hint else " (use an IANA name such as Europe/Rome)"
        return f"Unknown time zone {name.strip()!r}{extra}"
    return None


def _suggest_timezone(name: str) -> str | None:
    import zoneinfo

    wanted = name.lower().replace(" ", "_")
    for tz in zoneinfo.available_timezones():
        if tz.lower() == wanted:
            return tz
    return None


def to_local(dt: pendulum.DateTime, tz_name: str) -> pendulum.DateTime:
    """``dt`` (aware) shown in ``tz_name``; raises ValueError for an unknown zone."""
    err = validate_timezone(tz_name)
    if err:
        raise ValueError(err)
    return _utc(dt, "dt").in_timezone(tz_name.strip())


def format_local(
    dt: pendulum.DateTime,
    tz_name: str,
    fmt: str = "ddd D MMM YYYY HH:mm",
    locale: str = "en",
) -> str:
    """``dt`` formatted in ``tz_name`` with a pendulum format pattern."""
    return to_local(dt, tz_name).format(fmt, locale=resolve_locale(locale))


# --------------------------------------------------------------------------- follow-up fields

# The fields themselves (labels, ranges, messages) are FieldSpecs in
# :mod:`sma_log.domain.fields`, shared with the forms and the data dictionary.
FOLLOWUP_FIELDS = fields.FOLLOWUP_FIELDS
PDPH_TREATMENT = vocab.PDPH_TREATMENT
CONTACT_METHOD = vocab.CONTACT_METHOD

#: Fields that must be filled when a follow-up is completed ("done").
REQUIRED_ON_COMPLETE: tuple[str, ...] = ("assessor",)
#: What a completed follow-up of each kind must hold (else: close it as declined or
#: not reachable): the outcomes the case series report.
REQUIRED_BY_KIND: dict[str, tuple[str, ...]] = {
    "score_5min": ("satisfaction",),
    "day3": (
        "satisfaction",
        "pdph",
        "back_pain_nrs",
        "radicular_pain",
        "nausea_vomiting",
        "other_event_any",
    ),
}
#: What every stored completed follow-up holds, whenever it was completed: follow-ups
#: done before schema 4 (when only the score and PDPH were required) keep their other
#: questions unknown (NULL), and stay done. Used when such a row is corrected or
#: imported; completing an open follow-up needs all of :data:`REQUIRED_BY_KIND`.
REQUIRED_TO_KEEP: dict[str, tuple[str, ...]] = {
    "score_5min": ("satisfaction",),
    "day3": ("satisfaction", "pdph"),
}

#: The adverse-event questions of the 72-hour call, and the answers that mean "none"
#: (one key in the form answers them all; an unanswered one stays unknown, never "no").
NO_ADVERSE_EVENTS: dict[str, object] = {
    "pdph": False,
    "back_pain_nrs": 0,
    "radicular_pain": False,
    "nausea_vomiting": False,
    "other_event_any": False,
}


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_field(name: str, value: object) -> tuple[object, str | None]:
    """Convert one typed-in value: ``(clean value, None)`` or ``(None, message)``."""
    spec = FOLLOWUP_FIELDS.get(name)
    if spec is None:
        return None, f"Unknown field {name!r}"
    try:
        parsed = spec.parse(value)
    except fields.ValidationError as exc:
        return None, exc.message
    if parsed is None:
        return None, spec.expected()
    return parsed, None


def clean_followup(
    values: Mapping[str, object],
    completing: bool = True,
    kind: str | None = None,
    required: tuple[str, ...] | None = None,
) -> tuple[dict[str, object], dict[str, str]]:
    """Parse and check a follow-up form: ``(clean values, errors field -> message)``.

    Blank values ("" or None) mean "not answered" and are dropped, except that the
    fields in ``REQUIRED_ON_COMPLETE`` and those of ``REQUIRED_BY_KIND`` (or ``required``,
    for a row already completed: see :data:`REQUIRED_TO_KEEP`) must be filled when
    ``completing``. PDPH details
    are only accepted when ``pdph`` is yes (a "no"/"none" detail is dropped), and a
    serious-event flag needs a description.
    """
    clean: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name not in FOLLOWUP_FIELDS:
            errors[name] = f"Unknown field {name!r}"
            continue
        if _is_blank(value):
            continue
        parsed, err = parse_field(name, value)
        if err:
            errors[name] = err
        else:
            clean[name] = parsed
    if (
        "other_event" in clean
        and "other_event_any" not in clean
        and "other_event_any" not in errors
    ):
        clean["other_event_any"] = True  # describing an event is reporting one
    if completing:
        for name in required if required is not None else REQUIRED_BY_KIND.get(kind or "", ()):
            if name not in clean and name not in errors:
                label = FOLLOWUP_FIELDS[name].label
                errors[name] = (
                    f"{label} is required to complete the follow-up "
                    "(or close it as declined / not reachable)"
                )
        for name in REQUIRED_ON_COMPLETE:
            if name not in clean and name not in errors:
                label = FOLLOWUP_FIELDS[name].label
                errors[name] = f"{label} is required to complete the follow-up"
    if clean.get("pdph") is not True:
        for name in fields.PDPH_DETAILS:
            if name not in clean:
                continue
            if clean[name] in (False, "none"):  # an unticked box / "none" says nothing
                del clean[name]
            else:
                errors[name] = "Only record PDPH details when PDPH is yes"
    if clean.get("other_event_any") is False:
        for name in ("other_event", "other_event_serious"):
            if name not in clean:
                continue
            if clean[name] is False:  # "not serious" about no event says nothing
                del clean[name]
            else:
                errors[name] = "No other event was reported: leave this empty"
    elif clean.get("other_event_any") is True:
        if "other_event" not in clean:
            errors.setdefault("other_event", "Describe the other event")
        if "other_event_serious" not in clean:
            errors.setdefault("other_event_serious", "Say whether the event was serious")
    elif clean.get("other_event_serious") is True:
        errors.setdefault("other_event", "Describe the serious event")
    return clean, errors


def validate_followup(values: Mapping[str, object], completing: bool = True) -> dict[str, str]:
    """Errors (field -> message) for a follow-up form; empty when it can be saved.

    ``completing=False`` checks a draft (no required fields).
    """
    return clean_followup(values, completing=completing)[1]
