"""``sma-log datasette-metadata`` (issue 11 item 7), checked on a live Datasette.

The server is bound to 127.0.0.1 on a free port, waited for at most ~20 s, and always
terminated. Datasette is a test dependency (pyproject's test extras): if it is
missing the live test fails, never skips.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sma_log.commands.common import Options
from sma_log.commands.datasette import HIDDEN, datasette_metadata
from sma_log.demo import write_demo
from sma_log.export.dictionary import lookup

HOST = "127.0.0.1"
READY_SECONDS = 20.0


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    path = tmp_path / "clinic.db"
    write_demo(path, procedures=40, seed=2, now=datetime(2026, 3, 27, 9, tzinfo=UTC))
    return path


def _run(db: Path, *args: str) -> Any:
    return CliRunner().invoke(datasette_metadata, list(args), obj=Options(db, "tester", False))


def test_metadata_printed(demo_db: Path) -> None:
    result = _run(demo_db)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["title"] == "sma-log: clinic.db"
    assert "read live" in doc["description"].lower()
    tables = doc["databases"]["clinic"]["tables"]
    assert tables["patients"]["label_column"] == "study_code"
    for name in HIDDEN:
        assert tables[name]["hidden"] is True
    assert not any(t.get("hidden") for n, t in tables.items() if n not in HIDDEN)
    # descriptions from the data dictionary
    assert tables["patients"]["columns"]["study_code"] == lookup("patients", "study_code")[2]
    assert "codes:" in tables["procedures"]["columns"]["approach"]
    assert tables["procedures"]["description"]


def test_metadata_written_and_refusals(demo_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "meta.json"
    result = _run(demo_db, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Wrote Datasette metadata" in result.output
    assert json.loads(out.read_text("utf-8"))["title"] == "sma-log: clinic.db"
    again = _run(demo_db, "--out", str(out))
    assert again.exit_code != 0
    assert "already exists" in str(again.exception) or "already exists" in again.output
    assert _run(demo_db, "--out", str(out), "--force").exit_code == 0
    db_itself = _run(demo_db, "--out", str(demo_db), "--force")
    assert db_itself.exit_code != 0  # never the database


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _datasette(db: Path, meta: Path, tmp_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("datasette") is None:
        pytest.fail(
            "datasette is not installed: install the test extras (pip install -e '.[test]'), "
            "which pin it; this test needs a live Datasette"
        )
    port = _free_port()
    log = (tmp_path / "datasette.log").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datasette",
            "serve",
            str(db),
            "-m",
            str(meta),
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                pass
            try:  # waits a little, and notices a server that stopped
                proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
            else:
                log.seek(0)
                pytest.fail(f"datasette exited ({proc.returncode}) before serving: {log.read()}")
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(
                    f"datasette did not listen on {HOST}:{port} within {READY_SECONDS:.0f} s: "
                    f"{log.read()}"
                )
        yield f"http://{HOST}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with opener.open(url, timeout=15) as response:
        body = response.read().decode("utf-8")
    return json.loads(body) if url.split("?")[0].endswith(".json") else body


def test_live_datasette_uses_the_metadata(demo_db: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta.json"
    assert _run(demo_db, "--out", str(meta)).exit_code == 0
    with _datasette(demo_db, meta, tmp_path) as base:
        served = _get(f"{base}/-/metadata.json")
        assert served["title"] == "sma-log: clinic.db"
        assert served["databases"]["clinic"]["tables"]["patients"]["label_column"] == ("study_code")

        listing = _get(f"{base}/clinic.json")
        hidden = {t["name"]: t["hidden"] for t in listing["tables"]}
        assert hidden["identifiers"] is True and hidden["audit_log"] is True
        assert hidden["patients"] is False and hidden["procedures"] is False

        patients = _get(f"{base}/clinic/patients.json?_shape=objects")
        codes = {r["id"]: r["study_code"] for r in patients["rows"]}
        assert codes and all(c.startswith("DEMO-") for c in codes.values())

        # a procedure's patient is shown by its study code, not its ULID
        procs = _get(f"{base}/clinic/procedures.json?_shape=objects&_labels=on&_size=5")
        assert procs["rows"]
        for row in procs["rows"]:
            assert row["patient_id"]["label"] == codes[row["patient_id"]["value"]]

        # the data dictionary's descriptions on the table page
        page = _get(f"{base}/clinic/patients")
        code_words = lookup("patients", "study_code")[2]
        assert f'data-column-description="{code_words}"' in page
        assert "One row per patient" in page


def test_the_command_is_reachable_through_sma_log(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sma_log.cli import main

    res = CliRunner().invoke(main, ["datasette-metadata", "--help"])
    assert res.exit_code == 0 and "Datasette" in res.output
