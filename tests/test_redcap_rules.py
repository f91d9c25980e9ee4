"""``sma-log export --format redcap`` judged by REDCap's own rules.

:func:`check_redcap` applies REDCap's documented data-dictionary rules (field and form
names, field types, choices, validations, branching) and its import rules (record id,
repeating instruments and instances, values against their fields, form status) to one
export folder. It runs over the default, ``--identifiers`` and date-filtered exports of a
demo database (``sma_log.demo.write_demo``) plus a few identified patients written through
the real Store. Other tests: instance numbers do not depend on ``--from/--to``;
``<form>_complete``; branching never names a field the export removed; dates are
``date_ymd``.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.demo import write_demo
from sma_log.domain.clock import Clock
from sma_log.export import redcap
from sma_log.export.redcap import DICTIONARY_COLUMNS, Field, deidentified_branching
from sma_log.storage.store import Store

ROME = "Europe/Rome"
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
FORMS = ("patient", "procedure", "attempt", "followup", "timeout", "lab")
REPEATING = {"procedure", "attempt", "followup", "timeout", "lab"}

# REDCap's field types (Data Dictionary, "Field Type").
FIELD_TYPES = {
    "text",
    "notes",
    "dropdown",
    "radio",
    "checkbox",
    "file",
    "calc",
    "sql",
    "descriptive",
    "slider",
    "yesno",
    "truefalse",
}
# REDCap's text validation types (the built-in ones a data dictionary may name).
VALIDATIONS = {
    "date_ymd",
    "date_mdy",
    "date_dmy",
    "datetime_ymd",
    "datetime_mdy",
    "datetime_dmy",
    "datetime_seconds_ymd",
    "datetime_seconds_mdy",
    "datetime_seconds_dmy",
    "time",
    "time_mm_ss",
    "time_hh_mm_ss",
    "integer",
    "number",
    "number_1dp",
    "number_2dp",
    "number_3dp",
    "number_4dp",
    "number_1dp_comma_decimal",
    "number_2dp_comma_decimal",
    "number_comma_decimal",
    "alpha_only",
    "email",
    "phone",
    "phone_australia",
    "postalcode_australia",
    "postalcode_canada",
    "postalcode_french",
    "postalcode_germany",
    "ssn",
    "zipcode",
    "vmrn",
    "mrn_10d",
    "mrn_generic",
}
# Names REDCap keeps for itself (besides <form>_complete, _timestamp, _return_code).
RESERVED = {
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
    "redcap_survey_identifier",
    "redcap_csrf_token",
}
NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
CODE_RE = re.compile(r"-?[A-Za-z0-9_]+")
REF_RE = re.compile(r"\[([^\]\[]+)\]")
INTEGER_RE = re.compile(r"-?[0-9]+")
NUMBER_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
DATETIME_SECONDS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def _refs(logic: str) -> set[str]:
    """The fields a branching logic names (``[name]``, ``[name(code)]``)."""
    return {re.sub(r"\(.*\)$", "", r) for r in REF_RE.findall(logic)}


def _is_ymd(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _valid(validation: str, text: str) -> bool:
    if validation == "date_ymd":
        return _is_ymd(text)
    if validation == "datetime_seconds_ymd":
        if not DATETIME_SECONDS_RE.fullmatch(text):
            return False
        try:
            datetime.fromisoformat(text)
        except ValueError:
            return False
        return True
    if validation == "integer":
        return bool(INTEGER_RE.fullmatch(text))
    if validation == "number":
        return bool(NUMBER_RE.fullmatch(text))
    return True


def _number(validation: str, text: str) -> float | None:
    if validation in ("integer", "number") and _valid(validation, text):
        return float(text)
    return None


def check_redcap(folder: Path, repeating: set[str] = REPEATING) -> dict[str, Any]:
    """Every REDCap rule the dictionary and import file must meet; returns what they hold.

    Fails (AssertionError naming the field, row or value) on the first broken rule.
    """
    with (folder / "redcap_data_dictionary.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        dictionary = list(reader)
    # ---- the data dictionary
    assert tuple(header) == DICTIONARY_COLUMNS, header
    assert dictionary, "an empty data dictionary"
    names = [r[0] for r in dictionary]
    assert len(set(names)) == len(names), "field names must be unique"
    forms: list[str] = []
    fields: dict[str, dict[str, Any]] = {}
    for row in dictionary:
        assert len(row) == len(DICTIONARY_COLUMNS), row
        name, form, _section, ftype, label, choices, _note, validation, vmin, vmax = row[:10]
        identifier, branching, required = row[10], row[11], row[12]
        assert NAME_RE.fullmatch(name) and len(name) <= 100, f"field name {name!r}"
        assert name not in RESERVED, name
        assert NAME_RE.fullmatch(form) and len(form) <= 100, f"form name {form!r}"
        if form not in forms:
            forms.append(form)
        assert forms[-1] == form, f"{name}: the fields of form {form!r} are not together"
        assert ftype in FIELD_TYPES, (name, ftype)
        assert label.strip() or ftype == "descriptive", f"{name}: no label"
        codes: list[str] = []
        if ftype in ("radio", "dropdown", "checkbox"):
            assert choices, f"{name}: a {ftype} needs choices"
            for choice in choices.split(" | "):
                code, sep, text = choice.partition(", ")
                assert sep and text.strip(), f"{name}: choice {choice!r} is not 'code, label'"
                assert CODE_RE.fullmatch(code), f"{name}: code {code!r}"
                codes.append(code)
            assert len(set(codes)) == len(codes), f"{name}: duplicate codes {codes}"
        elif ftype not in ("calc", "slider", "sql"):
            assert not choices, f"{name}: a {ftype} takes no choices"
        if validation:
            assert ftype == "text", f"{name}: only text fields are validated"
            assert validation in VALIDATIONS, (name, validation)
        assert not (vmin or vmax) or validation, f"{name}: a range without a validation"
        for bound in (vmin, vmax):
            if bound:
                assert _valid(validation, bound), (name, validation, bound)
        lo, hi = _number(validation, vmin), _number(validation, vmax)
        assert lo is None or hi is None or lo <= hi, (name, vmin, vmax)
        assert identifier in ("", "y") and required in ("", "y"), name
        fields[name] = {
            "form": form,
            "type": ftype,
            "codes": codes,
            "validation": validation,
            "branching": branching,
            "lo": lo,
            "hi": hi,
        }
    record_id = names[0]
    assert fields[record_id]["form"] == forms[0], "the record id is on the first form"
    for name, f in fields.items():
        missing = _refs(f["branching"]) - set(fields)
        assert not missing, f"{name}: branching names unknown fields {missing}"
        reserved = {f"{form}_{end}" for form in forms for end in ("complete", "timestamp")}
        assert name not in reserved, f"{name}: a name REDCap keeps for itself"
    assert repeating <= set(forms) and forms[0] not in repeating

    # ---- the import file
    with (folder / "redcap_import.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        head = next(reader)
        rows = [dict(zip(head, r, strict=True)) for r in reader]
    assert len(set(head)) == len(head), "duplicate import columns"
    assert head[0] == record_id
    statuses = {f"{form}_complete": form for form in forms}
    exported = [c for c in head if c in fields]
    extra = set(head) - set(fields) - set(statuses)
    assert extra <= {"redcap_repeat_instrument", "redcap_repeat_instance"}, extra
    assert set(statuses) <= set(head), "every form's <form>_complete is imported"
    if repeating:
        assert {"redcap_repeat_instrument", "redcap_repeat_instance"} <= set(head)
    form_of = {c: fields[c]["form"] for c in exported} | statuses
    # (c) a field the import fills never branches on one it leaves out
    for name in exported:
        hidden = _refs(fields[name]["branching"]) - set(exported)
        assert not hidden, f"{name}: branching names {hidden}, not in the import file"
    seen: set[tuple[str, str, str]] = set()
    instances: dict[tuple[str, str], set[int]] = {}
    for n, row in enumerate(rows, start=2):
        rec = row[record_id]
        assert rec, f"line {n}: no record id"
        instrument = row.get("redcap_repeat_instrument", "")
        instance = row.get("redcap_repeat_instance", "")
        if instrument:
            assert instrument in repeating, f"line {n}: {instrument!r} is not repeating"
            assert INTEGER_RE.fullmatch(instance) and int(instance) >= 1, f"line {n}: {instance!r}"
            instances.setdefault((rec, instrument), set()).add(int(instance))
            allowed = {instrument}
        else:
            assert not instance, f"line {n}: an instance without an instrument"
            allowed = set(forms) - repeating
        key = (rec, instrument, instance)
        assert key not in seen, f"line {n}: {key} twice"
        seen.add(key)
        for column, value in row.items():
            if column in (record_id, "redcap_repeat_instrument", "redcap_repeat_instance"):
                continue
            if value == "":
                continue
            assert form_of[column] in allowed, f"line {n}: {column} on a {instrument} row"
            if column in statuses:
                assert value in ("0", "1", "2"), f"line {n}: {column} = {value!r}"
                continue
            f = fields[column]
            if f["type"] in ("radio", "dropdown"):
                assert value in f["codes"], f"line {n}: {column} = {value!r}"
            elif f["type"] in ("yesno", "truefalse"):
                assert value in ("0", "1"), f"line {n}: {column} = {value!r}"
            elif f["validation"]:
                assert _valid(f["validation"], value), f"line {n}: {column} = {value!r}"
                v = _number(f["validation"], value)
                if v is not None:
                    assert f["lo"] is None or v >= f["lo"], f"line {n}: {column} = {value}"
                    assert f["hi"] is None or v <= f["hi"], f"line {n}: {column} = {value}"
        if instrument or any(row[c] for c in exported if form_of[c] in allowed):
            status = row[f"{instrument or forms[0]}_complete"]
            assert status in ("0", "1", "2"), f"line {n}: no form status"
    return {"fields": fields, "head": head, "rows": rows}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A demo database, plus identified patients and one with missing details."""
    tmp = tmp_path_factory.mktemp("redcap")
    db = tmp / "demo.db"
    opened = write_demo(db, procedures=60, seed=3, now=NOW)["open_procedure_id"]
    with Store.open(db, "tester", clock=Clock(monotonic=False)) as store:
        codes = [r["study_code"] for r in store.query("SELECT study_code FROM patients")]
        ids = {r["study_code"]: r["id"] for r in store.query("SELECT id, study_code FROM patients")}
        store.set_identifiers(
            ids[codes[0]],
            {"full_name": "Ada Lovelace", "record_number": "MRN-1", "birth_date": "2012-02-29"},
        )
        # free text where REDCap wants YYYY-MM-DD: reported, written empty
        store.set_identifiers(ids[codes[1]], {"full_name": "Bo", "birth_date": "5 April 2011"})
        store.create_patient({"study_code": "ZZ-NEW", "sma_type": "2"})
        store.record(opened, "attempt")  # an attempt of the procedure in progress
        # issue 14: lab results, a time-out confirmed with a reason, one left open
        from sma_log.storage import predose as stored

        ended = store.query(
            "SELECT id, patient_id FROM procedures WHERE status = 'ended' ORDER BY started_at"
        )[0]
        stored.add_lab(store, ended["patient_id"], "platelets", "250", "2026-05-20")
        stored.add_lab(store, ended["patient_id"], "urine_protein", "0.3", "2026-05-21")
        stored.save_timeout(
            store, ended["id"], {"consent": "y", "skin": "intact", "antithrombotic": "none"}
        )
        stored.confirm_timeout(store, ended["id"], reason='=HYPERLINK("x") protein rechecked')
        stored.save_timeout(store, opened, {"consent": "y", "vp_shunt": "y"})
    config = tmp / "settings.json"
    Settings(timezone=ROME, locale="en").save(config)
    return {"db": db, "tmp": tmp, "config": config, "bad_birth": codes[1]}


