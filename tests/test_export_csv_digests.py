"""The CSV export's bytes, pinned: sha256 of every file of a seeded demo database.

Recorded from the SQL-built CSV writer before it was replaced (issue 12): whatever
writes the CSV files now must write these exact bytes (de-identified, with
``--identifiers``, and with ``--excel``). A few hostile operator names (quotes,
commas, line breaks, formula characters, non-ASCII) are put in with plain SQL, as
another tool could, so quoting and the formula guard are pinned too.

Re-pinned for issue 14 (schema 6): ``procedures.csv`` (its four drug-timing columns)
and ``data_dictionary.csv`` changed, ``labs.csv`` and ``timeouts.csv`` are new; every
other file's bytes are the recorded ones.
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
        "labs.csv": "f3d8fe2226f8cf198c9bd41cf4fc55afe6267eb3066c6acef23d2f0780c18dc0",
        "timeouts.csv": "6ca51df588ca87c389207dcdeaa7ee347e08d94119cae2eac56af9cc01b11028",
        "attempts.csv": "060e03d98218cfde21266a64fa62c95511526f19da6f2e3232d8191dfbc50991",
        "contact_attempts.csv": "c396498983601e022c56104780aa198fe784003d8024e6bb306c3e9ca7b1ef14",
        "data_dictionary.csv": "c611f7fad92e93bf7967db0aa95e5900d1ca21795bd187e3454078d173cfaed2",
        "events.csv": "5cb3501b01e896994771408c7c87cab9c995ec02d2ccd6bec2b0b1936054b48c",
        "followups.csv": "d754995bfabd4d554608d617ec86e7e46478097c53d05edafd62eb1e12adb150",
        "patients.csv": "ebefe067e9b91b681e3ad77a29ddcaa452ad0a7f6e770afd2cbcd67f4520c155",
        "procedures.csv": "70e91082e638a4d41a135bf48a9461b83c00920081d99b2ef633dbf627418336",
        "procedures_analysis.csv": "adca39530241fb80fdd4cd24dec9cdc2f15bffea088b4b85fd1a1e311b0e0271",  # noqa: E501
    },
    "identifiers": {
        "labs.csv": "f3d8fe2226f8cf198c9bd41cf4fc55afe6267eb3066c6acef23d2f0780c18dc0",
        "timeouts.csv": "33082386c28404ede34c5fc95a0af57bdcf789d0203f1a71c1eec5ac28d34066",
        "attempts.csv": "bb162b89e821cf351a90e47b92db061d4367fba38984430aa0cba84d509d5c6f",
        "contact_attempts.csv": "7fad4f62a13d692c553c89afece1d28ff0595a8f6cf3eaf5c7fab345447f3b2d",
        "data_dictionary.csv": "2169d33790d67bcb60c7ef2a61da755052aa994d5a51682681b448163e19820f",
        "events.csv": "623d62b91bb7bb8354186316ac7d4e80e578dfdb0a9b98ef0f8475319e6834d0",
        "followups.csv": "202d29e1d849520ca57cea91badf462aa57e12b44047dc5d45d1e62a5630704b",
        "identifiers.csv": "6a28e41703da418ce8f9d9ccf01ed7f18cdf56a6823b18cee3d3710520aa2249",
        "patients.csv": "87bf5021cdb893977582efa0088b21806265ab55e21bbc9a37c7bd2b028065ea",
        "procedures.csv": "0b53ef4bce4f9b8b47cfcfeef16f41e7cbf64958e71d6334d9501970fe1df8c1",
        "procedures_analysis.csv": "c640d5c2cdd266a476c1582e390bb8577097926f46c3eb41a1cda285f3a919c5",  # noqa: E501
    },
    "excel": {
        "labs.csv": "e48f847217ffec3edae74e025ef8f131523be9454037157a357054044c96fac3",
        "timeouts.csv": "ca40cf12569a17bb9a6b87896a0935b160cf99db357bf4c665e57c31071a9c4e",
        "attempts.csv": "ac46da9fe217a6455d23307d158351abccac4b768c04cea638807ada96c9fe0a",
        "contact_attempts.csv": "ef0e0f6cb5915da5aacb457b7dd1fcb0cd84ce02ccb885c65705589c6072b8a6",
        "data_dictionary.csv": "9db0677fa7b55b090e48d89ac9c9f39a25bf02710affcb236a7eeccd80554fb6",
        "events.csv": "e042df006f79fa41cffc6e05d10027c6c51beadc266f1cf998f6da98bdca64af",
        "followups.csv": "471eb60e19e82cd3a04322490ada3656ee69a21effdd81f4ae7674f2c3785bfb",
        "patients.csv": "e19bdda9cbc40bef0e2e0c792aae01a319f79ee025fa1236742bd491e85082e1",
        "procedures.csv": "f755f85393482cddece145a66ad0cf3c00b4bc031776639bba4cffa6e9363123",
        "procedures_analysis.csv": "5501f47523904b5857225314a71450581b060d3ce8a9f2e9aadef724f8c18508",  # noqa: E501
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
