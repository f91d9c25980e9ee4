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
        "data_dictionary.csv": "523a72190761bf6c498c6da8208d6d55c3073bd4f027d8ab9fc053a95e4d9f6c",
        "events.csv": "573c384636c75b1a3b2a2d8c4fcad6d96797ac72ed53887fa33b212e9c2cd626",
        "followups.csv": "5cc6782952f5e19149d567648763f294b70f8b95fdc84714864231166ccb3393",
        "patients.csv": "fd1772580ad2baed316b18ea74b41038ff3eb4b4a97cc29147fad684a4e9ea4b",
        "procedures.csv": "2900a3ea62f707f32552c69b9d12c052289f6d13c58a6fd5133b4cf8d81f1618",
        "procedures_analysis.csv": "a22c08b41df37b90632e99de8234a49d63186468a34464044bcb9c96474796ba",  # noqa: E501
    },
    "identifiers": {
        "attempts.csv": "96df0127bb2e2970ef16ff0bb4caced562d32da52157a95f45d7704063525dcc",
        "contact_attempts.csv": "2ff87e57d487628502a69ed085d8ecb774669d06fe9b087a3a21ac065c5b87e0",
        "data_dictionary.csv": "c8d88121c351d94be420a8ce91a9df7d4bffe9a2a8e50ecaf1255b761c438455",
        "events.csv": "e07e0f84f78fbd396817ea20e1bbae936eb45b57b43c635e2b31b054a79ed5a9",
        "followups.csv": "3db2ff5e8d5e08e6c89cc6c9c56f29b7d17412144bb4e26849c7065b8f826576",
        "identifiers.csv": "6a28e41703da418ce8f9d9ccf01ed7f18cdf56a6823b18cee3d3710520aa2249",
        "patients.csv": "79ee81bd00ebd0c77ef6b9fbb780ef437bccaac8be09f263e64bf04bcff7052b",
        "procedures.csv": "7df17a42c392d1db0b9d116ec6b9c06474022d7a5b6334335353307e022f869b",
        "procedures_analysis.csv": "9b0bd8bf743b7434569267bfb6b689058007d53d4f0bf252c6b309bc9d6dc470",  # noqa: E501
    },
    "excel": {
        "attempts.csv": "401bfe8e41e79f1390e832d2c4c8c408f61c82efece4c0f6d573eabf266a5cc1",
        "contact_attempts.csv": "236fad5482e89a2646652c4eff15a9238406025906e0ea80febaf9d92c13dbd3",
        "data_dictionary.csv": "4be95e87818f4bee7cf57c4b42bcf60b56361d8193ea0abeac68c461bd287ae6",
        "events.csv": "5768a2d09acc37555e949c4a916b19a429249ef61aadf7fb66a694de686ef1f4",
        "followups.csv": "c497d8c2a097955876f59602bc7ffeb3059f0788ed34d8b802be025d77e3a511",
        "patients.csv": "173304b15233cf4f388051a944ce2489bd453d836aa8f44de0d142f8b5d1c0e7",
        "procedures.csv": "90a5ce3218e4cac74c69d187778dac2324a2e71e1017d9649092deb9d3e37486",
        "procedures_analysis.csv": "a3c8d56bb77d5a125a64b73537177b33d8fda6a75ea0531a24bc96868e04ef68",  # noqa: E501
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
