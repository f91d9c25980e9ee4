"""The demo generator's output, pinned: same seed and ``now``, the same rows, byte for byte.

Recorded from the generator as it was before ``sma_log/demo.py`` became a package, so any
refactoring that changes a random draw, a column or the insertion order shows up here.
Re-recorded on purpose twice: with schema 5 (issue 13: the demo writes the audit rows the
app writes: ``audit_log``, ``audit_tx``, the returned counts) and when each operator's first
attempt began to follow a learning curve (issue 14: the draws after it shift every table).
Every table is read ``ORDER BY rowid`` (``report_facts`` has none: by all its columns)
and the ``repr`` of its rows hashed; so is what ``write_demo`` returns (but its seconds).

Left out, because they differ between two runs or between machines and are not the
demo's output: the ``meta`` rows ``created_at`` (the wall-clock time the Store created
the file; proven to differ by writing the same demo twice), ``sqlite_version``, and
``created_by``/``last_opened_by`` (the package version).
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
        "attempts": "89:9abee09d934ebd3b40d49deef019d8ccc7b0c07a1fa48bde2c7948660c0ac957",
        "audit_log": "2042:77b17e420e24ab401d2f3445451f0c332f6bfc4dadd308aacdaf1c17350ff4af",
        "audit_tx": "711:ec2c1fb17caef03cd97cfacedb55fa50e4689f39f651dc905b50e662bfa3fc61",
        "contact_attempts": "38:90eb6680a1c92da1a61d2c24d02223ab921752a3b746eac1ed7e42d070f1a400",
        "events": "543:a4d952ef4ae692d63e9ee9ee581e3cecaae158f1c262632243317069e843b649",
        "followups": "118:b44a122a0c8007e25d988ced8845ff95d40cf079bf27564833b98ab5d6b9bac0",
        "identifiers": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "labs": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "meta": "2:ba1cc2692df423187279dff081cdd58eb2da8e4e31216195f17eed680a7e18a0",
        "patients": "17:e4ea799f5a89525ffe49add5a6965f583951c0971de73b1fcc8a94045437f1f2",
        "procedures": "60:5c8466262567d7da65ecac7a83ed96e9c5e3896bcf95456a110c8840ee4b088c",
        "report_facts": "59:83b302ae36473a054672b0ab87aae14ccb42882a097959537d20fe981f6d40c7",
        "timeouts": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "(returned)": "04268df14b8ea84edd2083acb21daaeb0075316c3041d841b8a0e7bbc501e994",
    },
    (250, 11): {
        "attempts": "320:86508eab623c3c7f5e038f1640a7f3756205668b9846acd34ff09aeeb9d82a6e",
        "audit_log": "8536:bb3a0b497102fef4a50b9e3345a9fada2cfffd4af48fdb491f1de81e7a2b578f",
        "audit_tx": "2794:86be63859f5ce6a1501520a54ba98dfcddc31efd541681b94076c87c1ba8b392",
        "contact_attempts": "166:0bbac4fcafaf358cc125ea6a7e530198827d76ea2ec0d373bf9a8cd68fbb86c4",
        "events": "2061:b0560d0ff63a7e047a66b12614a891db0fbe726892350fde338d4c54e6c2aed9",
        "followups": "498:6766475df8f9aa33672feb7be6eb714192c5d53cf9938f33e820c5b9fc229d20",
        "identifiers": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "labs": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "meta": "2:7b64f3b66842d1c91176cec136b77d5fc6c68041047eaa9dd4fcc9694334360a",
        "patients": "71:edc8f65f491ebc335f2b0541707c23376a21287c441bd61e03ec0d0e3d167a60",
        "procedures": "250:9e2242acc81b41a86766c3197d788cf05c1a25217139b44e8ecbe322d486ceab",
        "report_facts": "249:601df2460ee61ca2d93749410d95136ccde14227b5a13d8241e93458135162de",
        "timeouts": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "(returned)": "1d1ab297fa363675ae5d0ea405d69301827ede141cb1135e16362d363e7fccbe",
    },
    (2100, 5): {
        "attempts": "3053:039b6257843e7f25a890c9ea2cf5c0351284ce08480f1c80fad41b1bb29f3f44",
        "audit_log": "73890:51706542c86803ee1f5ef2a6bde1b0e63bc7d73d18282a004cbeb8888d5b5cc0",
        "audit_tx": "25440:88f7ad929710aca85fd1680d4765ed1bc17c9bdb967e52f1f2bcdef8606c7743",
        "contact_attempts": "1430:1732c6f494d364f90ab7aeddea77d4309aeedc185fd83353bb6582318ae348a8",
        "events": "19204:d606f2a651855a50d6f115a8f5fe1d1133fc3343a5ffd9647212dfabd8500b0f",
        "followups": "4198:61fcbe7b9c78e05c47321203203fc24edc3858cc890bf797cb6f5accd84cf566",
        "identifiers": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "labs": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "meta": "2:5ad023f9a79fac226a538f86a84b99c5210ccad06990a95f17c80846ebcc63f7",
        "patients": "600:2c012bc9a6117d75b1e428a5947acb3bddd02650566871b084b46cff86f0fb06",
        "procedures": "2100:ec61b7f2299ff61d2501aad452afadce41f09fefebd16b097c125c98b6a5dc0f",
        "report_facts": "2099:b7ece322dbadabf86cfdcdf29309d91222b98466efc6bf93eac744d1cb2c5694",
        "timeouts": "0:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "(returned)": "6524fa1a5c529d64f704777cc9b324d7ddec2cf27dee9b355ecfef8675062e80",
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
