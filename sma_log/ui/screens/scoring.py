"""The 5-minute score flow: the dialog, the Store's answer, the message after it.

The dialog itself is :class:`sma_log.ui.modals.score.ScoreDialog`; this flow belongs
with the screens (it writes on the status line of the screen in front), so dialogs
never import screens.
"""

from __future__ import annotations

from collections.abc import Callable

from ..fmt import local_time, shown
from ..modals.score import ScoreDialog, clock_text
from .base import AppScreen, status_screen


def ask_score(
    screen: AppScreen,
    proc_id: str,
    then: Callable[[int | None], None] | None = None,
) -> None:
    """Ask the 5-minute score of ``proc_id`` and save it: the one flow every screen uses.

    Opens :class:`ScoreDialog` over ``screen``. The dialog saves through
    ``Store.set_score`` (asking one confirmation when the Store says it is too early)
    and shows refusals inside itself. When it closes, ``then(score)`` is called with
    the saved score, or None if the person chose "later" (nothing saved). Afterwards
    the outcome, naming the patient, is written on the status line of the screen then
    in front (so ``then`` may navigate, e.g. home, and the message lands there).

    Nothing happens (a refusal on the status line) if the procedure cannot be scored
    (not ended, cancelled, gone).
    """
    app, textual_app = screen.sma, screen.app  # one object: as SmaApp, and as a Textual App
    due = screen.guarded(lambda: app.store.score_due(proc_id))
    if due is None:
        return
    dialog = ScoreDialog(proc_id, due)

    def closed(score: int | None) -> None:
        code = shown(due.study_code)
        if score is not None:
            message = f"{code}: satisfaction at 5 min: {score} saved"
            if dialog.early:
                message += f" (EARLY, {clock_text(dialog.since_end())} after the end)"
            elif due.closes_at is not None and app.clock.now() > due.closes_at:
                message += (
                    f" (LATE, {clock_text(dialog.since_end())} after the end: "
                    "not in the in-window figure)"
                )
        else:
            due_at = local_time(due.due_at, app.tz)
            message = (
                f"{code}: 5-minute score left pending (due {due_at}); "
                "it waits on home and in the follow-up queue"
            )
        if then is not None:
            then(score)
        target = status_screen(textual_app)
        if target is not None:
            target.say(message)

    textual_app.push_screen(dialog, closed)
