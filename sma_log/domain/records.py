"""Whole stored records judged by the bedside's own rules: what may enter a database.

The Store validates what people type, field by field, as they type it. A row that
comes from a file (``sma-log import``) or was written by another tool arrives whole,
and is judged here by the same definitions, never by a second copy of them:

* each column by its :class:`~sma_log.domain.fields.FieldSpec` (ranges, lengths,
  required values, the study-code form) or its vocabulary (:mod:`~sma_log.domain.vocab`
  codes), instants in the one stored form (:func:`~sma_log.domain.clock.from_text`),
  ids as ULIDs;
* a procedure's events by the timeline rules, replayed in order with
  :func:`~sma_log.domain.timeline.check` (and ``check_end`` / ``check_cancel``), the
  procedure's status by what its timeline says;
* a completed follow-up by :func:`~sma_log.domain.schedule.clean_followup`.

**Spelling.** A value valid under the shipped JSON Schema but spelled differently is
accepted in its stored form: ``5.0`` for a whole number is ``5``, ``1.0`` for yes is
``1``, a whole number in a decimal column is a decimal, a lower-case study code is
upper-cased, surrounding spaces are trimmed (as when typed). A value of the wrong JSON
type (text for a number, ``true`` for 0/1) is refused, as the schema refuses it.

**Refused**, with the column and a reason (the value shown with
:func:`~sma_log.domain.text.visible`): NaN and infinities; integers beyond SQLite's
64 bits; binary data (BLOBs); a missing id; instants that are not real UTC instants
of the stored form between :data:`EARLIEST_YEAR` and :data:`LATEST_YEAR` (month 13,
year 0); text longer than its field allows; control, format or bidirectional
characters anywhere (a code, an id, a name: the Store strips them from what is typed,
so a stored value never holds one; free-text notes may hold newlines and tabs).

**Derived, never taken from a row.** A procedure's ``attempts_n``, ``redirections_n``,
``first_attempt_success``, milestone instants (``first_puncture_at``, ``csf_at``,
``injection_start_at``, ``injection_end_at``), ``procedure_min``, ``puncture_min``,
``sedation`` and ``sedation_agent`` are recomputed from its events with
:func:`~sma_log.domain.timeline.replay` and :func:`~sma_log.domain.timeline.derived_columns`,
as the Store writes them; so are ``started_at`` / ``ended_at`` / ``cancelled_at`` (the
start, end and cancel events) and ``dose_mg`` (from the regimen). Its ``attempts`` rows
are rebuilt from the attempt events with :func:`~sma_log.domain.timeline.attempt_columns`.
(An undone attempt keeps the columns its row had when it was undone, as the Store
keeps them: they count in no figure and cannot be replayed.) A follow-up's ``due_at``
is recomputed from the end (:func:`~sma_log.domain.schedule.due_at`), its
``contact_attempts_n`` and ``last_contact_at`` from its calls not undone. A stored value
that differs from the recomputed one is reported as a :class:`Recomputed` item.

Text that a de-identified export removes is unknown, not empty: a note event without
its text and a 72-hour "other event: yes" without its description are not refused.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from . import fields, schedule, timeline, vocab
from .clock import from_text, stored_fields, to_text
from .predose import ITEMS
from .text import visible

ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
#: Instants outside these years are refused (a stored instant is a real event's time).
EARLIEST_YEAR = 1970
LATEST_YEAR = 2099
INT64_MAX = 2**63 - 1
#: Events whose ``value`` is free text (removed from a de-identified export).
FREE_TEXT_EVENTS = ("note",)
#: Stand-in for free text a de-identified export removed (never stored).
_REMOVED = "(removed)"


class Bad(ValueError):
    """One value refused; ``str()`` says why."""


@dataclass(frozen=True)
class Refusal:
    """A record left out: its table, id, the column at fault and why."""

    table: str
    id: str
    field: str
    reason: str
    #: Left out only because its parent (or a sibling) was refused.
    cascade: bool = False

    def line(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return visible(f"{self.table} {self.id}{where}: {self.reason}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "id": visible(self.id),
            "field": visible(self.field),
            "reason": visible(self.reason),
            "cascade": self.cascade,
        }


@dataclass(frozen=True)
class Recomputed:
    """A record whose derived columns, as given, disagree with what its events say."""

    table: str
    id: str
    fields: tuple[str, ...]
    reason: str = "recomputed from its events (the given values disagreed)"

    def line(self) -> str:
        return visible(f"{self.table} {self.id} [{', '.join(self.fields)}]: {self.reason}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "id": visible(self.id),
            "fields": list(self.fields),
            "reason": self.reason,
        }


# ---------------------------------------------------------------- showing values
def shown(value: Any) -> str:
    """A refused value, short and with control characters escaped, for a reason."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{len(value)} bytes of binary data"
    if isinstance(value, str):
        cut = value[:40]
        more = f"… ({len(value)} characters)" if len(value) > 40 else ""
        return f"'{visible(cut)}'{more}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) > 10**15:
        return f"a {value.bit_length()}-bit integer"
    if isinstance(value, float):
        return repr(value)
    return visible(repr(value))[:60]


