"""A de-identified JSON document as sma-log wrote it before issue 11.

Such a document held exact UTC instants and complete record ids; only the identifying
tables, free-text fields and note values were left out. Files written then still exist
and are still merged (a removed field is unknown, never a difference); a de-identified
document written now masks ids and times and is refused by the importer.
"""

from __future__ import annotations

import copy
from typing import Any

from sma_log.export.common import NOTE_EVENT_KINDS, REMOVED_TABLES, identifying_columns


def legacy_deidentified(identified: dict[str, Any]) -> dict[str, Any]:
    """The pre-issue-11 de-identified form of an ``identifiers=True`` document."""
    doc = copy.deepcopy(identified)
    doc["identifiers_included"] = False
    doc.pop("deidentification", None)  # that header came with the masks
    removed: dict[str, list[str]] = {}
    for table in list(doc["tables"]):
        if table in REMOVED_TABLES:
            del doc["tables"][table]
            continue
        gone = identifying_columns(table)
        if gone:
            removed[table] = list(gone)
        for row in doc["tables"][table]:
            for column in gone:
                row.pop(column, None)
            if table == "events" and row.get("kind") in NOTE_EVENT_KINDS:
                row.pop("value", None)
    doc["removed"] = {
        "tables": list(REMOVED_TABLES),
        "fields": removed,
        "event_values_of_kinds": list(NOTE_EVENT_KINDS),
    }
    return doc
