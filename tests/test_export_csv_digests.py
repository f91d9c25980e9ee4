"""The CSV export's bytes, pinned: sha256 of every file of a seeded demo database.

Recorded from the SQL-built CSV writer before it was replaced (issue 12): whatever
writes the CSV files now must write these exact bytes (de-identified, with
``--identifiers``, and with ``--excel``). A few hostile operator names (quotes,
commas, line breaks, formula characters, non-ASCII) are put in with plain SQL, as
another tool could, so quoting and the formula guard are pinned too.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sma_log.demo import write_demo
from sma_log.export import csvfiles
from sma_log.export.common import ExportOptions
from sma_log.storage.store import Store

HOSTILE = (
    "a,b",
    'say "hi"',
    "two\nlines",
    "cr\rin",
    "=1+1",
    "-5",
    "+39 06",
    "@SUM(A1)",
    "\tTab",
    "Ünïcödé, ☃",
)

DIGESTS: dict[str, dict[str, str]] = {
    "deidentified": {
        "attempts.csv": "a5c51cab009664b6f694fa104f2bab8a736ccbd30df6d276fb6108ce58d203ca",
        "contact_attempts.csv": "6ec6a49f1ae56c73e3addeebb3102b8b5b04647bc559e06a5445559ee6355e88",
        "data_dictionary.csv": "c611f7fad92e93bf7967db0aa95e5900d1ca21795bd187e3454078d173cfaed2",
        "events.csv": "573c384636c75b1a3b2a2d8c4fcad6d96797ac72ed53887fa33b212e9c2cd626",
        "followups.csv": "5cc6782952f5e19149d567648763f294b70f8b95fdc84714864231166ccb3393",
        "labs.csv": "f3d8fe2226f8cf198c9bd41cf4fc55afe6267eb3066c6acef23d2f0780c18dc0",
        "patients.csv": "fd1772580ad2baed316b18ea74b41038ff3eb4b4a97cc29147fad684a4e9ea4b",
        "procedures.csv": "9852f826fb3aa16429870fb9623f6f7097dd157c29badd1ff574edba9f53cbac",
        "procedures_analysis.csv": "a22c08b41df37b90632e99de8234a49d63186468a34464044bcb9c96474796ba",  # noqa: E501
        "timeouts.csv": "6ca51df588ca87c389207dcdeaa7ee347e08d94119cae2eac56af9cc01b11028",
    },
    "excel": {
        "attempts.csv": "401bfe8e41e79f1390e832d2c4c8c408f61c82efece4c0f6d573eabf266a5cc1",
        "contact_attempts.csv": "236fad5482e89a2646652c4eff15a9238406025906e0ea80febaf9d92c13dbd3",
        "data_dictionary.csv": "9db0677fa7b55b090e48d89ac9c9f39a25bf02710affcb236a7eeccd80554fb6",
        "events.csv": "5768a2d09acc37555e949c4a916b19a429249ef61aadf7fb66a694de686ef1f4",
        "followups.csv": "c497d8c2a097955876f59602bc7ffeb3059f0788ed34d8b802be025d77e3a511",
        "labs.csv": "e48f847217ffec3edae74e025ef8f131523be9454037157a357054044c96fac3",
        "patients.csv": "173304b15233cf4f388051a944ce2489bd453d836aa8f44de0d142f8b5d1c0e7",
        "procedures.csv": "d9cefa338cf52f02dfd66d938b3bf60c188371e09eb81b8faab9068738ad2daf",
        "procedures_analysis.csv": "a3c8d56bb77d5a125a64b73537177b33d8fda6a75ea0531a24bc96868e04ef68",  # noqa: E501
        "timeouts.csv": "ca40cf12569a17bb9a6b87896a0935b160cf99db357bf4c665e57c31071a9c4e",
    },
    "identifiers": {
        "attempts.csv": "96df0127bb2e2970ef16ff0bb4caced562d32da52157a95f45d7704063525dcc",
        "contact_attempts.csv": "2ff87e57d487628502a69ed085d8ecb774669d06fe9b087a3a21ac065c5b87e0",
        "data_dictionary.csv": "2169d33790d67bcb60c7ef2a61da755052aa994d5a51682681b448163e19820f",
        "events.csv": "e07e0f84f78fbd396817ea20e1bbae936eb45b57b43c635e2b31b054a79ed5a9",
        "followups.csv": "3db2ff5e8d5e08e6c89cc6c9c56f29b7d17412144bb4e26849c7065b8f826576",
        "identifiers.csv": "6a28e41703da418ce8f9d9ccf01ed7f18cdf56a6823b18cee3d3710520aa2249",
        "labs.csv": "f3d8fe2226f8cf198c9bd41cf4fc55afe6267eb3066c6acef23d2f0780c18dc0",
        "patients.csv": "79ee81bd00ebd0c77ef6b9fbb780ef437bccaac8be09f263e64bf04bcff7052b",
        "procedures.csv": "cb204b56fb36b4278d9a9a1e226ad5f307787243b04061ef13e0750e0daa3184",
        "procedures_analysis.csv": "9b0bd8bf743b7434569267bfb6b689058007d53d4f0bf252c6b309bc9d6dc470",  # noqa: E501
        "timeouts.csv": "33082386c28404ede34c5fc95a0af57bdcf789d0203f1a71c1eec5ac28d34066",
    },
}

VARIANTS = {
    "deidentified": ExportOptions(identifiers=False, tz="Europe/Rome"),
    "identifiers": ExportOptions(identifiers=True, tz="Europe/Rome"),
    "excel": ExportOptions(identifiers=False, tz="Europe/Rome", excel=True),
}


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("digests") / "demo.db"
    write_demo(db, procedures=300, seed=7, now=datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT id FROM procedures ORDER BY started_at, id LIMIT 40")]
    for i, p in enumerate(ids):
        conn.execute(
            "UPDATE procedures SET operator = ? WHERE id = ?", (HOSTILE[i % len(HOSTILE)], p)
        )
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_csv_files_are_the_recorded_bytes(seeded_db: Path, tmp_path: Path, variant: str) -> None:
    out = tmp_path / variant
    with Store.open(seeded_db, "t", readonly=True) as store:
        csvfiles.write_csv(store, out, VARIANTS[variant], force=False)
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}
    assert got == DIGESTS[variant]
