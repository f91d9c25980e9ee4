"""Record identifiers: ULIDs (sortable by creation time, unique across laptops).

python-ulid is imported on the first new id, not at start-up (reading needs none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ulid import ULID

_ULID: type[ULID] | None = None


def new_id() -> str:
    global _ULID
    if _ULID is None:
        from ulid import ULID

        _ULID = ULID
    return str(_ULID())
