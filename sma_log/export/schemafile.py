"""The JSON Schema file that ships with sma-log, and the patterns of its instants.

Read by the JSON document (:mod:`sma_log.export.jsondoc`, which writes the file) and
by the bad-cell rule of every format (:func:`sma_log.export.common.cell_rules`); a
module of its own so that neither of those two imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("schema.json")
INSTANT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
#: An instant column of a document: the stored instant, or (de-identified) its local date.
INSTANT_OR_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z)?$"


def load_schema() -> dict[str, Any]:
    """The shipped schema file."""
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data
