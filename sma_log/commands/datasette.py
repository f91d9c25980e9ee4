"""``sma-log datasette-metadata``: Datasette metadata for browsing the database file.

Datasette (https://datasette.io) reads the SQLite file directly. The metadata this
command writes gives it a title, the study code as the label of a patient (so a
procedure's ``patient_id`` shows ``DEMO-001``, not a ULID), the data dictionary's
description of every table and column, and hides ``identifiers`` and ``audit_log``
from the lists. Hidden is not protected: anyone who can reach the Datasette can still
open those tables by URL or read them with SQL, so the description says to serve it on
127.0.0.1 only, and to share a de-identified export instead of the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import Options

if TYPE_CHECKING:
    from ..storage.store import Store

#: Tables listed by Datasette but hidden (still readable by URL and SQL).
HIDDEN = ("identifiers", "audit_log", "audit_tx")
#: The label Datasette shows for a row of a table, where a foreign key points to it.
LABEL_COLUMNS = {"patients": "study_code"}

TABLE_DESCRIPTIONS = {
    "patients": "One row per patient: pseudonymous study code, SMA type, birth year, sex, "
    "motor status. No names or record numbers here (those are in identifiers).",
    "identifiers": "Identifying data of the patients (name, record number, birth date). "
    "Hidden from the lists, NOT protected: do not serve this file beyond this computer.",
    "procedures": "One row per intrathecal injection procedure: set-up, needle, spine, "
    "dose, outcome, and figures recomputed from its events (attempts, minutes).",
    "attempts": "One row per needle attempt (skin puncture) of a procedure, derived from "
    "the procedure's events.",
    "events": "The timeline of each procedure, as recorded at the bedside (append-only; "
    "an undone event keeps its row with voided_at set).",
    "followups": "The follow-ups of each ended procedure: the 5-minute satisfaction score "
    "and the 72-hour call (PDPH, back pain, other events).",
    "contact_attempts": "Each call or message made for a follow-up, answered or not.",
    "audit_log": "Every change to a clinical record: who, when, old and new value "
    "(holds identifying data too). Hidden from the lists, NOT protected.",
    "meta": "Facts about the file itself (schema, creation, demo marker).",
    "procedure_summary": "View: one line per procedure with the patient's study code and "
    "the figures of the report.",
    "followup_summary": "View: one line per follow-up with the patient's study code.",
    "report_facts": "Cache of the report (one row per procedure), kept current by "
    "triggers; rebuilt by sma-log info --rebuild-report.",
    "report_facts_source": "View: what the report cache is built from.",
}


def database_name(path: Path) -> str:
    """The name Datasette gives the file (its name without the last suffix)."""
    return path.stem


def column_description(table: str, column: str) -> str:
    """The data dictionary's words for a column: meaning, unit and codes."""
    from ..export.dictionary import choices_text, lookup

    kind, unit, desc, choices, rng = lookup(table, column)
    parts = [desc] if desc else []
    if unit:
        parts.append(f"unit: {unit}")
    if choices:
        parts.append(f"codes: {choices_text(choices)}")
    elif kind == "bool":
        parts.append("1 = yes, 0 = no")
    elif rng:
        parts.append(f"range {rng}")
    if kind == "instant":
        parts.append("UTC, ISO 8601")
    return "; ".join(parts)


def metadata(store: Store, path: Path) -> dict[str, Any]:
    """Datasette metadata for the database at ``path`` (``store`` open on it)."""
    from ..domain.text import visible

    shown = visible(str(path))
    tables: dict[str, Any] = {}
    for name in store.tables(views=True):
        entry: dict[str, Any] = {}
        if name in TABLE_DESCRIPTIONS:
            entry["description"] = TABLE_DESCRIPTIONS[name]
        if name in LABEL_COLUMNS:
            entry["label_column"] = LABEL_COLUMNS[name]
        if name in HIDDEN:
            entry["hidden"] = True
        columns = {}
        for column in store.columns(name):
            text = column_description(name, column)
            if text:
                columns[column] = text
        if columns:
            entry["columns"] = columns
        tables[name] = entry
    live = (
        f"Read live from {shown}: every page shows what the file holds now, while the "
        "bedside keeps writing to it (serve it without -i/--immutable, which would show "
        "an old snapshot). Read-only use only: change records in sma-log, never here."
    )
    hidden = (
        "identifiers and audit_log are hidden from the lists, not protected: anyone who "
        "can reach this Datasette can still open them by URL or read them with SQL. "
        "Serve it on 127.0.0.1 only (datasette serve FILE -m METADATA --host 127.0.0.1); "
        "to share data, share a de-identified export (sma-log export) instead."
    )
    return {
        "title": f"sma-log: {visible(path.name)}",
        "description": f"{live} {hidden}",
        "source": "sma-log",
        "databases": {
            database_name(path): {
                "description": "Intrathecal nusinersen injections logged with sma-log. " + live,
                "tables": tables,
            }
        },
    }


@click.command("datasette-metadata")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the metadata to this file (default: print it).",
)
@click.option("--force", is_flag=True, help="Replace --out if it is an existing regular file.")
@click.pass_obj
def datasette_metadata(opts: Options, out: Path | None, force: bool) -> None:
    """Print Datasette metadata (JSON) for browsing the database with Datasette.

    The study code labels patients, the data dictionary describes every table and
    column, and identifiers and audit_log are hidden from the lists (hidden, not
    protected: serve on 127.0.0.1 only). Use it as

        datasette serve DB -m metadata.json --host 127.0.0.1

    Datasette reads the file live: it shows what the bedside has written so far.
    """
    from ..export.common import check_out
    from .common import open_for_reading, write_private

    path = opts.db_path
    if out is not None:
        out = check_out(out, force, path, folder=False)  # before reading anything
    store = open_for_reading(path, opts.user)
    try:
        doc = metadata(store, path)
    finally:
        store.close()
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    write_private(out, text.encode("utf-8"), force)
    from ..domain.text import visible

    click.echo(
        f"Wrote Datasette metadata to {visible(str(out))}; browse with: "
        f"datasette serve {visible(str(path))} -m {visible(str(out))} --host 127.0.0.1"
    )
