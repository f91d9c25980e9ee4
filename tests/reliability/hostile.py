"""Hostile input: strategies and the checks every stored or shown value must pass.

Shared by tests/reliability/test_hostile.py and benchmarks/stress_hostile.py (which
only raises the example counts).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from hypothesis import strategies as st

from sma_log.domain import fields, vocab

SPECIALS = [
    "[bold]x[/bold]",
    "[red]x[/]",
    "[link=https://evil.example/]click[/link]",
    "[@click=app.quit]quit[/]",
    "[@click=app.bell]",
    "[/]",
    "[",
    "\\[escaped]",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;pwned\x07",
    "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",
    "\x1b[2J\x1b[H",
    "\x9b31m",
    "\x00",
    "a\x00b",
    "\r\n",
    "\t",
    "\u202eevil\u202c",
    "مرحبا بالعالم",
    "שלום",
    "👩‍⚕️💉🧬",
    "\ufeff",
    "\u200b\u200d",
    "\ud800",
    "Z̸̡̢a̴̛l̵g̷o̶",
    "=cmd|' /C calc'!A0",
    "+1",
    "-2",
    "@SUM(1)",
    "1e309",
    "nan",
    "-0",
    "１２",  # full-width digits
    "٣",  # Arabic-Indic digit
    "L3-L4",
    "yes",
    "12,5",
    "0x1A",
    "1_000",
    " 22 ",
]

hostile_text = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(max_size=40),
    st.text(st.characters(codec=None), max_size=60),
    st.lists(st.sampled_from(SPECIALS), min_size=2, max_size=5).map("".join),
    st.tuples(st.sampled_from(SPECIALS), st.text(max_size=20)).map("".join),
    st.integers(190, 5000).map(lambda n: "x" * n),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from([code for code, _ in vocab.LEVELS]),
)

# argv as the kernel hands it over: any bytes but NUL (Python sees surrogate escapes)
hostile_argv_bytes = st.one_of(
    st.binary(min_size=1, max_size=30).map(lambda b: b.replace(b"\0", b"") or b"\xff"),
    st.sampled_from([b"\xff\xfe", b"caf\xe9", b"\xc3(", b"\x1b[2J\xff", b"[red]\xff[/]"]),
)


def _no_surrogates(text: str) -> bool:
    return not any("\ud800" <= c <= "\udfff" for c in text)


# In-process argv (click's test runner): text without lone surrogates, and without NUL
# (a real argv cannot hold one: the kernel ends each argument at NUL).
hostile_arg = hostile_text.map(lambda s: s.replace("\0", "")).filter(
    lambda s: len(s) < 3000 and _no_surrogates(s)
)

ALL_SPECS: dict[str, fields.FieldSpec] = {}
for group in (
    fields.PATIENT_FIELDS,
    fields.IDENTIFIER_FIELDS,
    fields.SETUP_FIELDS,
    fields.OUTCOME_FIELDS,
    fields.FOLLOWUP_FIELDS,
):
    for spec in group.values():
        ALL_SPECS[f"{spec.name}"] = spec
ALL_SPECS["satisfaction_5min"] = fields.SCORE_FIELD
ALL_SPECS["timeline_note"] = fields.NOTE_FIELD


def bad_char(ch: str, multiline: bool) -> bool:
    """A character that must never be stored: controls, surrogates, unassigned, format
    controls that reorder text (bidi overrides)."""
    if ch in "\n\t" and multiline:
        return False
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cs", "Co", "Cn") or ch in "\u202a\u202b\u202c\u202d\u202e"


def check_text(value: str, spec: fields.FieldSpec | None = None) -> list[str]:
    problems = []
    multiline = spec is not None and spec.max_length > 200
    bad = [hex(ord(c)) for c in value if bad_char(c, multiline)]
    if bad:
        problems.append(f"stored control/invalid characters {bad[:5]} in {value[:40]!r}")
    if spec is not None and len(value) > max(spec.max_length, 32):
        problems.append(f"{spec.name}: {len(value)} characters stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(f"not encodable as UTF-8: {value[:40]!r}")
    return problems


def check_value(spec: fields.FieldSpec, value: Any) -> list[str]:
    """A parsed value is valid for its spec and parses to itself."""
    if value is None:
        return []
    problems: list[str] = []
    if spec.kind == "text":
        if not isinstance(value, str):
            return [f"{spec.name}: {type(value).__name__} for a text field"]
        problems += check_text(value, spec)
        if spec.name == "study_code" and not fields.STUDY_CODE_RE.match(value):
            problems.append(f"study code {value!r} stored")
    elif spec.kind in ("int", "float"):
        import math

        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{spec.name}: {value!r} is not a number"]
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{spec.name}: {value!r}")
        if spec.kind == "int" and not isinstance(value, int):
            problems.append(f"{spec.name}: {value!r} not whole")
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"{spec.name}: {value!r} < {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"{spec.name}: {value!r} > {spec.maximum}")
    elif spec.kind == "choice":
        codes = vocab.codes(spec.choices)
        if str(value) not in [str(c) for c in codes]:
            problems.append(f"{spec.name}: {value!r} not a choice")
    elif spec.kind == "bool" and not isinstance(value, bool):
        problems.append(f"{spec.name}: {value!r} not a bool")
    if not problems:
        again = spec.parse(value)
        if again != value:
            problems.append(f"{spec.name}: {value!r} parses again to {again!r}")
    return problems