def instant(text: str) -> _dt.datetime:
    """A stored instant as an aware datetime (UTC); ValueError if it is not one.

    The same rule as :func:`~sma_log.domain.clock.from_text` (the one stored form, a
    real date and time), with the standard library: a timeline replays on these.
    """
    return _dt.datetime(*stored_fields(text), tzinfo=_dt.UTC)


def id_text(value: Any) -> str:
    """A record's id as a listing shows it (whatever the file holds there)."""
    if value is None:
        return "(no id)"
    if isinstance(value, str):
        return value
    return f"(id {shown(value)})"


# ---------------------------------------------------------------- one value
def _typed(value: Any, want: str) -> Any:
    """``value`` as the JSON type ``want`` ("string", "integer", "number"), in its
    stored spelling; raises :class:`Bad`."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise Bad(f"binary data ({len(value)} bytes), not a value sma-log stores")
    if want == "string":
        if not isinstance(value, str):
            raise Bad(f"{shown(value)} is not text")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Bad(f"{shown(value)} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise Bad(f"{value!r} is not a number sma-log stores")
    if want == "integer":
        if isinstance(value, float):
            if not value.is_integer():
                raise Bad(f"{shown(value)} is not a whole number")
            value = int(value)
        if abs(value) > INT64_MAX:
            raise Bad(f"{shown(value)} is too large to store")
        return value
    if isinstance(value, int):
        if abs(value) > INT64_MAX:
            raise Bad(f"{shown(value)} is too large to store")
        return float(value)
    return value


def _no_control(text: str, multiline: bool) -> None:
    if text.isprintable():  # the common case (bidi and format characters are not)
        return
    if visible(text, multiline=multiline) != text:
        bad = next(ch for ch in text if visible(ch, multiline=multiline) != ch)
        raise Bad(
            f"{shown(text)} holds a control character ({visible(bad)}): sma-log never stores one"
        )


@functools.lru_cache(maxsize=64)
def _codes(choices: vocab.Choices) -> frozenset[str]:
    return frozenset(vocab.codes(choices))


class Rule:
    """How one column is judged. ``required``: NULL is refused."""

    required = False

    def clean(self, value: Any) -> Any:  # pragma: no cover - every rule overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Id(Rule):
    required: bool = True

    def clean(self, value: Any) -> Any:
        text = _typed(value, "string")
        if not ULID_RE.fullmatch(text):
            raise Bad(f"{shown(text)} is not a record id (26 characters, a ULID)")
        return text


@dataclass(frozen=True)
class Instant(Rule):
    required: bool = True

    def clean(self, value: Any) -> Any:
        text = _typed(value, "string")
        try:
            when = instant(text)
        except ValueError:
            raise Bad(
                f"{shown(text)} is not a UTC instant of the stored form "
                "(2026-03-27T09:00:00.000000Z)"
            ) from None
        if not EARLIEST_YEAR <= when.year <= LATEST_YEAR:
            raise Bad(f"{shown(text)} is out of range ({EARLIEST_YEAR}–{LATEST_YEAR})")
        return text


@dataclass(frozen=True)
class Spec(Rule):
    """Through a domain FieldSpec, in the stored representation (yes/no as 0/1)."""

    spec: fields.FieldSpec
    required: bool = False

    def clean(self, value: Any) -> Any:
        spec = self.spec
        if spec.kind == "text":
            text = _typed(value, "string")
            if len(text) > 4 * spec.max_length + 64:  # never clean megabytes to say so
                raise Bad(f"{spec.label} is too long ({len(text)} > {spec.max_length} characters)")
            _no_control(text, multiline=spec.max_length > 200)
            try:
                parsed = spec.parse(text)
            except fields.ValidationError as exc:
                raise Bad(exc.message) from None
            if parsed is None and self.required:
                raise Bad(f"{spec.label} is required")
            return parsed
        if spec.kind == "choice":
            if spec.name == "sma_type":
                code = str(_typed(value, "integer"))
            else:
                code = _typed(value, "string")
            if code not in _codes(spec.choices):
                raise Bad(
                    f"{spec.label}: {shown(value)} is not one of "
                    f"{', '.join(vocab.codes(spec.choices))}"
                )
            return int(code) if spec.name == "sma_type" else code
        if spec.kind == "bool":
            number = _typed(value, "integer")
            if number not in (0, 1):
                raise Bad(f"{spec.label}: {shown(value)} is not 0 or 1 (no or yes)")
            return number
        number = _typed(value, "integer" if spec.kind == "int" else "number")
        if (spec.minimum is not None and number < spec.minimum) or (
            spec.maximum is not None and number > spec.maximum
        ):
            raise Bad(f"{spec.expected()} (got {shown(value)})")
        return float(number) if spec.kind == "float" else number


@dataclass(frozen=True)
class Code(Rule):
    choices: vocab.Choices
    required: bool = True

    def clean(self, value: Any) -> Any:
        code = _typed(value, "string")
        if code not in _codes(self.choices):
            raise Bad(f"{shown(value)} is not one of {', '.join(vocab.codes(self.choices))}")
        return code


@dataclass(frozen=True)
class Flag(Rule):
    required: bool = False

    def clean(self, value: Any) -> Any:
        number = _typed(value, "integer")
        if number not in (0, 1):
            raise Bad(f"{shown(value)} is not 0 or 1")
        return number


@dataclass(frozen=True)
class Number(Rule):
    whole: bool = False
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False

    def clean(self, value: Any) -> Any:
        number = _typed(value, "integer" if self.whole else "number")
        if self.minimum is not None and number < self.minimum:
            raise Bad(f"{shown(value)} is below {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise Bad(f"{shown(value)} is above {self.maximum:g}")
        return number


@dataclass(frozen=True)
class Text(Rule):
    max_length: int = 200
    multiline: bool = False
    required: bool = False

    def clean(self, value: Any) -> Any:
        text = _typed(value, "string")
        if len(text) > self.max_length:
            raise Bad(f"too long ({len(text)} > {self.max_length} characters)")
        _no_control(text, self.multiline)
        return text


@dataclass(frozen=True)
class Derived(Rule):
    """Recomputed from other records; the given value is only compared."""

    def clean(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Day(Rule):
    """A calendar date ``YYYY-MM-DD`` (a lab result's date)."""

    required: bool = True

    def clean(self, value: Any) -> Any:
        text = _typed(value, "string")
        try:
            day = _dt.date.fromisoformat(text)
        except ValueError:
            raise Bad(f"{shown(text)} is not a date (YYYY-MM-DD)") from None
        if len(text) != 10 or not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
            raise Bad(f"{shown(text)} is not a date (YYYY-MM-DD, {EARLIEST_YEAR}–{LATEST_YEAR})")
        return text


@dataclass(frozen=True)
class Codes(Rule):
    """A comma-separated list of codes (the time-out's required / missing / flags)."""

    allowed: tuple[str, ...] = ()

    def clean(self, value: Any) -> Any:
        text = _typed(value, "string")
        for code in filter(None, text.split(",")):
            if code not in self.allowed:
                raise Bad(f"{shown(code)} is not one of {', '.join(self.allowed)}")
        return text


def _specs(group: Mapping[str, fields.FieldSpec], *skip: str) -> dict[str, Rule]:
    return {n: Spec(s, required=s.required) for n, s in group.items() if n not in skip}


#: The time-out's item codes (:data:`sma_log.domain.predose.ITEMS`) and the lab tests a
#: flag may name (one list each, where they are defined).
_TIMEOUT_ITEMS: tuple[str, ...] = tuple(dict.fromkeys((*ITEMS, *vocab.codes(vocab.LAB_TESTS))))
NOTE = Spec(fields.NOTE_FIELD)
STAFF = Text(100)
EVENT_KINDS: vocab.Choices = tuple((k, k) for k in get_args(timeline.EventKind))

#: Per table, how each column is judged (every column of the stored schema).
RULES: dict[str, dict[str, Rule]] = {
    "patients": {
        "id": Id(),
        **_specs(fields.PATIENT_FIELDS),
        "created_at": Instant(),
        "updated_at": Instant(),
    },
    "identifiers": {
        "id": Id(),
        "patient_id": Id(),
        **_specs(fields.IDENTIFIER_FIELDS),
        "created_at": Instant(required=False),
        "updated_at": Instant(required=False),
    },
    "procedures": {
        "id": Id(),
        "patient_id": Id(),
        "status": Code(vocab.PROCEDURE_STATUS),
        **_specs(fields.SETUP_FIELDS, "sedation", "sedation_agent"),
        "sedation": Derived(),
        "sedation_agent": Derived(),
        "dose_mg": Derived(),
        # drug_delivered is required once the procedure has ended (checked with the status)
        **{n: Spec(s) for n, s in fields.OUTCOME_FIELDS.items()},
        "satisfaction_5min": Spec(fields.SCORE_FIELD),
        "started_at": Derived(),
        "ended_at": Derived(),
        "cancelled_at": Derived(),
        "cancel_reason": NOTE,
        "anchor_boot_id": Text(64),
        "anchor_boottime": Number(),
        **{
            n: Derived()
            for n in (
                "attempts_n",
                "redirections_n",
                "first_attempt_success",
                "first_puncture_at",
                "csf_at",
                "injection_start_at",
                "injection_end_at",
                "procedure_min",
                "puncture_min",
                "vial_out_at",
                "drawn_up_at",
                "injection_sec",
                "drawn_to_injection_min",
            )
        },
        "created_at": Instant(),
        "updated_at": Instant(),
    },
    "attempts": {
        "id": Id(),
        "procedure_id": Id(),
        "number": Number(whole=True, minimum=1),
        "at": Instant(),
        "level": Code(vocab.LEVELS, required=False),
        "approach": Code(vocab.APPROACH, required=False),
        "redirections": Number(whole=True, minimum=0),
        "bone_contact": Flag(),
        "paraesthesia": Flag(),
        "blood": Flag(),
        "csf_obtained": Flag(),
        "voided": Flag(),
    },
    "events": {
        "id": Id(),
        "procedure_id": Id(),
        "seq": Number(whole=True, minimum=1, required=True),
        "kind": Code(EVENT_KINDS),
        "at": Instant(),
        "value": Text(fields.MAX_TEXT, multiline=True),
        "attempt_id": Id(required=False),
        "voided_at": Instant(required=False),
        "recorded_by": STAFF,
    },
    "followups": {
        "id": Id(),
        "procedure_id": Id(),
        "kind": Code(vocab.FOLLOWUP_KINDS),
        "due_at": Derived(),
        "state": Code(vocab.FOLLOWUP_STATE),
        "closed_reason": NOTE,
        "completed_at": Instant(required=False),
        "late": Derived(),
        "contact_attempts_n": Derived(),
        "last_contact_at": Derived(),
        **_specs(fields.FOLLOWUP_FIELDS),
        "created_at": Instant(),
        "updated_at": Instant(),
        "early": Derived(),
        "offset_min": Derived(),
    },
    "contact_attempts": {
        "id": Id(),
        "followup_id": Id(),
        "at": Instant(),
        "outcome": Code((("no_answer", "No answer"),)),
        "by_user": STAFF,
        "note": NOTE,
        "voided_at": Instant(required=False),
    },
    # issue 14: patient-level lab results and the per-procedure pre-dose time-out
    "labs": {
        "id": Id(),
        "patient_id": Id(),
        "test": Code(vocab.LAB_TESTS),
        "value": Number(minimum=0, required=True),  # per test: check_simple
        "unit": Text(20),
        "taken_on": Day(),
        "source": Code(vocab.LAB_SOURCES, required=False),
        "voided_at": Instant(required=False),
        "created_at": Instant(),
        "updated_at": Instant(),
    },
    "timeouts": {
        "id": Id(),
        "procedure_id": Id(),
        **_specs(fields.TIMEOUT_FIELDS),
        "antithrombotic_last_at": Instant(required=False),
        **{f"{t}_lab_id": Id(required=False) for t in vocab.codes(vocab.LAB_TESTS)},
        "required": Codes(_TIMEOUT_ITEMS),
        "missing": Codes(_TIMEOUT_ITEMS),
        "flags": Codes(_TIMEOUT_ITEMS),
        "complete": Flag(),
        "reason": Spec(fields.TIMEOUT_REASON_FIELD),
        "confirmed_at": Instant(required=False),
        "confirmed_by": STAFF,
        "created_at": Instant(),
        "updated_at": Instant(),
    },
}
#: Columns a row must have, per table.
REQUIRED: dict[str, tuple[str, ...]] = {
    t: tuple(n for n, r in rules.items() if r.required) for t, rules in RULES.items()
}
#: Columns never taken from a row (recomputed), per table.
DERIVED: dict[str, tuple[str, ...]] = {
    t: tuple(n for n, r in rules.items() if isinstance(r, Derived)) for t, rules in RULES.items()
}
DERIVED["attempts"] = tuple(n for n in RULES["attempts"] if n != "id")


def clean_row(table: str, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Refusal]]:
    """The row's columns in their stored form (derived ones left out), and what is wrong.

    A column absent from ``raw`` stays absent (unknown: a de-identified export removed
    it); one present with ``None`` is NULL, refused where the column is required.
    """
    rules = RULES[table]
    rid = id_text(raw.get("id"))
    out: dict[str, Any] = {}
    problems: list[Refusal] = []
    for name, value in raw.items():
        rule = rules.get(name)
        if rule is None:
            problems.append(Refusal(table, rid, visible(str(name)), "unknown column"))
            continue
        if isinstance(rule, Derived):
            continue
        if value is None:
            if rule.required:
                what = "no id" if name == "id" else "required, but empty"
                problems.append(Refusal(table, rid, name, what))
            out[name] = None
            continue
        try:
            out[name] = rule.clean(value)
        except Bad as exc:
            problems.append(Refusal(table, rid, name, str(exc)))
    for name in REQUIRED[table]:  # a required column absent is not unknown: missing
        if name not in raw:
            problems.append(Refusal(table, rid, name, "no id" if name == "id" else "missing"))
    return out, problems


