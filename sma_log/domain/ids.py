"""Record identifiers: ULIDs (sortable by creation time, unique across laptops)."""

from __future__ import annotations

from ulid import ULID


def new_id() -> str:
    return str(ULID())
