"""Bytes per procedure of one sma-log file, per table and index, from SQLite's ``dbstat``.

    python benchmarks/size.py DB [--top 25] [--json]

Typically a demo file: ``python -m sma_log demo -n 100000 --seed 1 /tmp/aud/d100k.db``
(the demo writes the audit rows the app writes, so its size is a real file's). The
figure is ``sum(pgsize) / procedures`` over every b-tree (pages in use, not the free
list), with the file's own size per procedure beside it. Read-only; nothing is written.

Target (issue 13, item 5): <= 1.5 KB per procedure at 100k, audit log included.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def measure(path: Path) -> dict[str, object]:
    """Bytes per procedure of every table and index of ``path`` (and in all)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        procedures = conn.execute("SELECT count(*) FROM procedures").fetchone()[0]
        rows = conn.execute(
            "SELECT d.name, m.type, m.tbl_name, sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY d.name"
        ).fetchall()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    per = max(procedures, 1)
    objects = sorted(
        (
            {
                "name": name,
                "type": kind or ("index" if name.startswith("sqlite_autoindex") else "table"),
                "table": table or name.split("_", 2)[-1].rsplit("_", 1)[0],
                "bytes": int(size),
                "per_procedure": size / per,
            }
            for name, kind, table, size in rows
        ),
        key=lambda o: -o["bytes"],
    )
    by_table: dict[str, float] = {}
    for o in objects:
        key = str(o["table"] if o["type"] == "index" and o["table"] else o["name"])
        by_table[key] = by_table.get(key, 0.0) + float(o["per_procedure"])  # type: ignore[arg-type]
    used = sum(int(o["bytes"]) for o in objects)  # type: ignore[call-overload]
    return {
        "file": str(path),
        "schema_version": version,
        "procedures": procedures,
        "bytes_per_procedure": used / per,
        "file_bytes_per_procedure": page_size * page_count / per,
        "free_pages": freelist,
        "by_table_with_indexes": dict(sorted(by_table.items(), key=lambda kv: -kv[1])),
        "objects": objects,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--top", type=int, default=25, help="objects listed (default 25)")
    parser.add_argument("--json", action="store_true", help="everything as JSON")
    args = parser.parse_args(argv)
    if not args.db.exists():
        print(f"{args.db}: no such file", file=sys.stderr)
        return 2
    m = measure(args.db)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(
        f"{m['file']}: schema {m['schema_version']}, {m['procedures']:,} procedures, "
        f"{m['bytes_per_procedure']:,.0f} B/procedure in b-trees "
        f"({m['file_bytes_per_procedure']:,.0f} with free pages: {m['free_pages']:,})"
    )
    print("by table, its indexes included (B/procedure):")
    for table, b in m["by_table_with_indexes"].items():  # type: ignore[attr-defined]
        print(f"  {table:<28} {b:>9,.0f}")
    print(f"largest objects (B/procedure, top {args.top}):")
    for o in m["objects"][: args.top]:  # type: ignore[index]
        print(f"  {o['name']:<44} {o['type']:<6} {o['per_procedure']:>9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
