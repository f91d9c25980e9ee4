"""No SQL above the storage layer: the screens, the commands and the CLI ask the Store.

Read from the source (AST), so a new ``store.conn.execute`` or ``"SELECT ..."`` in
``sma_log/ui``, ``sma_log/commands`` or ``sma_log/cli.py`` fails here, with its place.
Textual's own ``self.query(...)`` (a DOM query) is not SQL and does not count.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import sma_log

PACKAGE = Path(sma_log.__file__).parent
ABOVE_STORAGE = [
    *sorted([*PACKAGE.joinpath("ui").rglob("*.py"), *PACKAGE.joinpath("commands").rglob("*.py")]),
    PACKAGE / "cli.py",
]
#: Where SQL may be written: the storage layer, the exports and the importer.
SQL_HOMES = ("storage", "export", "importer.py")

RAW_CALLS = {"execute", "executemany", "executescript"}
STORE_QUERIES = {"query", "one"}

# The start of a SQL statement (not an English sentence that begins "Select" or "With").
SQL = re.compile(
    r"""^\s*(
        select\s+(\*|distinct\b|count\s*\(|[\w."]+\s*(,|\bas\b|\bfrom\b))
        | insert\s+(or\s+\w+\s+)?into\b
        | update\s+\w+\s+set\b
        | delete\s+from\b
        | pragma\s+\w+
        | with\s+(recursive\s+)?\w+(\s*\([^)]*\))?\s+as\s*\(
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _is_store(receiver: ast.expr) -> bool:
    """``store``, ``self.store``, ``source``, ``s`` (the screens' ``s = self.store``)…"""
    text = ast.unparse(receiver)
    last = text.rsplit(".", 1)[-1]
    return "store" in text.lower() or last in {"s", "source", "src", "conn", "db"}


def _string_starts(node: ast.AST) -> Iterator[tuple[int, str]]:
    """The text each string literal (or f-string) starts with, with its line."""
    parts = {id(v) for s in ast.walk(node) if isinstance(s, ast.JoinedStr) for v in s.values}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and id(sub) not in parts:
            yield sub.lineno, sub.value
        elif isinstance(sub, ast.JoinedStr) and sub.values:
            first = sub.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield sub.lineno, first.value


def sql_uses(path: Path, rel: str | None = None) -> list[str]:
    """Every use of SQL or of a raw connection in one module, ``file:line: what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = rel or _rel(path)
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append(f"{where}: .conn ({ast.unparse(node)})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in RAW_CALLS:
                found.append(f"{where}: .{name}() ({ast.unparse(node.func)})")
            elif name in STORE_QUERIES and _is_store(node.func.value):
                found.append(f"{where}: raw query ({ast.unparse(node.func)})")
    for line, text in _string_starts(tree):
        if SQL.match(text):
            found.append(f"{rel}:{line}: SQL text {text.strip()[:40]!r}")
    return found


@pytest.mark.parametrize("path", ABOVE_STORAGE, ids=_rel)
def test_no_sql_above_storage(path: Path) -> None:
    assert sql_uses(path) == []


def test_no_sql_text_outside_its_homes() -> None:
    """SQL statements are written in storage/, export/ and importer.py only (and the
    demo generator, which writes its own file in bulk)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = _rel(path)
        if rel.split("/", 1)[0] in SQL_HOMES or rel.startswith("demo"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{rel}:{line}" for line, text in _string_starts(tree) if SQL.match(text)]
    assert found == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("store.conn.execute('SELECT 1')", True),
        ("self.store.query('x')", True),
        ("s.one('x', (1,))", True),
        ("conn.executemany(x, rows)", True),
        ("x = f'SELECT count(*) FROM {t}'", True),
        ("x = 'pragma user_version'", True),
        ("x = 'WITH t AS (SELECT 1) SELECT * FROM t'", True),
        ("x = '''\n  UPDATE patients SET a = 1'''", True),
        # Textual's DOM queries and English text are not SQL.
        ("self.query('#table').first()", False),
        ("self.screen.query(DataTable)", False),
        ("x = 'Select a patient from the list'", False),
        ("x = 'With the same seed the file is identical'", False),
        ("x = 'Delete demo folders'", False),
        ("x = 'Update the score'", False),
    ],
)
def test_the_check_catches_sql_and_only_sql(tmp_path: Path, source: str, caught: bool) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source + "\n", encoding="utf-8")
    found = sql_uses(path, "ui/probe.py")
    assert bool(found) is caught, found
