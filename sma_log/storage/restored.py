"""What a restored copy holds, judged by sma-log's own checks before it is kept.

``sma-log restore`` and ``sma-log pull`` get a database file from a replica (written
by Litestream, a program that does not know sma-log). Before such a file is moved
into place or merged, it is opened read-only here and judged as ``sma-log info
--check`` judges a file: the header (an SQLite file of another application, or of a
newer sma-log, is refused), SQLite's integrity check, the schema version, and the
report's kept figures against the tables (for a file of the current schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DatabaseRefused
from .schema import SCHEMA_VERSION
from .store import Store


@dataclass(frozen=True)
class Restored:
    """A restored copy that passed the checks."""

    schema_version: int
    counts: dict[str, int]
    #: The latest event instant (stored UTC text), or None for a file with no events.
    last_event_at: str | None
    #: The report's kept figures were compared (False for a file of an older schema,
    #: whose figures are rebuilt when this sma-log first opens it).
    report_checked: bool


def check_restored(path: Path, label: str) -> Restored:
    """Judge the file at ``path`` (read-only); :class:`DatabaseRefused` names ``label``
    (the replica it came from) and the first problem found."""
    try:
        store = Store.open(path, "restore", create=False, readonly=True)
    except DatabaseRefused as exc:
        # The message names the temporary file: say which replica it was instead.
        reason = str(exc).removeprefix(f"{path}: ")
        raise DatabaseRefused(f"{label}: the restored copy is refused: {reason}") from None
    try:
        integrity = store.integrity_check()
        if integrity != ["ok"]:
            raise DatabaseRefused(
                f"{label}: the restored copy fails SQLite's integrity check "
                f"({'; '.join(integrity[:3])})"
            )
        version = store.user_version()
        report_checked = version == SCHEMA_VERSION
        if report_checked:
            found = store.check_report()
            if found:
                raise DatabaseRefused(
                    f"{label}: the restored copy's report figures disagree with its tables "
                    f"({found[0]})"
                )
        row = store.conn.execute("SELECT max(at) FROM events").fetchone()
        return Restored(
            schema_version=version,
            # and what a unit checks after a restore
            counts=store.counts(also=("followups", "labs", "timeouts")),
            last_event_at=None if row[0] is None else str(row[0]),
            report_checked=report_checked,
        )
    finally:
        store.close()
