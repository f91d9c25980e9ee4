"""The queue's periodic redraw reads in a worker thread and never overwrites a newer
state: the real app (Pilot) on a real file, with time travel (issue 13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from test_ui_followups import (  # noqa: F401 - clinic is a fixture
    NOW,
    clinic,
    codes,
    cursor,
    day3,
    make_app,
    move_to,
    open_queue,
    run,
)
from textual.widgets import DataTable

from sma_log.domain import schedule
from sma_log.domain.clock import Clock
from sma_log.storage.store import Store
from sma_log.ui.screens.followups import FollowupScreen, QueueData, read_queue


class CountingQueue(FollowupScreen):
    """The queue screen, counting the data it draws."""

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0

    def _apply(self, data: QueueData, focus: str | None = None) -> None:
        self.applied += 1
        super()._apply(data, focus)


def stored(app: Any) -> list[str]:
    """The study codes of the queue as the file holds it now (a fresh read)."""
    screen = app.screen
    with Store.open(screen.sma.db_path, "reader", clock=Clock(monotonic=False)) as s:
        return [item.row["study_code"] for item in read_queue(s, *screen._what()).items.values()]


def test_the_periodic_redraw_reads_in_a_worker_and_the_cursor_stays(
    clinic: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await open_queue(pilot)
        await move_to(pilot, "MISSED")
        # 52 hours on: UPCOMING is due now and goes first.
        pendulum.travel_to(NOW.add(hours=52), freeze=True)
        screen = app.screen
        screen.refresh_in_background()  # what its 30-second timer calls
        assert [w.group for w in screen.workers] == ["queue-refresh"]
        assert [c for c, _ in codes(app)] != stored(app)  # not drawn on the event loop
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [c for c, _ in codes(app)] == stored(app) == ["UPCOMING", "MISSED", "OVERDUE", "DUE"]
        assert cursor(app) == ("MISSED", "72-h call")

    run(app, script)


def test_a_key_during_the_periodic_read_wins_over_its_stale_result(
    clinic: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        screen = CountingQueue()
        app.push_screen(screen)
        await pilot.pause()
        await move_to(pilot, "DUE")
        before = screen.generation
        # The periodic read starts; the nurse's x lands before its result.
        screen.refresh_in_background()
        screen.action_no_answer()  # the key's action: commit, then a synchronous redraw
        assert screen.generation == before + 1 and not screen.accepts(before)
        applied = screen.applied
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.applied == applied  # the worker's result was dropped
        assert [c for c, _ in codes(app)] == stored(app)
        assert cursor(app) == ("DUE", "72-h call")
        row = screen.query_one("#queue", DataTable).get_row(screen.current_key())
        assert str(row[-2]) == "1"  # the call the nurse logged, as committed

    run(app, script)
    assert day3(clinic)["DUE"]["calls"] == 1


def test_a_write_from_another_terminal_is_read_in_the_background(
    clinic: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await open_queue(pilot)
        await move_to(pilot, "UPCOMING")
        with Store.open(clinic, "nurse-b", clock=Clock(monotonic=False)) as other:
            other.complete_followup(
                day3(clinic)["OVERDUE"]["id"],
                {"satisfaction": 5, "assessor": "nurse-b", **schedule.NO_ADVERSE_EVENTS},
            )
        app._poll_changes()  # what the app's 1-second poll does
        assert [w.group for w in app.screen.workers] == ["queue-refresh"]
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [c for c, _ in codes(app)] == stored(app) == ["DUE", "UPCOMING", "MISSED"]
        assert cursor(app) == ("UPCOMING", "72-h call")

    run(app, script)


def test_stale_results_are_told_apart_by_generation(
    clinic: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(clinic, tmp_path)

    async def script(pilot: Any) -> None:
        await open_queue(pilot)
        screen = app.screen
        assert isinstance(screen, FollowupScreen)
        now = screen.generation
        assert screen.accepts(now)
        screen.refresh_from_store()
        assert not screen.accepts(now) and screen.accepts(now + 1)
        await pilot.press("v")  # a toggle redraws synchronously too
        await pilot.pause()
        assert screen.accepts(now + 2)

    run(app, script)