def same(a: Any, b: Any) -> bool:
    """Stored values equal (a whole number equals its decimal spelling)."""
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _differing(given: Mapping[str, Any], computed: Mapping[str, Any]) -> tuple[str, ...]:
    """Columns present in ``given`` whose value is not the computed one."""
    return tuple(k for k, v in computed.items() if k in given and not same(given[k], v))


# ---------------------------------------------------------------- a procedure and its children
@dataclass
class Family:
    """A procedure with its children, checked: what may be stored, and what may not.

    ``procedure`` is None when the procedure (with its events and attempts) is refused;
    the follow-ups and calls that pass are in ``followups`` / ``contacts``.
    """

    id: str
    procedure: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    recomputed: list[Recomputed] = field(default_factory=list)
    state: timeline.State | None = None

    @property
    def ok(self) -> bool:
        return not self.refused


def _derived_procedure(
    row: Mapping[str, Any],
    state: timeline.State,
    events: Sequence[Mapping[str, Any]],
    texts: Mapping[Any, str],
) -> dict[str, Any]:
    """Every derived column of a procedure, from its replayed timeline."""
    live = [e for e in events if e.get("voided_at") is None]

    def at(kind: str) -> str | None:
        return next((e["at"] for e in live if e["kind"] == kind), None)

    regimen = row.get("regimen")
    dose = vocab.DOSE_MG.get(regimen) if isinstance(regimen, str) else None
    return {
        "started_at": at("start"),
        "ended_at": at("end"),
        "cancelled_at": at("cancel"),
        "dose_mg": None if dose is None else float(dose),
        **timeline.derived_columns(state, texts.__getitem__),
    }


