"""Test data shared by the test modules (import it as ``from factories import ...``)."""

from __future__ import annotations

from typing import Any

#: The smallest valid set-up a procedure can start with.
SETUP: dict[str, Any] = {
    "operator": "Dr Rossi",
    "regimen": "std_maintenance",
    "guidance": "us_marking",
    "approach": "paramedian",
    "level_intended": "L3-L4",
    "sedation": "none",
}
