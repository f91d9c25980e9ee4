"""The audit log's stored form (schema 5) and its decoding to one entry per change.

Stored (lean): ``audit_tx(n, at, user)`` is one write transaction that audited
something; ``audit_log(n, tx, table_name, record_id, field, old_value, kept)`` one
change in it:

* an **insert** (``field = '*'``) keeps no copy of the row: the row as inserted is the
  current row walked back through the old values of the record's later updates;
* an **update** keeps its old value only: its new value is the old value of the next
  update of that field, or the current cell;
* ``kept`` (JSON, usually NULL) holds what that replay would not give back: the values
  of columns rewritten without an audit row (a procedure's timeline cache, written at
  insert), the new value of a field rewritten unaudited later, an import's note, and
  everything older files, imports or migrations wrote that the replay does not
  reproduce (``{"new": text}``, ``{"insert": {...}, "absent": [...]}``, ``{"action": ...}``).

:func:`decode` turns one record's rows back into entries with today's meaning (old and
new value, user, instant); migration 5 writes ``kept`` wherever the decoding of the
old rows would differ from what they stored, and checks it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..domain import records

INSERT_FIELD = "*"

#: Per table, the columns a writer may rewrite without an audit row after the insert
#: (besides ``updated_at``, whose value at insert is ``created_at``): a procedure's
#: timeline cache (:func:`sma_log.domain.timeline.derived_columns`, kept with every
#: event) and what an import recomputes from the events it merges
#: (``records.DERIVED['procedures']``). Their values at insert, and the new value of an
#: audited change to one of them, are kept. tests/test_audit_replay.py checks the list.
UNAUDITED: dict[str, frozenset[str]] = {"procedures": frozenset(records.DERIVED["procedures"])}

#: Tables whose rows are a cache of other audited rows, kept by the Store in the same
#: transaction and never audited (since schema 5): every column of an attempt is derived
#: from the procedure's events (``records.DERIVED['attempts']``), which are audited; the
#: replay test rebuilds the attempts from the events as the log gives them back. Older
#: files keep the attempt rows they had.
CACHE_TABLES = frozenset({"attempts"})

#: The decoded columns, as the audit log stored them before schema 5 (exports, screens).
ENTRY_COLUMNS = (
    "id",
    "at",
    "user",
    "action",
    "table_name",
    "record_id",
    "field",
    "old_value",
    "new_value",
)


def audit_text(value: Any) -> str | None:
    """A value as the audit log writes it: text as is, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_odd)
    except (TypeError, ValueError):  # a cell no writer of sma-log puts (a hand edit)
        return repr(value)


def _odd(value: Any) -> Any:
    """A value JSON has no form for (a BLOB written by another tool): as SQL writes it."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex().upper() + "'"
    raise TypeError(type(value).__name__)


def default_action(table_name: str, field: str | None) -> str:
    if field == INSERT_FIELD:
        return "insert"
    if table_name == "import":
        return "import"
    return "update"


def action_sql(alias: str = "a") -> str:
    """SQL for a stored row's action (as :func:`default_action` and ``kept`` say)."""
    a = alias
    return (
        f"coalesce(json_extract({a}.kept, '$.action'), CASE WHEN {a}.field = '*' THEN 'insert' "
        f"WHEN {a}.table_name = 'import' THEN 'import' ELSE 'update' END)"
    )


def insert_kept(table: str, row: Mapping[str, Any]) -> str | None:
    """``kept`` of an insert written now: the columns a replay would not give back."""
    keep = {k: row[k] for k in UNAUDITED.get(table, ()) if k in row}
    if "updated_at" in row and row.get("updated_at") != row.get("created_at"):
        keep["updated_at"] = row["updated_at"]
    return json.dumps({"insert": keep}, ensure_ascii=False, sort_keys=True) if keep else None


