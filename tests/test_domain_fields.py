"""Field specs: typed text in, a typed value or a ValidationError with a message out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sma_log.domain import fields, vocab
from sma_log.domain.cells import number_text
from sma_log.domain.fields import (
    OUTCOME_FIELDS,
    PATIENT_FIELDS,
    SCORE_FIELD,
    SETUP_FIELDS,
    ValidationError,
)

GAUGE = SETUP_FIELDS["needle_gauge"]
COBB = SETUP_FIELDS["cobb_angle"]
BMI = SETUP_FIELDS["bmi"]
CODE = PATIENT_FIELDS["study_code"]

ALL_SPECS = [
    *PATIENT_FIELDS.values(),
    *fields.IDENTIFIER_FIELDS.values(),
    *SETUP_FIELDS.values(),
    *OUTCOME_FIELDS.values(),
    SCORE_FIELD,
    fields.NOTE_FIELD,
]


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("raw", ["40", "abc", "7.5", "17", "28", "22.0", "", " 2 2 ", "nan"])
def test_gauge_refuses_bad_text_with_the_message(raw: str) -> None:
    if raw == "":
        assert GAUGE.parse(raw) is None  # optional field left empty
        return
    with pytest.raises(ValidationError) as info:
        GAUGE.parse(raw)
    assert info.value.field == "needle_gauge"
    assert str(info.value) == "Needle gauge must be a whole number from 18 to 27 G"
    assert info.value.message == str(info.value)


@pytest.mark.parametrize(("raw", "value"), [("18", 18), (" 27 ", 27), (22, 22), (22.0, 22)])
def test_gauge_accepts_whole_numbers_in_range(raw: object, value: int) -> None:
    got = GAUGE.parse(raw)
    assert got == value
    assert type(got) is int


@pytest.mark.parametrize("raw", ["-5", "150.1", "inf", "-inf", "1e3", -0.5, True])
def test_cobb_refused(raw: object) -> None:
    with pytest.raises(ValidationError, match=r"^Cobb angle must be a number from 0 to 150°$"):
        COBB.parse(raw)


@pytest.mark.parametrize(("raw", "value"), [("0", 0.0), ("150", 150.0), ("45,5", 45.5)])
def test_cobb_accepted(raw: str, value: float) -> None:
    assert COBB.parse(raw) == value


@pytest.mark.parametrize(("raw", "ok"), [("9.9", False), ("10", True), ("18.5", True),
                                          ("18,5", True), ("70", True), ("70.01", False),
                                          ("fat", False)])  # fmt: skip
def test_bmi(raw: str, ok: bool) -> None:
    if ok:
        assert BMI.parse(raw) == float(raw.replace(",", "."))
    else:
        with pytest.raises(ValidationError, match=r"BMI must be a number from 10 to 70 kg/m²"):
            BMI.parse(raw)


@pytest.mark.parametrize("raw", ["0", "6", "7", "4.5", "five", True])
def test_score_refused(raw: object) -> None:
    with pytest.raises(ValidationError, match="Satisfaction at 5 min must be a whole number"):
        SCORE_FIELD.parse(raw)


def test_very_long_number_text_is_refused_not_crashed() -> None:
    with pytest.raises(ValidationError):
        GAUGE.parse("2" * 5000)


# ---------------------------------------------------------------- study code
@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("SMA-001", "SMA-001"),
        ("sma-001", "SMA-001"),
        ("  abc123 ", "ABC123"),
        ("a", "A"),
        ("A" * 32, "A" * 32),
        ("sma\x00-0\x0701", "SMA-001"),  # control characters are stripped first
    ],
)
def test_study_code_accepted_and_upper_cased(raw: str, value: str) -> None:
    assert CODE.parse(raw) == value


@pytest.mark.parametrize(
    "raw", ["-SMA", "SMA-", "SMA 001", "SMA_001", "SMA/1", "é01", "A" * 33, "SMA.1", "--"]
)
def test_study_code_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        CODE.parse(raw)
    assert info.value.field == "study_code"
    assert "letters, digits and hyphens only" in str(info.value)


@pytest.mark.parametrize("raw", [None, "", "   ", "\x00\x01"])
def test_study_code_required(raw: object) -> None:
    with pytest.raises(ValidationError):
        CODE.parse(raw)


def test_study_code_case_insensitive_match_is_same_value() -> None:
    assert CODE.parse("sma-abc-01") == CODE.parse("SMA-ABC-01") == CODE.parse("Sma-Abc-01")


# ---------------------------------------------------------------- text
def test_control_characters_stripped_from_text() -> None:
    op = SETUP_FIELDS["operator"]
    assert op.parse("Dr\x1b Ro\x00ssi\x7f\u200b ") == "Dr Rossi"
    # notes keep tabs and newlines inside
    assert fields.NOTE_FIELD.parse("line 1\n\tline 2\x07") == "line 1\n\tline 2"


def test_text_too_long_refused() -> None:
    with pytest.raises(ValidationError, match=r"too long \(2001 > 2000"):
        fields.NOTE_FIELD.parse("x" * 2001)
    assert fields.NOTE_FIELD.parse("x" * 2000) == "x" * 2000


def test_required_text_of_only_control_characters_refused() -> None:
    with pytest.raises(ValidationError, match="Operator is required"):
        SETUP_FIELDS["operator"].parse("\x00\x1b")


def test_optional_text_empty_is_none() -> None:
    assert SETUP_FIELDS["assistant"].parse("  ") is None
    assert SETUP_FIELDS["assistant"].parse("\x00") is None


# ---------------------------------------------------------------- choices and bools
def test_choice_codes() -> None:
    reg = SETUP_FIELDS["regimen"]
    for code in vocab.codes(vocab.REGIMENS):
        assert reg.parse(code) == code
    assert reg.parse(" std_maintenance ") == "std_maintenance"
    with pytest.raises(ValidationError, match="choose one of"):
        reg.parse("12 mg maintenance")  # the label is not the code
    with pytest.raises(ValidationError):
        reg.parse("STD_MAINTENANCE")  # codes are exact
    with pytest.raises(ValidationError, match="Regimen / dose is required"):
        reg.parse("")


def test_sma_type_is_an_int() -> None:
    spec = PATIENT_FIELDS["sma_type"]
    assert spec.parse("3") == 3
    assert spec.parse(2) == 2
    with pytest.raises(ValidationError):
        spec.parse("5")
    with pytest.raises(ValidationError):
        spec.parse("0")


def test_every_vocabulary_has_unique_codes_and_dose_for_every_regimen() -> None:
    for name in dir(vocab):
        value = getattr(vocab, name)
        if name.isupper() and isinstance(value, tuple):
            codes = vocab.codes(value)
            assert len(codes) == len(set(codes)), name
    assert set(vocab.DOSE_MG) == set(vocab.codes(vocab.REGIMENS))
    assert vocab.label(vocab.SEDATION, "general") == "General anaesthesia"
    assert vocab.label(vocab.SEDATION, None) == "—"
    assert vocab.label(vocab.SEDATION, "zzz") == "zzz"


@pytest.mark.parametrize(("raw", "value"), [("yes", True), ("Y", True), ("0", False),
                                             (False, False), (1, True), ("no", False)])  # fmt: skip
def test_bool(raw: object, value: bool) -> None:
    assert OUTCOME_FIELDS["drug_delivered"].parse(raw) is value


def test_bool_refused() -> None:
    with pytest.raises(ValidationError, match="answer yes or no"):
        OUTCOME_FIELDS["drug_delivered"].parse("maybe")
    with pytest.raises(ValidationError, match="Drug delivered is required"):
        OUTCOME_FIELDS["drug_delivered"].parse(None)


# ---------------------------------------------------------------- validate / errors
def test_validate_and_errors() -> None:
    good = fields.validate(SETUP_FIELDS, {"needle_gauge": "22", "regimen": "std_loading_1"})
    assert good == {"needle_gauge": 22, "regimen": "std_loading_1"}
    with pytest.raises(ValidationError) as info:
        fields.validate(SETUP_FIELDS, {"needle_gauge": "22", "bogus": "1"})
    assert info.value.field == "bogus"
    errs = fields.errors(SETUP_FIELDS, {"needle_gauge": "40", "cobb_angle": "-5", "bmi": "20"})
    assert set(errs) == {"needle_gauge", "cobb_angle"}
    assert errs["cobb_angle"] == "Cobb angle must be a number from 0 to 150°"


def test_carry_over_fields_are_setup_fields() -> None:
    assert set(fields.CARRY_OVER) <= set(SETUP_FIELDS)


# ---------------------------------------------------------------- property
@settings(max_examples=300, deadline=None)
@given(spec=st.sampled_from(ALL_SPECS), raw=st.text(max_size=60))
def test_parse_never_raises_anything_but_validation_error(spec: fields.FieldSpec, raw: str) -> None:
    try:
        spec.parse(raw)
    except ValidationError as exc:
        assert exc.field == spec.name
        assert exc.message


@settings(max_examples=200, deadline=None)
@given(
    spec=st.sampled_from(ALL_SPECS),
    raw=st.one_of(
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.text(alphabet="0123456789.,-+e ", max_size=25),
    ),
)
def test_parse_of_python_values_never_raises_anything_but_validation_error(
    spec: fields.FieldSpec, raw: object
) -> None:
    try:
        value = spec.parse(raw)
    except ValidationError:
        return
    if value is not None and spec.kind in ("int", "float"):
        assert spec.minimum is None or value >= spec.minimum
        assert spec.maximum is None or value <= spec.maximum


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_study_code_property(raw: str) -> None:
    try:
        code = CODE.parse(raw)
    except ValidationError:
        return
    assert fields.STUDY_CODE_RE.match(code)
    assert code == code.upper()
    assert CODE.parse(code.lower()) == code


@pytest.mark.parametrize(
    "spec", [s for s in ALL_SPECS if s.kind in ("int", "float")], ids=lambda s: s.name
)
def test_range_message_writes_its_bounds_as_numbers_are_written(spec: fields.FieldSpec) -> None:
    """The bounds in a refusal are written by the one number rule (12, not 12.0)."""
    message = spec.expected()
    for bound in (spec.minimum, spec.maximum):
        if bound is not None:
            assert number_text(bound) in message
    assert ".0 " not in message + " " and ".0–" not in message