def _attempt_rows(
    proc_id: str,
    state: timeline.State,
    given: Mapping[str, Mapping[str, Any]],
    texts: Mapping[Any, str],
) -> list[dict[str, Any]]:
    """The attempts rows of a replayed timeline, as ``Store._sync_derived`` writes them.

    An undone attempt keeps its other columns as given (when valid): the Store leaves
    them as they were when it was undone, and they cannot be replayed.
    """
    rows = []
    for att in [*state.attempts, *state.voided_attempts]:
        row = {
            "id": att.id,
            "procedure_id": proc_id,
            "at": texts[att.at],
            **timeline.attempt_columns(att),
        }
        old = given.get(att.id)
        if att.voided and old is not None:
            kept, problems = clean_row("attempts", old)
            if not problems:
                for name in ("number", "level", "approach", "redirections"):
                    if name in kept:
                        row[name] = kept[name]
                for name in ("bone_contact", "paraesthesia", "blood", "csf_obtained"):
                    if kept.get(name) is not None:
                        row[name] = kept[name]
        rows.append(row)
    return rows


def _event(row: Mapping[str, Any]) -> timeline.Event:
    return timeline.Event(
        id=row["id"],
        kind=row["kind"],
        at=instant(row["at"]),
        value=row.get("value"),
        attempt_id=row.get("attempt_id"),
        voided=row.get("voided_at") is not None,
    )


