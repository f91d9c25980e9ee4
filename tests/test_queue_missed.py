"""The queue holds what needs action (issue 13): a follow-up missed for longer than the
setting ``missed_after_days`` (14 days after its window closed) leaves it, and stays
reachable (the queue's ``m``, ``followups --status missed``). A file with years of old
activity shows the same queue as a small one with the same recent activity.

Real files through the Store, pendulum's clock travelling (never sleeping); the app
through Pilot.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from click.testing import CliRunner
from factories import SETUP
from textual.widgets import DataTable

from sma_log.cli import main
from sma_log.config import Settings
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.app import create_app
from sma_log.ui.screens.followups import FollowupScreen

NOW = pendulum.datetime(2026, 5, 10, 12, 0, tz="UTC")
#: Study code -> hours since its procedure ended (the recent activity of both files).
#: LATE: its 72-hour call was missed 4 days ago (stays); OLD: 16 days ago (leaves).
RECENT = {"UPC": 10, "DUE": 66, "OVER": 80, "LATE": 8 * 24, "OLD": 20 * 24}


@pytest.fixture
def travel() -> Iterator[Any]:
    def go(dt: pendulum.DateTime) -> None:
        pendulum.travel_to(dt, freeze=True)

    yield go
    pendulum.travel_back()


def _procedure(store: Store, travel: Any, code: str, end: pendulum.DateTime) -> str:
    travel(end.subtract(minutes=10))
    pt = store.find_patient(code) or store.create_patient({"study_code": code})
    pid = store.start_procedure(pt["id"], SETUP)
    for kind in ("attempt", "csf", "injection_start", "injection_end"):
        store.record(pid, kind)
    travel(end)
    store.end_procedure(pid, {"drug_delivered": "yes"})
    return pid


def _small(db: Path, travel: Any) -> None:
    """The recent activity: scores taken, 72-hour calls open in every state."""
    with Store.open(db, "nurse", clock=Clock(monotonic=False)) as s:
        for code, hours in RECENT.items():
            end = NOW.subtract(hours=hours)
            pid = _procedure(s, travel, code, end)
            travel(end.add(minutes=5))
            s.set_score(pid, 5)


def _add_old_activity(db: Path, travel: Any, n: int) -> None:
    """``n`` procedures over the two years before the recent activity, their
    follow-ups never taken (all long missed today): a big old file's queue."""
    start = NOW.subtract(days=60)
    with Store.open(db, "nurse", clock=Clock(monotonic=False)) as s:
        for i in range(n):
            _procedure(s, travel, f"OLD-{i % 40:03d}", start.subtract(days=730 * i // n))


@pytest.fixture
def files(tmp_path: Path, travel: Any) -> tuple[Path, Path]:
    small = tmp_path / "small.db"
    _small(small, travel)
    big = tmp_path / "big.db"
    shutil.copyfile(small, big)
    _add_old_activity(big, travel, 150)
    travel(NOW)
    return small, big


def _queue(db: Path, **kw: Any) -> list[tuple[str, str, str]]:
    with Store.open(db, "reader", clock=Clock(monotonic=False)) as s:
        return [(i.id, i.row["study_code"], i.status) for i in s.followup_queue(**kw)]


def test_a_big_old_file_shows_the_small_files_queue(files: tuple[Path, Path]) -> None:
    small, big = files
    queue = _queue(small)
    assert _queue(big) == queue
    assert [(code, status) for _, code, status in queue] == [
        ("OVER", "overdue"),
        ("DUE", "due"),
        ("UPC", "upcoming"),
        ("LATE", "missed"),  # missed 4 days ago: still the nurses' to act on
    ]
    # missed longer ago: out of the queue, not out of reach
    every = _queue(big, missed_too=True)
    assert ("OLD", "missed") in {(c, st) for _, c, st in every}
    assert len(every) == len(queue) + 1 + 2 * 150
    assert {i for i, _, _ in queue} < {i for i, _, _ in every}
    with Store.open(big, "reader", clock=Clock(monotonic=False)) as s:
        assert s.long_missed_counts() == {"score_5min": 150, "day3": 151}
    with Store.open(small, "reader", clock=Clock(monotonic=False)) as s:
        assert s.long_missed_counts() == {"score_5min": 0, "day3": 1}


def test_the_setting_moves_the_line(files: tuple[Path, Path]) -> None:
    small, _ = files
    codes = lambda **kw: [c for _, c, _ in _queue(small, **kw)]  # noqa: E731
    assert "LATE" in codes()
    assert "LATE" not in codes(missed_after_days=3)  # its window closed 4 days ago
    assert "OLD" in codes(missed_after_days=17)
    with Store.open(small, "reader", clock=Clock(monotonic=False)) as s:
        s.set_missed_after(0)
        assert [i.row["study_code"] for i in s.followup_queue()] == ["OVER", "DUE", "UPC"]
        with pytest.raises(ValueError):
            s.set_missed_after(-1)


def _cli(db: Path, config: Path, *args: str) -> Any:
    env = {"SMA_LOG_CONFIG": str(config)}
    return CliRunner(env=env).invoke(
        main, ["--db", str(db), "followups", *args], catch_exceptions=False
    )


def test_the_cli_lists_long_missed_with_status_missed(files: tuple[Path, Path]) -> None:
    _, big = files
    config = big.parent / "settings.json"
    Settings(timezone="Europe/Rome").save(config)
    queue = json.loads(_cli(big, config, "--format", "json").stdout)
    assert [r["study_code"] for r in queue] == ["OVER", "DUE", "UPC", "LATE"]
    missed = json.loads(_cli(big, config, "--status", "missed", "--format", "json").stdout)
    assert {r["status"] for r in missed} == {"missed"}
    assert len(missed) == 1 + 1 + 2 * 150  # LATE, OLD's call, every old one
    # the setting, from the settings file
    Settings(timezone="Europe/Rome", missed_after_days=30).save(config)
    queue = json.loads(_cli(big, config, "--format", "json").stdout)
    assert [r["study_code"] for r in queue] == ["OVER", "DUE", "UPC", "OLD", "LATE"]


def test_settings_option_sets_missed_after(tmp_path: Path) -> None:
    config = tmp_path / "settings.json"
    env = {"SMA_LOG_CONFIG": str(config)}
    result = CliRunner(env=env).invoke(main, ["settings", "--missed-after", "21"])
    assert result.exit_code == 0, result.output
    assert "missed leave queue: 21 days after the window" in result.stdout
    assert Settings.load(config).missed_after_days == 21
    result = CliRunner(env=env).invoke(main, ["settings", "--missed-after", "-1"])
    assert result.exit_code == 2
    assert Settings.load(config).missed_after_days == 21


class CountingQueue(FollowupScreen):
    """The queue screen, counting its redraws from the database."""

    refreshes = 0

    def refresh_from_store(self, focus: str | None = None) -> None:
        CountingQueue.refreshes += 1
        super().refresh_from_store(focus)


def test_the_queue_screen_m_shows_the_long_missed_and_opens_with_one_refresh(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, big = files
    app = create_app(
        big,
        user="nurse",
        settings=Settings(timezone="Europe/Rome"),
        clock=Clock(monotonic=False),
        settings_path=tmp_path / "s.json",
    )

    def codes() -> list[str]:
        table = app.screen.query_one("#queue", DataTable)
        return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]

    async def main_() -> None:
        async with app.run_test(size=(130, 34)) as pilot:
            await pilot.pause()
            CountingQueue.refreshes = 0
            app.push_screen(CountingQueue())
            await pilot.pause()
            assert CountingQueue.refreshes == 1
            assert codes() == ["OVER", "DUE", "UPC", "LATE"]
            key = app.screen.active_bindings["m"]  # in the footer (and so in the help)
            assert key.binding.show and key.binding.description == "Missed too"
            await pilot.press("down")  # on DUE
            await pilot.press("m")
            await pilot.pause()
            assert len(codes()) == 4 + 1 + 2 * 150
            assert "OLD" in codes()
            table = app.screen.query_one("#queue", DataTable)
            assert str(table.get_row_at(table.cursor_row)[1]) == "DUE"  # cursor kept
            await pilot.press("m")
            await pilot.pause()
            assert codes() == ["OVER", "DUE", "UPC", "LATE"]

    asyncio.run(main_())


def test_next_doses_in_one_query_equal_the_one_by_one_lookup(files: tuple[Path, Path]) -> None:
    _, big = files
    with Store.open(big, "reader", clock=Clock(monotonic=False)) as s:
        ids = [r["id"] for r in s.query("SELECT id FROM patients")] + ["no-such-patient"]
        zone = pendulum.timezone("Europe/Rome")
        many = s.next_doses(ids, "us", zone)
        assert many == {pid: s.next_dose(pid, "us", zone) for pid in ids}
        assert many["no-such-patient"] is None
        assert s.next_doses([]) == {}


def test_home_reads_bounded_and_the_same_as_before(files: tuple[Path, Path]) -> None:
    """recent_patients: by latest procedure, with list_patients' columns;
    pending_scores: the old query's rows (every score open in the big file)."""
    _, big = files
    with Store.open(big, "reader", clock=Clock(monotonic=False)) as s:
        every = {r["id"]: r for r in s.list_patients(limit=1000)}
        latest = sorted(every.values(), key=lambda r: r["last_procedure_at"], reverse=True)
        got = s.recent_patients(10)
        assert [r["id"] for r in got] == [r["id"] for r in latest[:10]]
        assert all(r == every[r["id"]] for r in got)
        assert len(s.recent_patients(1000)) == len(every)
        assert s.recent_patients(0) == []
        old = s.query(
            """SELECT p.*, pt.study_code FROM procedures p JOIN patients pt
            ON pt.id = p.patient_id WHERE p.status = 'ended' AND p.satisfaction_5min IS NULL
            ORDER BY p.ended_at DESC LIMIT 50"""
        )
        assert s.pending_scores() == old and len(old) == 50
        assert s.pending_scores(3) == old[:3]
