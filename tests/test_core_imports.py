"""The domain core imports neither Textual nor SQLite; the package itself imports nothing heavy.

Checked in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sma_log.domain

FORBIDDEN_IN_DOMAIN = ("textual", "sqlite3", "_sqlite3", "sqlite_utils")
HEAVY = (*FORBIDDEN_IN_DOMAIN, "pendulum", "click", "platformdirs", "ulid", "rich")
ROOT = Path(__file__).resolve().parents[1]


def domain_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(sma_log.domain.__path__)]
    return sorted(f"sma_log.domain.{n}" for n in names)


def loaded_after(imports: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_every_domain_module_is_checked() -> None:
    mods = domain_modules()
    for expected in ("vocab", "fields", "timeline", "clock", "ids"):
        assert f"sma_log.domain.{expected}" in mods
    # schedule and dosing are checked as soon as they exist
    assert len(mods) >= 5


def test_domain_core_loads_no_textual_or_sqlite() -> None:
    mods = domain_modules()
    loaded = top_level(loaded_after(mods))
    assert set(mods) <= loaded_after(mods)
    bad = sorted(loaded & set(FORBIDDEN_IN_DOMAIN))
    assert not bad, f"importing {mods} loaded {bad}"


def test_each_domain_module_alone_loads_no_textual_or_sqlite() -> None:
    for mod in domain_modules():
        bad = sorted(top_level(loaded_after([mod])) & set(FORBIDDEN_IN_DOMAIN))
        assert not bad, f"{mod} loaded {bad}"


def test_import_sma_log_loads_nothing_heavy() -> None:
    loaded = top_level(loaded_after(["sma_log"]))
    assert not sorted(loaded & set(HEAVY))
    assert not {m for m in loaded_after(["sma_log"]) if m.startswith("sma_log.")}
