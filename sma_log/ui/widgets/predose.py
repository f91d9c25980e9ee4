"""The live screen's pre-dose row: the time-out's status and the drug's clock.

Both are one line each, side by side under the patient line. Neither keeps anything
in memory that the database does not hold: the time-out line is drawn from the
stored time-out (judged by the domain), and the drug line recomputes the time left
from the stored instants on every tick — "now" is the procedure's stored start plus
the monotonic time since its anchor, exactly as the big timer reads it, and the
domain (:func:`sma_log.domain.predose.drug_clock`) says what is left against the
label's limit. A missed tick, a restart or a wall-clock jump cannot make it drift,
and the two clocks on the screen can never disagree.

Each line says what matters in words and marks (``✓``, ``!``), and carries a class
(``-ok``, ``-todo``, ``-flag``; ``-idle``, ``-running``, ``-warn``, ``-expired``)
that the stylesheet colours: colour is never the only signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pendulum
from rich.text import Text
from textual.widgets import Static

from ...domain import predose
from ...domain.cells import number_text
from ...domain.clock import Anchor, Clock, format_elapsed
from ..fmt import local_time
from .bedside import update_text

#: Every class a line may carry: the one it has is set, the others removed.
TIMEOUT_CLASSES = ("-ok", "-todo", "-flag", "-idle")
DRUG_CLASSES = ("-idle", "-running", "-warn", "-expired")


def _set_class(widget: Static, wanted: str, every: tuple[str, ...]) -> None:
    for name in every:
        widget.set_class(name == wanted, name)


class _Line(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, classes="predose-line")
        self._length = 0
        self._shown: Text | None = None
        self.state = ""

    def draw(self, state: str, text: Text, every: tuple[str, ...]) -> None:
        self.state = state
        _set_class(self, f"-{state}", every)
        if text != self._shown:
            update_text(self, text, self._length)
            self._shown, self._length = text, len(text)

    @property
    def plain(self) -> str:
        return self._shown.plain if self._shown is not None else ""


class TimeoutLine(_Line):
    """One line: the pre-dose time-out complete, or what is missing / flagged."""

    def show(self, view: Any, tz: str) -> None:
        """``view``: a :class:`sma_log.storage.predose.TimeoutView`."""
        check = view.check
        text = Text()
        text.append(" Time-out ", style="bold")
        if view.confirmed and view.reason:
            state = "ok"
            text.append(f"✓ with a reason {local_time(view.confirmed_at, tz, 'HH:mm')}")
        elif view.confirmed:
            state = "ok"
            text.append(f"✓ confirmed {local_time(view.confirmed_at, tz, 'HH:mm')}")
        elif not check.required and view.row is None:
            state = "idle"  # the site requires nothing and nothing was answered
            text.append("not required · m to fill in")  # one row at 80 columns
        elif check.flags:
            state = "flag"
            text.append(f"! {len(check.flags)} flagged", style="bold")
            if check.missing:
                text.append(f", {len(check.missing)} missing")
            text.append(" · m / a asks")
        elif check.missing:
            state = "todo"
            names = ", ".join(predose.ITEM_LABELS[i] for i in check.missing)
            text.append(f"{len(check.missing)} missing", style="bold")
            text.append(f": {names}" if len(names) <= 22 else " · m fills it in")
        else:
            state = "ok"
            text.append("✓ complete")
            if check.notices:
                text.append(f" · {len(check.notices)} note(s)")
        self.draw(state, text, TIMEOUT_CLASSES)


class DrugLine(_Line):
    """The drug's timing: time left against the label's limit, then the injection."""

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.start: datetime | None = None
        self.clock_anchor: Anchor | None = None
        self.stopped_at: datetime | None = None
        self.drug_times: Mapping[str, datetime] = {}
        self.milestones: Mapping[str, datetime] = {}
        self.label = "eu"
        self.warn_min = 30.0
        self.tz = "UTC"
        self.after = ""
        #: The domain's last judgement (tests read its status and seconds left).
        self.judged: predose.DrugClock | None = None

    def on_mount(self) -> None:
        self.set_interval(0.25, self.tick)

    def set_times(
        self,
        start: datetime,
        anchor: Anchor | None,
        drug_times: Mapping[str, datetime],
        milestones: Mapping[str, datetime],
        *,
        label: str,
        warn_min: float,
        tz: str,
        stopped_at: datetime | None = None,
        after: str = "",
    ) -> None:
        """What to count from (all stored); ``stopped_at``: the procedure's end;
        ``after``: what follows the injection's length once it is over (CSF vs dose)."""
        self.start, self.clock_anchor, self.stopped_at = start, anchor, stopped_at
        self.drug_times, self.milestones = dict(drug_times), dict(milestones)
        self.label, self.warn_min, self.tz, self.after = label, warn_min, tz, after
        self.tick()

    def now(self) -> datetime | None:
        """The procedure's now: its stored start plus the anchored elapsed time."""
        if self.start is None:
            return None
        if self.stopped_at is not None:
            return self.stopped_at
        start = pendulum.instance(self.start)
        return start + timedelta(seconds=self.clock.elapsed(start, self.clock_anchor))

    def tick(self) -> None:
        now = self.now()
        if now is None:
            return
        ms = self.milestones
        if "injection_end" in ms:
            self._injected()
            return
        judged = predose.drug_clock(
            self.drug_times, self.label, now, self.warn_min, ms.get("injection_start")
        )
        self.judged = judged
        text = Text()
        text.append(" Drug ", style="bold")
        limit = f"{number_text(judged.limit_h)} h"
        drawn = self.drug_times.get("drawn_up")
        vial = self.drug_times.get("vial_out")
        if judged.status == "unknown":
            state = "idle"
            text.append("not drawn up (w)")
            if vial is not None:
                text.append(f" · vial out {local_time(vial, self.tz, 'HH:mm')}")
            else:
                text.append(" · vial out: v")
        elif judged.status == "used":
            left = judged.remaining_s or 0.0
            state = "expired" if left < 0 else "running"
            text.append("injecting", style="bold")
            inj = ms.get("injection_start")
            text.append(f" since {local_time(inj, self.tz, 'HH:mm:ss')}")
            if left < 0:
                text.append(" · ! after the drug's limit", style="bold")
        elif judged.status == "expired":
            state = "expired"
            over = -(judged.remaining_s or 0.0)
            text.append(f"! LIMIT PASSED {format_elapsed(over)} ago", style="bold")
            text.append(f" ({limit}: discard)")
        else:
            state = "warn" if judged.status == "warn" else "running"
            mark = "! " if state == "warn" else ""
            text.append(f"{mark}{format_elapsed(judged.remaining_s or 0.0)} left", style="bold")
            text.append(f" of {limit}")
            if drawn is not None:
                text.append(f", drawn {local_time(drawn, self.tz, 'HH:mm')}")
        self.draw(state, text, DRUG_CLASSES)

    def _injected(self) -> None:
        """After the injection: its length against the label's 1–3 min, then ``after``."""
        ms = self.milestones
        seconds = (ms["injection_end"] - ms["injection_start"]).total_seconds()
        flag = predose.injection_flag(seconds)
        text = Text()
        text.append(" Injected in ", style="bold")
        text.append(mmss(seconds), style="bold")
        state = "running"
        if flag:
            state = "warn"
            text.append(f" ! {flag}", style="bold")
        else:
            text.append(" ✓ 1–3 min")
        drawn = self.drug_times.get("drawn_up")
        if drawn is not None:
            judged = predose.drug_clock(
                self.drug_times,
                self.label,
                ms["injection_start"],
                self.warn_min,
                ms["injection_start"],
            )
            self.judged = judged
            if (judged.remaining_s or 0.0) < 0:
                state = "expired"
                text.append(" · ! after the drug's limit", style="bold")
        if self.after:
            text.append(f" · {self.after}")
        self.draw(state, text, DRUG_CLASSES)


def mmss(seconds: float) -> str:
    """``m:ss`` of a short interval (an injection's length)."""
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"