def _sedation_value(value: str | None, *, start: bool) -> None:
    """A start or sedation event's ``code|agent``: a sedation code and an agent name."""
    if value is None:
        return
    code, _, agent = value.partition("|")
    if code not in vocab.codes(vocab.SEDATION) and not (start and code == ""):
        raise timeline.RuleError(f"Unknown sedation: {visible(code)[:40]}")
    if agent:
        try:
            Spec(fields.SETUP_FIELDS["sedation_agent"]).clean(agent)
        except Bad as exc:
            raise timeline.RuleError(f"sedation agent: {exc}") from None


def check_timeline(
    proc: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> tuple[timeline.State | None, list[Refusal]]:
    """Replay clean event rows (sorted by ``seq``) with the bedside's rules (see
    :func:`_replayed`): the final state, or None and the refusals."""
    state, refused, _ = _replayed(proc, events)
    return state, refused


def _replayed(
    proc: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> tuple[timeline.State | None, list[Refusal], dict[Any, str]]:
    """Replay clean event rows (sorted by ``seq``) with the bedside's rules.

    Returns the final state (or None), the refusals, and each replayed instant back to
    its stored text. Refused: event numbers 1, 2, 3 … from
    the start, instants never going back, every live event allowed by
    :func:`timeline.check` at its place (the end by ``check_end``, a cancel by
    ``check_cancel``), only undoable kinds undone, before the end; the procedure's
    status what its timeline says.
    """
    pid = id_text(proc.get("id"))
    refused: list[Refusal] = []

    def bad(row: Mapping[str, Any], column: str, reason: str) -> None:
        refused.append(Refusal("events", id_text(row.get("id")), column, reason))

    if not events:
        return None, [Refusal("procedures", pid, "events", "no events: it has no start")], {}
    level, approach = proc.get("level_intended"), proc.get("approach")
    state = timeline.State()
    attempt_ids: set[str] = set()
    seen: set[str] = set()
    last_at = ""
    replayed: list[timeline.Event] = []
    texts: dict[Any, str] = {}
    for n, row in enumerate(events, start=1):
        seq, kind, value = row["seq"], row["kind"], row.get("value")
        where = f"event {seq} ({kind})"
        if seq != n:
            bad(row, "seq", f"{where}: events must be numbered 1, 2, 3 … (expected {n})")
            break
        if row["id"] in seen:
            bad(row, "id", f"{where}: the id of another event of this procedure")
            break
        seen.add(row["id"])
        if row["at"] < last_at:
            bad(row, "at", f"{where}: before the event it follows ({last_at})")
            break
        last_at = row["at"]
        if row.get("attempt_id") is not None and row["attempt_id"] not in attempt_ids:
            bad(row, "attempt_id", f"{where}: not an attempt earlier on this timeline")
            break
        voided = row.get("voided_at") is not None
        try:
            if n == 1:
                if kind != "start" or voided:
                    raise timeline.RuleError("a timeline begins with its start")
                _sedation_value(value, start=True)
            elif voided:
                if kind not in timeline.UNDOABLE:
                    raise timeline.RuleError(f"a {kind} event cannot be undone")
                if state.ended or state.cancelled:
                    raise timeline.RuleError("nothing is added after the end")
            elif kind == "end":
                if value not in ("delivered", "failed"):
                    raise timeline.RuleError(f"the end says {shown(value)}, not delivered/failed")
                timeline.check_end(state, value == "delivered")
            elif kind == "cancel":
                timeline.check_cancel(state)
            elif kind == "note" and value is None:
                timeline.check(state, "end")  # text removed (de-identified): in its place
            elif kind == "sedation":
                timeline.check(state, kind, value)
                _sedation_value(value, start=False)
            elif kind in timeline.DRUG_KINDS:  # an entered time: not after the event itself
                timeline.check_drug_time(state, kind, value, instant(row["at"]))
            else:
                timeline.check(state, kind, value)
        except timeline.RuleError as exc:
            bad(row, "kind", f"{where}: {exc}")
            break
        if kind == "attempt":
            attempt_ids.add(row["id"])
        event = _event(row)
        replayed.append(event)
        texts[event.at] = row["at"]
        if not voided:
            timeline._apply(state, event, level, approach)
    if refused:
        return None, refused, texts
    final = timeline.replay(replayed, level, approach)
    status = proc.get("status")
    says = "cancelled" if final.cancelled else "ended" if final.ended else "open"
    if status != says:
        refused.append(
            Refusal("procedures", pid, "status", f"status {status} but its timeline says {says}")
        )
    if says == "ended" and proc.get("drug_delivered") is None and "drug_delivered" in proc:
        refused.append(Refusal("procedures", pid, "drug_delivered", "ended: required"))
    if says != "ended" and proc.get("satisfaction_5min") is not None:
        refused.append(Refusal("procedures", pid, "satisfaction_5min", "a score before the end"))
    for name in ("drug_delivered", "failure_reason", "fallback"):
        if says != "ended" and proc.get(name) is not None:
            refused.append(Refusal("procedures", pid, name, f"an outcome, but it is {says}"))
    return (None if refused else final), refused, texts


def _followup_answers(row: Mapping[str, Any]) -> dict[str, Any]:
    answers = {n: row[n] for n in fields.FOLLOWUP_FIELDS if row.get(n) is not None}
    if answers.get("other_event_any") == 1 and "other_event" not in answers:
        answers["other_event"] = _REMOVED  # removed by a de-identified export: unknown
    return answers


def _timing(
    row: Mapping[str, Any], procedure: Mapping[str, Any] | None, refused: list[Refusal]
) -> dict[str, Any]:
    """``early``, ``late`` and ``offset_min`` of a follow-up, from its instants: when a
    completed one was taken against its window (the default windows: the file does not
    say which the site used), never taken from the file. A completed follow-up taken
    before its procedure ended is refused."""
    out: dict[str, Any] = {"early": 0, "late": 0, "offset_min": None}
    ended = procedure.get("ended_at") if procedure is not None else None
    completed = row.get("completed_at")
    kind = row.get("kind")
    if row.get("state") != "done" or not ended or not completed:
        return out
    end, taken = from_text(ended), from_text(completed)
    if taken < end:
        refused.append(
            Refusal(
                "followups",
                id_text(row.get("id")),
                "completed_at",
                f"taken at {completed}, before its procedure ended ({ended})",
            )
        )
        return out
    when = schedule.timing(str(kind), end, taken)
    out.update(
        early=int(when == "early"),
        late=int(when == "late"),
        offset_min=schedule.offset_minutes(end, taken),
    )
    return out


def check_followup(
    row: Mapping[str, Any],
    contacts: Sequence[Mapping[str, Any]],
    procedure: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], list[Refusal]]:
    """A clean follow-up row with its derived columns, or the reasons it is refused.

    ``procedure`` (its stored form, derived columns included) is needed for ``due_at``
    and the checks against the procedure; None skips them.
    """
    fid = id_text(row.get("id"))
    refused: list[Refusal] = []
    out = dict(row)
    kind, state = row.get("kind"), row.get("state")
    if procedure is not None:
        ended = procedure.get("ended_at")
        if procedure.get("status") != "ended" or not ended:
            refused.append(
                Refusal(
                    "followups",
                    fid,
                    "procedure_id",
                    f"its procedure has not ended (status {procedure.get('status')})",
                )
            )
        else:
            out["due_at"] = to_text(schedule.due_at(str(kind), from_text(ended)))
        if (
            kind == "score_5min"
            and state == "done"
            and "satisfaction_5min" in procedure
            and not same(procedure.get("satisfaction_5min"), row.get("satisfaction"))
        ):
            refused.append(
                Refusal(
                    "followups",
                    fid,
                    "satisfaction",
                    f"the score {row.get('satisfaction')} is not the procedure's "
                    f"({procedure.get('satisfaction_5min')})",
                )
            )
    # No export removes completed_at and every schema has it: absent is missing, not
    # unknown (a new record would be stored without it).
    completed = row.get("completed_at")
    if state == "open" and completed is not None:
        refused.append(Refusal("followups", fid, "completed_at", "open, yet completed"))
    if state != "open" and completed is None:
        refused.append(Refusal("followups", fid, "completed_at", f"{state}, but when?"))
    out.update(_timing(row, procedure, refused))
    answers = _followup_answers(row)
    if state == "done" and kind == "day3":
        # what every stored completed call holds (one completed before schema 4 may
        # leave the newer questions unknown): the file records what was asked
        _, errors = schedule.clean_followup(
            answers, completing=True, kind="day3", required=schedule.REQUIRED_TO_KEEP["day3"]
        )
    else:
        _, errors = schedule.clean_followup(answers, completing=False)
        if state == "done" and "satisfaction" not in answers:
            errors.setdefault("satisfaction", "done, without its score")
    for name, message in errors.items():
        refused.append(Refusal("followups", fid, name, message))
    live = [c for c in contacts if c.get("voided_at") is None]
    out["contact_attempts_n"] = len(live)
    out["last_contact_at"] = max((c["at"] for c in live), default=None)
    return out, refused


def check_family(
    procedure: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]] = (),
    attempts: Iterable[Mapping[str, Any]] = (),
    followups: Iterable[Mapping[str, Any]] = (),
    contacts: Iterable[Mapping[str, Any]] = (),
) -> Family:
    """Judge one procedure with every child of it a file (or a database) holds.

    Refusing the procedure, an event or the timeline refuses the procedure with all its
    children; refusing a follow-up or one of its calls refuses that follow-up with its
    calls. Derived columns are recomputed; disagreements are listed in ``recomputed``.
    """
    pid = id_text(procedure.get("id"))
    fam = Family(pid)
    events, attempts = list(events), list(attempts)
    proc, problems = clean_row("procedures", procedure)
    ev_rows: list[dict[str, Any]] = []
    for raw in events:
        row, bad = clean_row("events", raw)
        problems += bad
        if not bad and row.get("procedure_id") != proc.get("id"):
            problems.append(Refusal("events", id_text(raw.get("id")), "procedure_id", "mismatch"))
        ev_rows.append(row)
    given_attempts: dict[str, Mapping[str, Any]] = {}
    stray: list[str] = []
    for raw in attempts:
        rid = raw.get("id")
        if isinstance(rid, str) and rid not in given_attempts:
            given_attempts[rid] = raw
        else:
            stray.append(id_text(rid))
    fu_rows = list(followups)
    ca_rows = list(contacts)
    state = None
    texts: dict[Any, str] = {}
    if not problems:
        ev_rows.sort(key=lambda r: r["seq"])
        state, problems, texts = _replayed(proc, ev_rows)
    children = (
        ("events", events),
        ("attempts", list(given_attempts.values())),
        ("followups", fu_rows),
        ("contact_attempts", ca_rows),
    )
    if problems:
        fam.refused += problems
        _cascade(fam, children)
        return fam
    assert state is not None
    derived = _derived_procedure(proc, state, ev_rows, texts)
    if proc.get("status") == "ended" and derived["ended_at"] is None:  # pragma: no cover
        raise AssertionError("an ended timeline without its end")
    given = dict(procedure)
    diff = _differing(given, derived)
    fam.procedure = {**proc, **derived}
    fam.events = ev_rows
    fam.state = state
    if diff:
        fam.recomputed.append(Recomputed("procedures", pid, diff))
    fam.attempts = _attempt_rows(pid, state, given_attempts, texts)
    made = {r["id"]: r for r in fam.attempts}
    for rid, raw in given_attempts.items():
        if rid not in made:
            fam.recomputed.append(
                Recomputed("attempts", rid, (), "not an attempt on its timeline: left out")
            )
            continue
        d = _differing(raw, made[rid])
        if d:
            fam.recomputed.append(Recomputed("attempts", rid, d))
    for rid in stray:
        fam.recomputed.append(Recomputed("attempts", rid, (), "a repeated or missing id: left out"))
    for rid in made.keys() - given_attempts.keys():
        if given_attempts or stray:
            fam.recomputed.append(
                Recomputed("attempts", rid, (), "missing: rebuilt from its attempt event")
            )
    fam.followups, fam.contacts = _check_followups(fam, fu_rows, ca_rows)
    if fam.refused:
        # An ended procedure without one of its follow-ups would leave a call nobody
        # makes: a refused follow-up (or call) refuses the whole procedure.
        _cascade(fam, children)
        fam.procedure, fam.state = None, None
        fam.events, fam.attempts, fam.followups, fam.contacts = [], [], [], []
    return fam


