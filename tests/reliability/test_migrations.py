"""Fault class 6: every released schema, as a fixture file, opens in this version.

Generic over ``tests/fixtures/schema*.db`` (schema1.db today; whoever adds a migration
adds the fixture of the last released schema): a copy is opened with the current
code; every table keeps at least its rows, clinical row ids survive, the audit log
only grows, a private backup identical to the original is left beside it, and the
result passes ``PRAGMA integrity_check`` and ``foreign_key_check``.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from sma_log.domain.clock import Clock
from sma_log.storage import reportcache
from sma_log.storage.schema import CLINICAL_TABLES, SCHEMA_VERSION
from sma_log.storage.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCHEMAS = sorted(FIXTURES.glob("schema*.db"))


def _snapshot(path: Path) -> tuple[int, dict[str, int], dict[str, set[str]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        ids = {
            t: {r[0] for r in conn.execute(f'SELECT id FROM "{t}"')}
            for t in tables
            if t in CLINICAL_TABLES  # (the audit log's rows: counted; numbered since schema 5)
        }
    finally:
        conn.close()
    return version, counts, ids


def test_there_is_a_fixture_for_every_older_schema() -> None:
    versions = {_snapshot(p)[0] for p in SCHEMAS}
    assert versions, "no tests/fixtures/schema*.db"
    # every released schema below the current one has its fixture (a placeholder
    # migration of a branch, replaced by the real one at merge, is no released schema)
    from sma_log.storage.schema import MIGRATIONS

    placeholders = {v for v, m in MIGRATIONS.items() if m.__name__.endswith("_reserved")}
    assert set(range(1, SCHEMA_VERSION)) - placeholders <= versions | {SCHEMA_VERSION}, versions


@pytest.mark.parametrize("fixture", SCHEMAS, ids=[p.name for p in SCHEMAS])
def test_old_schema_opens_with_nothing_lost_and_a_backup(tmp_path: Path, fixture: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy2(fixture, path)
    original = hashlib.sha256(fixture.read_bytes()).hexdigest()
    version, counts, ids = _snapshot(path)
    assert version <= SCHEMA_VERSION
    with Store.open(path, "migrator", clock=Clock(monotonic=False)) as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        backup = s.backup
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert s.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert reportcache.check(s.conn) == []  # the report's kept figures match the data
        # the upgraded file works: an open procedure resumes, new writes are audited
        for row in s.open_procedures():
            view = s.load_procedure(row["id"])
            assert view.state.milestones.get("start") is not None
    _, after, after_ids = _snapshot(path)
    for table, n in counts.items():
        if table in reportcache.LEGACY_TABLES:  # histograms earlier versions kept: dropped
            assert table not in after
            continue
        assert after.get(table, 0) >= n, (table, n, after.get(table))
    for table, before_ids in ids.items():
        assert before_ids <= after_ids[table], f"{table}: rows lost in the migration"
    if version < SCHEMA_VERSION:
        assert backup is not None and backup.parent == path.parent
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        # the backup holds exactly the old content (same rows, same version)
        assert _snapshot(backup)[:2] == (version, counts)
    else:
        assert backup is None
    # the fixture in the repository is never touched
    assert hashlib.sha256(fixture.read_bytes()).hexdigest() == original
    with Store.open(path, "again") as s:  # a second open takes no second backup
        assert s.backup is None
