"""The live procedure screen: the heart of the app.

One key per action, active whenever no text field has focus (this screen has none).
Each key commits to the database first; the screen then redraws from what was
committed. The timer is derived from the stored start.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, Static

from ...domain import predose, timeline, vocab
from ...domain.clock import from_text
from ...storage import predose as predose_store
from ...storage.store import ProcedureView
from ..fmt import local_time, shown
from ..widgets.bedside import AttemptList, BigNumber, ElapsedTimer, KeyLegend, Milestones
from ..widgets.predose import DrugLine, TimeoutLine
from .base import AppScreen, StatusLine, unreadable_as_refusal
from .help import legend_items

ACTION_WORDS = {
    "attempt": "New attempt",
    "redirect": "Redirection",
    "csf": "CSF obtained",
    "injection_start": "Injection start",
    "injection_end": "Injection end",
    "sedation": "Sedation changed",
    "note": "Note",
    "attempt_detail": "Attempt level/approach set",
    "vial_out": "Vial out of the fridge",
    "drawn_up": "Drug drawn up",
}

#: Actions of the live screen that record, or open a dialog that records. No key of
#: a screen that leads here may be one of these keys (tests/test_ui_keys.py): a key
#: pressed twice, or meant for another screen, must never record.
RECORDING_ACTIONS = frozenset(
    {
        "record",
        "flag",
        "undo",
        "end",
        "attempt_detail",
        "sedation",
        "note",
        "cancel_procedure",
        "drug_time",
        "timeout",
    }
)


def recording_keys() -> frozenset[str]:
    """Every key the live screen records with (read from its bindings)."""
    keys: set[str] = set()
    for binding in ProcedureScreen.BINDINGS:
        assert isinstance(binding, Binding)
        if binding.action.partition("(")[0] in RECORDING_ACTIONS:
            keys.update(k.strip() for k in binding.key.split(","))
    return frozenset(keys)


class ProcedureScreen(AppScreen):
    # One key per action. Screens that lead here (home, start, a patient's page) use
    # none of these keys (tests/test_ui_keys.py), and the key that opens this screen
    # (Enter, l, ctrl+s) records nothing here: a double press never records. Every key
    # shows in the legend at the bottom (generated from these bindings), at any size.
    BINDINGS = [
        Binding(
            "a", "record('attempt')", "Attempt", tooltip="New skin puncture", id="bedside.attempt"
        ),
        Binding(
            "r",
            "record('redirect')",
            "Redirect",
            tooltip="Needle redirected, current attempt",
            id="bedside.redirect",
        ),
        Binding("c", "record('csf')", "CSF", tooltip="CSF obtained", id="bedside.csf"),
        Binding(
            "i",
            "record('injection_start')",
            "Inj.start",
            tooltip="Injection started",
            id="bedside.injection_start",
        ),
        Binding(
            "j",
            "record('injection_end')",
            "Inj.end",
            tooltip="Injection complete",
            id="bedside.injection_end",
        ),
        Binding(
            "e",
            "end",
            "End",
            tooltip="Outcome, then the 5-minute score",
            id="bedside.end",
        ),
        Binding(
            "u,ctrl+z",
            "undo",
            "Undo",
            tooltip="Void the last action (audited)",
            id="bedside.undo",
        ),
        Binding(
            "x",
            "cancel_procedure",
            "Cancel start",
            tooltip="Mistaken start, before any puncture; asks first",
            id="bedside.cancel",
        ),
        Binding(
            "b",
            "flag('bone_contact')",
            "Bone",
            tooltip="Current attempt; pressed again, clears it",
            id="bedside.bone",
        ),
        Binding(
            "p",
            "flag('paraesthesia')",
            "Paraesth.",
            tooltip="Current attempt; pressed again, clears it",
            id="bedside.paraesthesia",
        ),
        Binding(
            "h",
            "flag('blood')",
            "Blood",
            tooltip="Current attempt; pressed again, clears it",
            id="bedside.blood",
        ),
        Binding(
            "d",
            "attempt_detail",
            "Level",
            tooltip="Level and approach, current attempt",
            id="bedside.detail",
        ),
        Binding("s", "sedation", "Sedation", tooltip="Sedation changed", id="bedside.sedation"),
        Binding("n", "note", "Note", tooltip="Free text on the timeline", id="bedside.note"),
        # Issue 14: the drug's timing, one key each (pressed twice: recorded once), and
        # the pre-dose time-out, which the first attempt opens by itself when needed.
        Binding(
            "v",
            "drug_time('vial_out')",
            "Vial out",
            tooltip="The vial left the fridge, now",
            id="bedside.vial_out",
        ),
        Binding(
            "w",
            "drug_time('drawn_up')",
            "Drawn up",
            tooltip="Drug drawn into the syringe; the drug clock starts",
            id="bedside.drawn_up",
        ),
        Binding(
            "m",
            "timeout",
            "Time-out",
            tooltip="Pre-dose checks and labs; a opens it if needed",
            id="bedside.timeout",
        ),
        Binding(
            "escape",
            "home",
            "Home",
            tooltip="The procedure keeps running",
            id="bedside.home",
        ),
    ]
    HELP_TITLE = "Live procedure"

    def __init__(self, procedure_id: str) -> None:
        super().__init__()
        self.procedure_id = procedure_id
        self.view: ProcedureView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="patient-line")
        with Horizontal(id="predose-row"):
            yield TimeoutLine(id="timeout-line")
            yield DrugLine(self.sma.clock, id="drug-line")
        with Horizontal(id="big-row"):
            yield ElapsedTimer(self.sma.clock, id="timer")
            yield BigNumber("Attempts", "0", id="attempts")
            yield BigNumber("Redirections", "0", id="redirections")
        with Horizontal(id="detail-row"):
            with Vertical(id="milestones-box"):
                yield Milestones(id="milestones")
            with Vertical(id="attempts-box"):
                yield AttemptList(id="attempt-list")
        yield StatusLine()
        yield KeyLegend(legend_items(self.app, self), id="keys")

    def on_mount(self) -> None:
        self.query_one("#milestones-box").border_title = "Milestones"
        self.query_one("#attempts-box").border_title = "Attempts"
        self.draw_on_mount()  # once: the first show does not draw again

    def drawn_on_show(self, first: bool) -> None:
        if first and self.view is not None and self.view.row["status"] == "open":
            started = local_time(self.view.started_at, self.tz, "HH:mm:ss")
            self.say(f"In progress since {started}: keys record at once · Esc goes home")

    # ------------------------------------------------------------- drawing
    def refresh_from_store(self) -> None:
        view = self.guarded(lambda: self.store.load_procedure(self.procedure_id))
        if view is not None:
            self.show(view)
            self.show_timeout()

    # ------------------------------------------------------------- pre-dose (issue 14)
    def rules(self) -> predose.Rules:
        """The site's time-out rules (settings: required items, flag limits)."""
        return self.sma.settings.predose_rules()

    def timeout_view(self) -> predose_store.TimeoutView | None:
        return self.guarded(
            lambda: unreadable_as_refusal(
                lambda: predose_store.timeout_view(
                    self.store, self.procedure_id, self.rules(), self.tz
                )
            )
        )

    def show_timeout(self, view: predose_store.TimeoutView | None = None) -> None:
        """Redraw the time-out line (read from the file unless ``view`` is given)."""
        view = view or self.timeout_view()
        if view is not None:
            self.query_one(TimeoutLine).show(view, self.tz)

    def _show_drug(self, view: ProcedureView) -> None:
        row = view.row
        st = view.state
        after = ""
        if row["status"] != "open" and "injection_end" in st.milestones:
            csf = row.get("csf_removed_ml")
            csf_ml = (
                float(csf) if isinstance(csf, (int, float)) and not isinstance(csf, bool) else None
            )
            after = predose.csf_vs_dose_text(csf_ml, row.get("regimen"))
        stopped = st.milestones.get("end") or (
            from_text(row["cancelled_at"]) if row.get("cancelled_at") else None
        )
        rules = self.rules()
        self.query_one(DrugLine).set_times(
            view.started_at,
            view.anchor,
            st.drug_times,
            st.milestones,
            label=rules.label,
            warn_min=rules.drug_warn_min,
            tz=self.tz,
            stopped_at=stopped,
            after=after,
        )

    def show(self, view: ProcedureView) -> None:
        self.view = view
        st = view.state
        row = view.row
        status = row["status"]
        ended = status != "open"
        words = {"open": "IN PROGRESS", "ended": "ENDED", "cancelled": "CANCELLED"}
        self.sub_title = f"{shown(view.patient['study_code'])} · " + shown(
            words.get(status, str(status).upper())
        )
        self.title = "sma-log"
        stopped = st.milestones.get("end") or (
            from_text(row["cancelled_at"]) if row.get("cancelled_at") else None
        )
        started = local_time(view.started_at, self.tz, "HH:mm:ss")
        caption = (
            f"{started} → {local_time(stopped, self.tz, 'HH:mm:ss')}"
            if stopped
            else (f"since {started}")
        )
        self.query_one(ElapsedTimer).set_start(view.started_at, view.anchor, stopped, caption)
        current = st.current
        self.query_one("#attempts", BigNumber).update(
            str(st.attempt_count),
            f"now #{current.number} · {shown(current.level)}" if current else "none yet",
        )
        self.query_one("#redirections", BigNumber).update(
            str(st.redirection_count),
            f"{current.redirections} in #{current.number}" if current else "",
        )
        self._show_drug(view)
        self.query_one(Milestones).show(st, self.tz)
        self.query_one(AttemptList).show(st, self.tz)
        pt = view.patient
        line = Text()
        line.append(f" {shown(pt['study_code'])}", style="bold")
        if pt.get("sma_type"):
            line.append(f"  SMA type {shown(pt['sma_type'])}")
        line.append(f"  {shown(vocab.label(vocab.REGIMENS, row['regimen']))}")
        line.append(f"  {shown(vocab.label(vocab.GUIDANCE, row['guidance']))}")
        line.append(
            f"  {shown(vocab.label(vocab.APPROACH, row['approach']))} "
            f"{shown(row['level_intended'])}"
        )
        cobb = row.get("cobb_angle")
        if isinstance(cobb, (int, float)) and not isinstance(cobb, bool):
            line.append(f"  Cobb {cobb:g}°")
        elif cobb is not None:  # not a number (another tool wrote it): as stored
            line.append(f"  Cobb {shown(cobb)}")
        if row.get("hardware") and row["hardware"] != "none":
            line.append(f"  {shown(vocab.label(vocab.HARDWARE, row['hardware']))}")
        if ended:
            line.append(f"  — {shown(words.get(status, str(status).upper()))}", style="bold")
        if line != getattr(self, "_patient_line", None):  # one row high (bedside.tcss)
            self._patient_line = line
            self.query_one("#patient-line", Static).update(line, layout=False)

    def on_key(self, event: events.Key) -> None:
        """A key that is not one of this screen's says so (Caps Lock, a key meant for
        another screen, the second press of the key that opened this screen)."""
        if event.is_printable and event.key not in self.active_bindings:
            event.stop()
            shown = event.character or event.key
            hint = " (Caps Lock?)" if shown.isalpha() and shown.isupper() else ""
            self.say(f"Key {shown} does nothing here{hint}: nothing recorded · ? lists the keys")

    # ------------------------------------------------------------- actions
    def action_record(self, kind: str, value: str | None = None) -> None:
        if kind == "attempt":
            self._attempt()
            return
        view = self.guarded(lambda: self.store.record(self.procedure_id, kind, value))
        if view is not None:
            self.recorded(view, kind)

    def recorded(self, view: ProcedureView, kind: str, after: str = "") -> None:
        """Draw what was committed and say so on the status line."""
        ev = view.events[-1]
        words = ACTION_WORDS.get(kind, kind)
        if kind == "attempt" and view.state.current:
            words = f"Attempt {view.state.current.number}"
        self.show(view)
        if kind == "attempt" and view.state.attempt_count == 1:
            self.show_timeout()  # confirmed with the first attempt, if it was judged
        self.say(f"{words} recorded at {local_time(ev.at, self.tz)}{after} — u to undo")

    def _attempt(self) -> None:
        """a: a new attempt. The first one goes through the time-out (the Store judges
        it and confirms it with the attempt in one transaction): complete, or nothing
        required and nothing answered, it records at once, with no key of its own; a
        required answer missing or a value flagged, the time-out dialog opens and the
        attempt records once the answers or a reason are saved there."""
        reason_needed = False

        def first() -> ProcedureView | None:
            nonlocal reason_needed
            try:
                return unreadable_as_refusal(
                    lambda: predose_store.record_first_attempt(
                        self.store, self.procedure_id, self.rules(), tz=self.tz
                    )
                )
            except predose.ReasonNeeded:
                reason_needed = True
                return None

        view = self.guarded(first)
        if view is not None:
            self.recorded(view, "attempt")
        elif reason_needed:
            self._open_timeout(for_attempt=True)

    def _open_timeout(self, *, for_attempt: bool) -> None:
        from ..modals.timeout import TimeoutDialog

        def done(result: str | None) -> None:
            self.refresh_from_store()
            if result is None:
                if for_attempt:
                    self.refuse(
                        "The time-out is not confirmed: no attempt recorded "
                        "(a opens it again; give the missing answers or a reason)"
                    )
                return
            if for_attempt and result == "attempt" and self.view is not None:
                self.recorded(self.view, "attempt", after=" after the time-out")
            else:
                self.say(result)

        self.app.push_screen(
            TimeoutDialog(self.procedure_id, self.rules(), for_attempt=for_attempt), done
        )

    def action_timeout(self) -> None:
        """m: the pre-dose time-out (answers, labs, drug times), any time while open."""
        if not self._open():
            return
        self._open_timeout(for_attempt=False)

    def action_drug_time(self, kind: str) -> None:
        """v / w: the vial left the fridge / the drug was drawn up, now."""
        view = self.guarded(
            lambda: predose_store.record_drug_time(self.store, self.procedure_id, kind)
        )
        if view is None:
            return
        ev = view.events[-1]
        self.show(view)
        extra = ""
        if kind == "drawn_up":
            limit = predose.DRUG_LIMIT_HOURS.get(self.rules().label)
            extra = f": the {limit:g} h label clock runs" if limit else ""
        self.say(
            f"{ACTION_WORDS[kind]} recorded at {local_time(ev.at, self.tz)}{extra} — u to undo"
        )

    def action_flag(self, name: str) -> None:
        view = self.guarded(lambda: self.store.record(self.procedure_id, "flag", name))
        if view is None:
            return
        self.show(view)
        current = view.state.current
        if current is not None:
            on = getattr(current, name)
            label = dict(timeline.FLAGS)[name]
            self.say(
                f"{label} {'set' if on else 'cleared'} on attempt {current.number} — u to undo"
            )

    def action_undo(self) -> None:
        result = self.guarded(lambda: self.store.undo(self.procedure_id))
        if result is None:
            return
        view, undone = result
        words = timeline.EVENT_LABELS.get(undone.kind, undone.kind)
        if undone.kind == "flag":
            words = dict(timeline.FLAGS).get(undone.value or "", "Flag")
        self.show(view)
        # a drug time typed in the time-out stands for its entered instant, not the
        # moment it was typed (timeline.drug_instant)
        when = timeline.drug_instant(undone) if undone.kind in timeline.DRUG_KINDS else undone.at
        self.say(f"Undone: {words} ({local_time(when, self.tz)}); kept in the audit log")

    def _open(self) -> bool:
        if self.view is None or self.view.row["status"] != "open":
            status = self.view.row["status"] if self.view is not None else "gone"
            self.refuse(
                "This procedure was cancelled."
                if status == "cancelled"
                else "This procedure has ended."
            )
            return False
        return True

    def action_attempt_detail(self) -> None:
        if not self._open() or self.view is None:
            return
        current = self.view.state.current
        if current is None:
            self.refuse("No attempt yet: press a for the first skin puncture.")
            return

        def done(value: str | None) -> None:
            if value:
                self.action_record("attempt_detail", value)

        from ..modals.attempt import AttemptDialog

        self.app.push_screen(AttemptDialog(current.number, current.level, current.approach), done)

    def action_sedation(self) -> None:
        if not self._open() or self.view is None:
            return

        def done(value: str | None) -> None:
            if value:
                self.action_record("sedation", value)

        from ..modals.sedation import SedationDialog

        st = self.view.state
        self.app.push_screen(SedationDialog(st.sedation, st.sedation_agent), done)

    def action_note(self) -> None:
        if not self._open():
            return

        def done(value: str | None) -> None:
            if value:
                self.action_record("note", value)

        from ..modals.note import NoteDialog

        self.app.push_screen(NoteDialog(), done)

    def action_end(self) -> None:
        if not self._open() or self.view is None:
            return
        view = self.view

        def done(outcome: dict[str, Any] | None) -> None:
            if outcome is None:
                return
            ended = self.guarded(lambda: self.store.end_procedure(self.procedure_id, outcome))
            if ended is None:
                return
            self.show(ended)
            self.say(f"Procedure ended at {local_time(ended.state.milestones['end'], self.tz)}")
            self.ask_score()

        from ..modals.end import EndDialog

        self.app.push_screen(
            EndDialog(view.state, view.row.get("csf_removed_ml") or 5, view.row.get("regimen")),
            done,
        )

    def ask_score(self) -> None:
        """The 5-minute score right after the end; then home (the message goes there)."""
        from .scoring import ask_score

        ask_score(self, self.procedure_id, then=lambda _score: self.sma.go_home())

    def action_cancel_procedure(self) -> None:
        """x: cancel a start made by mistake (one confirmation; the Store decides).

        Before the first skin puncture it asks once, then the Store keeps the procedure
        as cancelled (audited, counted nowhere) and home says so. Once a puncture is
        recorded, the Store's refusal is shown on the status line (end it with e).
        """
        fresh = self.guarded(lambda: self.store.load_procedure(self.procedure_id))
        if fresh is None:
            return
        self.show(fresh)
        if not self._open():
            return
        code = shown(fresh.patient["study_code"])
        if fresh.state.attempt_count or "first_puncture" in fresh.state.milestones:
            # Nothing to confirm: the Store refuses a cancel after a puncture and says why.
            self._cancel(code)
            return
        started = local_time(fresh.started_at, self.tz, "HH:mm")

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(code)
            else:
                self.say(f"{code}: not cancelled; the procedure goes on")

        from ..modals.confirm import ConfirmDialog

        self.app.push_screen(
            ConfirmDialog(
                f"Cancel the procedure of {code} started at {started}?",
                "No skin puncture is recorded. It is kept as cancelled (who and when, in the "
                "audit log), counts in no figure and schedules no follow-up.",
                yes_label="Cancel it",
                no_label="Keep it",
            ),
            answered,
        )

    def _cancel(self, code: str) -> None:
        view = self.guarded(lambda: self.store.cancel_procedure(self.procedure_id))
        if view is None:
            self.refresh_from_store()
            return
        self.sma.go_home(
            f"{code}: procedure started at {local_time(view.started_at, self.tz, 'HH:mm')} "
            "cancelled (kept as cancelled; counted nowhere, no follow-up)"
        )

    def action_home(self) -> None:
        self.sma.go_home()
