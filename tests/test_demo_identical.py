"""The demo generator's output, pinned: same seed and ``now``, the same rows, byte for byte.

Recorded from the generator as it was before ``sma_log/demo.py`` became a package, so any
refactoring that changes a random draw, a column or the insertion order shows up here.
Every table is read ``ORDER BY rowid`` (``report_facts`` has none: by all its columns)
and the ``repr`` of its rows hashed; so is what ``write_demo`` returns (but its seconds).

Left out, because they differ between two runs or between machines and are not the
demo's output: the ``meta`` rows ``created_at`` (the wall-clock time the Store created
the file; proven to differ by writing the same demo twice), ``sqlite_version``, and
``created_by``/``last_opened_by`` (the package version).

Re-pinned for issue 14 (schema 6): ``procedures`` gained four derived drug-timing
columns (so did the audit rows of their inserts), ``labs`` and ``timeouts`` are new
empty tables; the other tables are the recorded rows. (The audit team's migration 5
will need these re-pinned again at merge.)
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sma_log import demo

NOW = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
NOT_THE_DEMOS = ("created_at", "sqlite_version", "created_by", "last_opened_by")

EXPECTED: dict[tuple[int, int], dict[str, str]] = {
    (60, 1): {
        "timeouts": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "labs": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "attempts": "131:fa19e13d2b55cff566e9a4e9d76adce7bae48c9c71bd14731b20e4108997629a",
        "audit_log": "227:020f2cacb8b05debb3406b5da095f115159e17e93399a9b95e70a210fe662d9f",
        "contact_attempts": "32:fee7545ae94f0006ec684a4a2493e40532bf91a0b26cf9a5244e8d7f463fdea5",
        "events": "725:1788400df96915348c056140e7b773bfc24c956e7fb73625660142ddfc5250fa",
        "followups": "118:c1c8812a3779b9a36157c722e8a786267ed3d2d21e84bda4764e470261392ecb",
        "identifiers": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "meta": "2:ba1cc2692df423187279dff081cdd58eb2da8e4e31216195f17eed680a7e18a0",
        "patients": "17:ae6763a8e4d33fac5cd91dd75a16dea74f13d95755d1cdabe7fe780eb6656574",
        "procedures": "60:8a71b5f32eedd45346732a29dd0aaf7f330e2c33ae48bb29576c3268e073721e",
        "report_facts": "59:0efe2f7efebba9793da6991f6404198d86ee3636267d1a6cfca4539f88fc6160",
        "(returned)": "0db8a294317a11e30c16efa4a332f2adba8d04543fef72db17346bf99e3287c1",
    },
    (250, 11): {
        "timeouts": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "labs": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "attempts": "470:f202a01cb4272c9d8a07e90b21878a8af26d38e2439201131cd77533f68c5206",
        "audit_log": "992:f8ac6e5358d33159dadd7b8a1d12c51a400d472084e00a07664746a0b31fb6b8",
        "contact_attempts": "173:73215377ab7f106c63e73a544f2b95494b1de2ab1989c9ec4878f14cd2c9cbbb",
        "events": "2600:7f7acfe6e775bdbbb87acec8498bbbe5b98bbcde4ca051c906598413927449c8",
        "followups": "498:487c51d5b24848c6e44ba7ddd1b3a898b9243a6aa35c639ad53a73b8bf44841a",
        "identifiers": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "meta": "2:7b64f3b66842d1c91176cec136b77d5fc6c68041047eaa9dd4fcc9694334360a",
        "patients": "71:dc35322b3540c3db4e2fe54c93e3949a5d11078ff12432ca256093316541bf11",
        "procedures": "250:7f27fcb92710eff29ad13a0937b0f418fd5d4644a8378bd1a94bd0698c073ebc",
        "report_facts": "249:30c0edabff9ddd86216ff49e3e073cc41874d7e9d6a199d22e781f719420be99",
        "(returned)": "783a567f1f5c6362eedaf1bda817f61a91fdd1223a716dd71a7da97815069a1f",
    },
    (2100, 5): {
        "timeouts": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "labs": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "attempts": "3906:a3acfa7bb36b04ce0b691d178c14960b1fe5f2c30b137d8fdbbc2107e216d554",
        "audit_log": "8230:96bfba90d2a021d6764c005a83ed559a0a162dd3a5138d2e4e004fe991b40be4",
        "contact_attempts": "1332:cac7ce065de18c366b7b9cf8eeace1f16f614edc72ec3e40a4975a34827bef1e",
        "events": "21642:7c82fe9eaea254630d54cbd1a48b463d942496abbc7217f67fc59e5035f8e358",
        "followups": "4198:e238875cb87aacda2b89b65d8655f9777fd427602495a4afb314293c9f3e126b",
        "identifiers": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "meta": "2:5ad023f9a79fac226a538f86a84b99c5210ccad06990a95f17c80846ebcc63f7",
        "patients": "600:0fdbc729d78300dadfccc66f2f43105f51b451000e9f7f869ad3ce773e60f606",
        "procedures": "2100:56c8c64d36ff4d5a77919ed1efc33342ee6aa9bad529bd5fd018e5ae3196d307",
        "report_facts": "2099:d87368be38de60c2b5472e3e4f8c0047e873d195a325401b702f575c7b77a50a",
        "(returned)": "e514d253e930dc4e3143250b0f0eaf500f70d8fd73255b560ed2e4ab7afaf9fd",
    },
}


def digests(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        out = {}
        for table, sql in tables:
            if "WITHOUT ROWID" in sql.upper():
                width = len(conn.execute(f"SELECT * FROM {table} LIMIT 0").description)
                order = ", ".join(str(i) for i in range(1, width + 1))
            else:
                order = "rowid"
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] not in NOT_THE_DEMOS]
            out[table] = f"{len(rows)}:{hashlib.sha256(repr(rows).encode()).hexdigest()}"
        return out
    finally:
        conn.close()


@pytest.mark.parametrize(("procedures", "seed"), sorted(EXPECTED))
def test_demo_rows_are_the_recorded_ones(tmp_path: Path, procedures: int, seed: int) -> None:
    path = tmp_path / "demo.db"
    result = demo.write_demo(path, procedures=procedures, seed=seed, now=NOW)
    del result["seconds"]
    returned = hashlib.sha256(repr(sorted(result.items())).encode()).hexdigest()
    found = {**digests(path), "(returned)": returned}
    assert found == EXPECTED[(procedures, seed)]