def export(demo: dict[str, Any], name: str, *args: str) -> tuple[Path, Any]:
    out = demo["tmp"] / name
    result = CliRunner(env={"SMA_LOG_CONFIG": str(demo["config"])}).invoke(
        main,
        ["--db", str(demo["db"]), "export", "--format", "redcap", "--out", str(out), *args],
    )
    assert result.exit_code in (0, 3), result.output
    return out, result


def _middle_date(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        starts = [r[0] for r in conn.execute("SELECT started_at FROM procedures ORDER BY 1")]
    return starts[len(starts) // 2][:10]


def _key(row: dict[str, str]) -> tuple[str, str, str]:
    return (row["record_id"], row["redcap_repeat_instrument"], row["redcap_repeat_instance"])


# ------------------------------------------------------------------ the checker, everywhere
@pytest.mark.parametrize(
    "args",
    [(), ("--identifiers",), ("--from", "MIDDLE"), ("--to", "MIDDLE", "--identifiers")],
    ids=["default", "identifiers", "from", "to-identifiers"],
)
def test_every_export_meets_redcaps_rules(demo: dict[str, Any], args: tuple[str, ...]) -> None:
    middle = _middle_date(demo["db"])
    args = tuple(middle if a == "MIDDLE" else a for a in args)
    out, _ = export(demo, "rules-" + "-".join(a.strip("-") for a in args), *args)
    found = check_redcap(out)
    instruments = {r["redcap_repeat_instrument"] for r in found["rows"]}
    assert {"", "procedure", "attempt", "followup"} <= instruments <= {"", *REPEATING}
    if not args:
        assert {"timeout", "lab"} <= instruments
    identified = "full_name" in found["head"]
    assert identified == ("--identifiers" in args)


def test_the_checker_refuses_what_redcap_refuses(demo: dict[str, Any], tmp_path: Path) -> None:
    """The checker is not vacuous: each broken rule is caught."""
    good, _ = export(demo, "checker-good", "--identifiers")
    check_redcap(good)
    dictionary = (good / "redcap_data_dictionary.csv").read_text(encoding="utf-8")
    data = (good / "redcap_import.csv").read_text(encoding="utf-8")
    broken = {
        "upper-case name": (dictionary.replace("\nsma_type,", "\nSMA_type,", 1), data),
        "unknown type": (dictionary.replace(",yesno,", ",boolean,", 1), data),
        "bad validation": (dictionary.replace("date_ymd", "date_iso", 1), data),
        "duplicate code": (dictionary.replace("2, Type 2", "1, Type 2", 1), data),
        "unknown branching": (dictionary.replace("[fu_pdph]", "[fu_nothing]", 1), data),
        "instance 0": (dictionary, re.sub(r",procedure,1,", ",procedure,0,", data, count=1)),
        "repeat twice": (dictionary, re.sub(r",procedure,2,", ",procedure,1,", data)),
    }
    for why, (d, i) in broken.items():
        assert (d, i) != (dictionary, data), why
        folder = tmp_path / why.replace(" ", "_")
        folder.mkdir()
        (folder / "redcap_data_dictionary.csv").write_text(d, encoding="utf-8")
        (folder / "redcap_import.csv").write_text(i, encoding="utf-8")
        with pytest.raises(AssertionError):
            check_redcap(folder)


# ------------------------------------------------------------------ (a) stable instances
def test_instances_do_not_depend_on_the_date_filter(demo: dict[str, Any]) -> None:
    middle = _middle_date(demo["db"])
    full_dir, _ = export(demo, "inst-full", "--identifiers")
    full = {_key(r): r for r in check_redcap(full_dir)["rows"]}
    for args in (("--from", middle), ("--to", middle), ("--from", middle, "--to", middle)):
        part_dir, _ = export(demo, "inst-" + "-".join(args), "--identifiers", *args)
        part = check_redcap(part_dir)["rows"]
        assert part
        for row in part:
            # the same instance holds the same values as in the full export
            assert full[_key(row)] == row, _key(row)
    later, _ = export(demo, "inst-later", "--from", middle)
    moved = [
        r
        for r in check_redcap(later)["rows"]
        if r["redcap_repeat_instrument"] == "procedure" and r["redcap_repeat_instance"] != "1"
    ]
    assert moved  # patients with earlier procedures: their later ones keep their numbers
    rows = check_redcap(later)["rows"]
    procs = {
        (r["record_id"], r["redcap_repeat_instance"])
        for r in rows
        if r["redcap_repeat_instrument"] == "procedure"
    }
    for r in rows:  # attempts and follow-ups name a procedure instance that is there
        if r["redcap_repeat_instrument"] == "attempt":
            assert (r["record_id"], r["att_proc_instance"]) in procs
        if r["redcap_repeat_instrument"] == "followup":
            assert (r["record_id"], r["fu_proc_instance"]) in procs


# ------------------------------------------------------------------ (b) form status
def test_each_form_says_whether_it_is_complete(demo: dict[str, Any]) -> None:
    out, _ = export(demo, "status")
    rows = check_redcap(out)["rows"]
    procedure_status: dict[tuple[str, str], str] = {}
    seen: dict[str, set[str]] = {form: set() for form in FORMS}
    for r in rows:
        form = r["redcap_repeat_instrument"] or "patient"
        status = r[f"{form}_complete"]
        seen[form].add(status)
        for other in FORMS:
            if other != form:
                assert r[f"{other}_complete"] == ""
        if form == "patient":
            done = all(r[c] for c in ("sma_type", "birth_year", "sex", "motor_status"))
            assert status == ("2" if done else "0"), r["record_id"]
        elif form == "procedure":
            procedure_status[(r["record_id"], r["redcap_repeat_instance"])] = r["proc_status"]
            assert status == ("2" if r["proc_status"] in ("ended", "cancelled") else "0")
        elif form == "followup":
            closed = r["fu_state"] in ("done", "unreachable", "declined")
            assert status == ("2" if closed else "0")
        elif form == "timeout":
            assert status == ("2" if r["to_confirmed_date"] else "0")
    for r in rows:
        if r["redcap_repeat_instrument"] == "attempt":
            state = procedure_status[(r["record_id"], r["att_proc_instance"])]
            assert r["attempt_complete"] == ("0" if state == "open" else "2")
    # the demo has an open procedure (with an attempt), open follow-ups and ZZ-NEW
    assert all(seen[f] == {"0", "2"} for f in FORMS if f != "lab"), seen
    assert seen["lab"] == {"2"}  # a lab result is complete as entered
    with (out / "redcap_data_dictionary.csv").open(encoding="utf-8", newline="") as fh:
        names = {r[0] for r in csv.reader(fh)}
    assert not names & {f"{form}_complete" for form in FORMS}  # REDCap adds them itself


# ------------------------------------------------------------------ (c) branching
def test_no_kept_field_branches_on_a_removed_one() -> None:
    removed = {f.name for f in redcap.FIELDS if f.identifier}
    for f in redcap.FIELDS:
        if not f.identifier:
            assert not redcap.branch_refs(f.branching) & removed, f.name
    # generic: whatever the fields, a kept field's branching on a removed one goes
    fields = [
        Field("fu_other_event_any", "followup", "yesno", "Other event?", "a", kind="bool"),
        Field(
            "fu_other_event",
            "followup",
            "notes",
            "Other event",
            "b",
            identifier=True,
            branching="[fu_other_event_any] = '1'",
        ),
        Field(
            "fu_other_event_serious",
            "followup",
            "yesno",
            "Serious",
            "c",
            branching="[fu_other_event] <> ''",
            kind="bool",
        ),
        Field(
            "fu_other_detail",
            "followup",
            "text",
            "Detail",
            "d",
            branching="[fu_other_event_any] = '1' and [fu_other_event(1)] = '1'",
        ),
    ]
    fixed = {f.name: f.branching for f in deidentified_branching(fields)}
    assert fixed == {
        "fu_other_event_any": "",
        "fu_other_event": "[fu_other_event_any] = '1'",  # removed itself: may name anything
        "fu_other_event_serious": "",
        "fu_other_detail": "",
    }


# ------------------------------------------------------------------ (d) dates
def test_every_date_is_date_ymd_and_a_free_text_birth_date_is_left_out(
    demo: dict[str, Any],
) -> None:
    by_name = {f.name: f for f in redcap.FIELDS}
    assert by_name["birth_date"].validation == "date_ymd"
    for f in redcap.FIELDS:
        if "date" in f.name or f.kind in ("date", "ymd"):
            assert f.validation == "date_ymd", f.name
    out, result = export(demo, "dates", "--identifiers")
    rows = check_redcap(out)["rows"]
    births = {r["record_id"]: r["birth_date"] for r in rows if not r["redcap_repeat_instrument"]}
    assert "2012-02-29" in births.values()
    assert births[demo["bad_birth"]] == ""
    assert result.exit_code == 3
    assert "5 April 2011" in result.output and "YYYY-MM-DD" in result.output
    # de-identified: the birth date is not there at all, nothing to report
    out, result = export(demo, "dates-default")
    assert result.exit_code == 0, result.output
    assert "birth_date" not in check_redcap(out)["head"]


def test_every_de_identified_field_is_one_the_rule_keeps() -> None:
    """REDCap's de-identified values go through ``deidentify_row``: a field whose source
    column the rule removes would be silently empty in every row, so none is exported."""
    from sma_log.export.common import REMOVE, REMOVED_TABLES, ExportOptions, column_action

    opts = ExportOptions(identifiers=False, tz="UTC")
    sources = dict(redcap._SOURCES)
    for f in redcap.import_fields(opts):
        if f.form not in sources or f.source in ("study_code", "instance", "minutes_from_start"):
            continue
        tables = [t for t, _ in sources[f.form]]
        for table in tables:
            if table in REMOVED_TABLES:
                continue
            assert column_action(table, f.source, False) != REMOVE, (f.name, table, f.source)


def test_a_de_identified_dictionary_defines_no_identifier_field(demo: dict[str, Any]) -> None:
    """The dictionary defines what the import file holds: a project built from a
    de-identified export has no name, record number or birth date field to fill."""
    for args, name in (((), "dict-deid"), (("--identifiers",), "dict-ident")):
        out, _ = export(demo, name, *args)
        with (out / redcap.DICTIONARY_FILE).open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        flagged = [r[0] for r in rows if r[DICTIONARY_COLUMNS.index("Identifier?")] == "y"]
        with (out / redcap.IMPORT_FILE).open(encoding="utf-8", newline="") as fh:
            head = next(csv.reader(fh))
        defined = {r[0] for r in rows}
        assert {h for h in head if not h.startswith("redcap_") and "_complete" not in h} <= defined
        if args:
            assert {"full_name", "record_number", "birth_date"} <= set(flagged)
        else:
            assert flagged == [], flagged