def column_types(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """A table's columns and their declared types (empty for no such table)."""
    quoted = '"' + table.replace('"', '""') + '"'
    return {r[1]: str(r[2]).upper() for r in conn.execute(f"PRAGMA table_info({quoted})")}


def _native(text: str | None, decl: str) -> Any:
    """An audited text back to the value a row holds (numbers in numeric columns)."""
    if text is None or decl not in ("INTEGER", "REAL", "NUMERIC", "FLOAT"):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return text


def decode(
    table: str,
    current: Mapping[str, Any] | None,
    types: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[str, str | None]]:
    """``(action, new value)`` of each of one record's rows (in ``n`` order).

    ``rows`` hold ``field``, ``old_value`` and ``kept`` (text or parsed). Walks back
    from ``current`` (the record's row now, None when it is gone).
    """
    state: dict[str, Any] | None = dict(current) if current is not None else None
    out: list[tuple[str, str | None]] = [("", None)] * len(rows)
    for i in range(len(rows) - 1, -1, -1):
        r = rows[i]
        kept = _kept(r.get("kept"))
        field = r.get("field")
        action = str(kept.get("action") or default_action(table, field))
        if "new" in kept:
            new = kept["new"]
        elif action == "insert":
            new = _insert_text(table, state, types, kept)
        elif state is not None and field in state and field in types:
            new = audit_text(state[field])
        else:
            new = None
        out[i] = (action, new)
        if action == "insert":
            state = None  # nothing before its insert
        elif action == "update" and state is not None and field in types:
            state[str(field)] = _native(r.get("old_value"), types[str(field)])
    return out


def _kept(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    parsed = json.loads(value)
    return parsed if isinstance(parsed, dict) else {}


def _insert_values(
    table: str, state: Mapping[str, Any] | None, types: Mapping[str, str], kept: Mapping[str, Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if state is not None:
        skip = UNAUDITED.get(table, frozenset())
        values = {k: v for k, v in state.items() if k != "id" and k in types and k not in skip}
        if "updated_at" in values and "created_at" in values:
            values["updated_at"] = values["created_at"]
    values.update(kept.get("insert") or {})
    for k in kept.get("absent") or ():
        values.pop(k, None)
    return values


def _insert_text(
    table: str, state: Mapping[str, Any] | None, types: Mapping[str, str], kept: Mapping[str, Any]
) -> str | None:
    if state is None and "insert" not in kept:
        return None
    return audit_text(_insert_values(table, state, types, kept))


def residuals(
    table: str,
    current: Mapping[str, Any] | None,
    types: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> list[str | None]:
    """``kept`` for each of one record's rows in the form before schema 5 (``action``,
    ``field``, ``old_value``, ``new_value``), so that :func:`decode` gives back exactly
    what they stored (checked here: a row the partial form cannot restore keeps its
    whole new value)."""
    lean = [{"field": r["field"], "old_value": r["old_value"], "kept": None} for r in rows]
    for r, lr in zip(rows, lean, strict=True):
        if r["action"] != default_action(table, r["field"]):
            lr["kept"] = {"action": r["action"]}
    plain = decode(table, current, types, lean)
    out: list[str | None] = []
    for i, (r, (_, new)) in enumerate(zip(rows, plain, strict=True)):
        kept: dict[str, Any] = dict(lean[i]["kept"] or {})
        if new != r["new_value"]:
            kept.update(_repair(table, current, types, lean, i, r["new_value"]))
        out.append(json.dumps(kept, ensure_ascii=False, sort_keys=True) if kept else None)
    return out


def _repair(
    table: str,
    current: Mapping[str, Any] | None,
    types: Mapping[str, str],
    lean: Sequence[Mapping[str, Any]],
    i: int,
    truth: str | None,
) -> dict[str, Any]:
    """The smallest ``kept`` found that makes row ``i`` decode to ``truth``."""
    whole: dict[str, Any] = {"new": truth}
    if lean[i]["field"] != INSERT_FIELD or truth is None:
        return whole
    try:
        want = json.loads(truth)
    except ValueError:
        return whole
    if not isinstance(want, dict):
        return whole
    trial = [dict(r) for r in lean]
    state = _state_before(table, current, types, lean, i)
    got = _insert_values(table, state, types, {})
    keep = {"insert": {k: v for k, v in want.items() if k not in got or _differs(got[k], v)}}
    absent = sorted(k for k in got if k not in want)
    if absent:
        keep["absent"] = absent  # type: ignore[assignment]
    trial[i]["kept"] = {**(lean[i]["kept"] or {}), **keep}
    if decode(table, current, types, trial)[i][1] == truth:
        return keep
    return whole


def _differs(a: Any, b: Any) -> bool:
    return audit_text({"v": a}) != audit_text({"v": b})


def _state_before(
    table: str,
    current: Mapping[str, Any] | None,
    types: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
    i: int,
) -> dict[str, Any] | None:
    """The record's values just after row ``i`` (walked back from ``current``)."""
    state = dict(current) if current is not None else None
    for j in range(len(rows) - 1, i, -1):
        r = rows[j]
        kept = _kept(r.get("kept"))
        action = str(kept.get("action") or default_action(table, r.get("field")))
        if action == "insert":
            state = None
        elif action == "update" and state is not None and r.get("field") in types:
            state[str(r["field"])] = _native(r.get("old_value"), types[str(r["field"])])
    return state


def read_current(conn: sqlite3.Connection, table: str, record_id: str) -> dict[str, Any] | None:
    cur = conn.execute(f'SELECT * FROM "{table}" WHERE id = ?', (record_id,))
    values = cur.fetchone()
    if values is None:
        return None
    return dict(zip([c[0] for c in cur.description], values, strict=True))


def entries(
    conn: sqlite3.Connection, where: str = "1", params: Iterable[Any] = (), limit: int = -1
) -> list[dict[str, Any]]:
    """The decoded entries (:data:`ENTRY_COLUMNS`) of the stored rows ``where`` selects
    (alias ``a``), in the order written."""
    cur = conn.execute(
        f"SELECT a.n, a.table_name, a.record_id FROM audit_log a WHERE {where} "
        "ORDER BY a.n LIMIT ?",
        (*params, limit),
    )
    wanted = cur.fetchall()
    records = dict.fromkeys((t, r) for _, t, r in wanted)
    decoded: dict[int, dict[str, Any]] = {}
    known = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} - {
        "audit_log",
        "audit_tx",
        "meta",
    }
    types_of: dict[str, dict[str, str]] = {}
    for table, record_id in records:
        decoded.update(_record_entries(conn, table, record_id, known, types_of))
    return [decoded[n] for n, _, _ in wanted]


def _record_entries(
    conn: sqlite3.Connection,
    table: str,
    record_id: str,
    known: set[str],
    types_of: dict[str, dict[str, str]],
    schema: str = "",
) -> dict[int, dict[str, Any]]:
    cur = conn.execute(
        f"SELECT a.n, t.at, t.user, a.field, a.old_value, a.kept FROM {schema}audit_log a "
        f"JOIN {schema}audit_tx t ON t.n = a.tx WHERE a.table_name = ? AND a.record_id = ? "
        "ORDER BY a.n",
        (table, record_id),
    )
    rows = [
        dict(zip(("n", "at", "user", "field", "old_value", "kept"), r, strict=True)) for r in cur
    ]
    if table in known:
        if table not in types_of:
            types_of[table] = column_types(conn, table)
        types = types_of[table]
        current = read_current(conn, table, record_id) if "id" in types else None
    else:
        types, current = {}, None
    out: dict[int, dict[str, Any]] = {}
    for r, (action, new) in zip(rows, decode(table, current, types, rows), strict=True):
        out[r["n"]] = {
            "id": r["n"],
            "at": r["at"],
            "user": r["user"],
            "action": action,
            "table_name": table,
            "record_id": record_id,
            "field": r["field"],
            "old_value": r["old_value"],
            "new_value": new,
        }
    return out


#: The decoded log as a table (the identified exports write it), column → declared type.
ENTRY_TYPES = {
    "id": "INTEGER",
    "at": "TEXT",
    "user": "TEXT",
    "action": "TEXT",
    "table_name": "TEXT",
    "record_id": "TEXT",
    "field": "TEXT",
    "old_value": "TEXT",
    "new_value": "TEXT",
}
ENTRY_NOT_NULL = frozenset({"id", "at", "action", "table_name", "record_id"})


def create_decoded(conn: sqlite3.Connection) -> None:
    """``temp.audit_log``: every entry decoded (:data:`ENTRY_COLUMNS`), shadowing the
    stored table for this connection's unqualified queries (an export reads it as it
    read the log before schema 5). Filled record by record; drop it with
    :func:`drop_decoded`."""
    cols = ", ".join(
        f"{c} {t}{' PRIMARY KEY' if c == 'id' else ''}"
        f"{' NOT NULL' if c in ENTRY_NOT_NULL and c != 'id' else ''}"
        for c, t in ENTRY_TYPES.items()
    )
    conn.execute("DROP TABLE IF EXISTS temp.audit_log")
    conn.execute(f"CREATE TEMP TABLE audit_log ({cols})")
    known = {
        r[0] for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")
    } - {"audit_log", "audit_tx", "meta"}
    types_of: dict[str, dict[str, str]] = {}
    cur = conn.execute(
        "SELECT DISTINCT table_name, record_id FROM main.audit_log ORDER BY table_name, record_id"
    )
    insert = f"INSERT INTO temp.audit_log VALUES ({', '.join('?' for _ in ENTRY_COLUMNS)})"
    while batch := cur.fetchmany(500):
        rows = []
        for table, record_id in batch:
            decoded = _record_entries(conn, table, record_id, known, types_of, "main.")
            rows += [tuple(e[c] for c in ENTRY_COLUMNS) for e in decoded.values()]
        conn.executemany(insert, rows)


def drop_decoded(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.audit_log")