def _cascade(fam: Family, children: Iterable[tuple[str, Iterable[Mapping[str, Any]]]]) -> None:
    """Refuse the procedure and every child not already refused, naming the first cause."""
    first = fam.refused[0]
    why = f"left out with its procedure {fam.id} ({first.table} {first.id}: {first.field})"
    named = {(p.table, p.id) for p in fam.refused}
    if ("procedures", fam.id) not in named:
        fam.refused.append(Refusal("procedures", fam.id, first.field, why, cascade=True))
    for table, rows in children:
        for r in rows:
            rid = id_text(r.get("id"))
            if (table, rid) not in named:
                fam.refused.append(Refusal(table, rid, "", why, cascade=True))


def _check_followups(
    fam: Family, followups: list[Mapping[str, Any]], contacts: list[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_fu: dict[Any, list[Mapping[str, Any]]] = {}
    for c in contacts:
        fid = c.get("followup_id")
        by_fu.setdefault(fid if isinstance(fid, str) else None, []).append(c)
    kinds: set[Any] = set()
    kept_f: list[dict[str, Any]] = []
    kept_c: list[dict[str, Any]] = []
    for raw in followups:
        fid = id_text(raw.get("id"))
        row, problems = clean_row("followups", raw)
        calls = by_fu.pop(raw.get("id"), []) if isinstance(raw.get("id"), str) else []
        clean_calls = []
        for c in calls:
            crow, cbad = clean_row("contact_attempts", c)
            problems += cbad
            clean_calls.append(crow)
        if not problems and row.get("procedure_id") != fam.id:
            problems.append(Refusal("followups", fid, "procedure_id", "mismatch"))
        if not problems and row["kind"] in kinds:
            problems.append(Refusal("followups", fid, "kind", f"a second {row['kind']} follow-up"))
        if not problems:
            row_d, problems = check_followup(row, clean_calls, fam.procedure)
        if problems:
            fam.refused += problems
            why = f"left out with its follow-up {fid}"
            named = {(p.table, p.id) for p in problems}
            if ("followups", fid) not in named:
                fam.refused.append(Refusal("followups", fid, problems[0].field, why, cascade=True))
            for c in calls:
                cid = id_text(c.get("id"))
                if ("contact_attempts", cid) not in named:
                    fam.refused.append(Refusal("contact_attempts", cid, "", why, cascade=True))
            continue
        kinds.add(row["kind"])
        diff = _differing(raw, {k: row_d[k] for k in DERIVED["followups"] if k in row_d})
        if diff:
            fam.recomputed.append(Recomputed("followups", fid, diff))
        kept_f.append(row_d)
        kept_c += clean_calls
    for fid, calls in by_fu.items():  # calls of no follow-up of this procedure
        for c in calls:
            fam.refused.append(
                Refusal(
                    "contact_attempts",
                    id_text(c.get("id")),
                    "followup_id",
                    f"its follow-up {id_text(fid)} is not with its procedure",
                )
            )
    return kept_f, kept_c


def check_simple(table: str, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Refusal]]:
    """A patient, identifiers, lab or time-out row (no children to replay): the clean
    row or refusals. A lab value is judged by its test's field spec (what a laboratory
    can report, e.g. no negative platelet count)."""
    row, problems = clean_row(table, raw)
    if table == "labs" and not problems:
        spec = fields.LAB_VALUE_FIELDS.get(str(row.get("test")))
        value = row.get("value")
        if spec is not None and value is not None:
            try:
                spec.parse(value)
            except fields.ValidationError as exc:
                problems.append(Refusal(table, id_text(raw.get("id")), "value", exc.message))
    return row, problems
