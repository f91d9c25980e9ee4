"""The live procedure screen: the heart of the app.

One key per action, active whenever no text field has focus (this screen has none).
Each key commits to the database first; the screen then redraws from what was
committed. The timer is derived from the stored start.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static

from ...domain import timeline, vocab
from ...storage.store import ProcedureView
from ..fmt import local_time
from ..widgets.bedside import AttemptList, BigNumber, ElapsedTimer, Milestones
from .base import AppScreen

ACTION_WORDS = {
    "attempt": "New attempt",
    "redirect": "Redirection",
    "csf": "CSF obtained",
    "injection_start": "Injection start",
    "injection_end": "Injection end",
    "sedation": "Sedation changed",
    "note": "Note",
    "attempt_detail": "Attempt level/approach set",
}


def _keys() -> Text:
    """The whole key list in two columns (shown when the terminal is tall enough)."""
    text = Text()
    pairs = [
        ("a", "attempt"),
        ("r", "redirect"),
        ("c", "CSF obtained"),
        ("i", "inj. start"),
        ("j", "inj. end"),
        ("u", "undo"),
        ("e", "end"),
        ("b", "bone contact"),
        ("p", "paraesthesia"),
        ("h", "blood"),
        ("d", "level/approach"),
        ("s", "sedation"),
        ("n", "note"),
        ("esc", "home"),
    ]
    for i, (key, what) in enumerate(pairs):
        text.append(f" {key:^3} ", style="bold reverse")
        text.append(f" {what:<15}" + ("\n" if i % 2 else ""))
    text.rstrip()
    return text


KEYS = _keys()


class ProcedureScreen(AppScreen):
    # Recording keys are chosen not to collide with the keys of other screens (f opens
    # the follow-up queue at home, o the settings): a nurse who starts the app on a
    # resumed procedure and presses f records nothing. Esc is early so it always shows.
    BINDINGS = [
        Binding("a", "record('attempt')", "Attempt", id="bedside.attempt"),
        Binding("r", "record('redirect')", "Redir", id="bedside.redirect"),
        Binding("c", "record('csf')", "CSF", id="bedside.csf"),
        Binding("i", "record('injection_start')", "Inject", id="bedside.injection_start"),
        Binding("j", "record('injection_end')", "Inj.end", id="bedside.injection_end"),
        Binding("u,ctrl+z", "undo", "Undo", id="bedside.undo"),
        Binding("e", "end", "End", id="bedside.end"),
        Binding("escape", "home", "Home", id="bedside.home"),
        Binding("b", "flag('bone_contact')", "Bone", id="bedside.bone"),
        Binding("p", "flag('paraesthesia')", "Paraes.", id="bedside.paraesthesia"),
        Binding("h", "flag('blood')", "Blood", id="bedside.blood"),
        Binding("d", "attempt_detail", "Level", id="bedside.detail"),
        Binding("s", "sedation", "Sedation", id="bedside.sedation"),
        Binding("n", "note", "Note", id="bedside.note"),
    ]

    def __init__(self, procedure_id: str) -> None:
        super().__init__()
        self.procedure_id = procedure_id
        self.view: ProcedureView | None = None
        self.last_message = Text("")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="patient-line")
        with Horizontal(id="big-row"):
            yield ElapsedTimer(self.sma.clock, id="timer")
            yield BigNumber("Attempts", "0", id="attempts")
            yield BigNumber("Redirections", "0", id="redirections")
        with Horizontal(id="detail-row"):
            with Vertical(id="milestones-box"):
                yield Milestones(id="milestones")
                yield Static(KEYS, id="keys")
            with Vertical(id="attempts-box"):
                yield AttemptList(id="attempt-list")
        yield Static("", id="last-action")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#milestones-box").border_title = "Milestones"
        self.query_one("#attempts-box").border_title = "Attempts"
        self.refresh_from_store()
        if self.view is not None and self.view.row["status"] == "open":
            started = local_time(self.view.started_at, self.tz, "HH:mm:ss")
            self._say(f"In progress since {started}: keys record at once · Esc goes home")

    # ------------------------------------------------------------- drawing
    def refresh_from_store(self) -> None:
        view = self.guarded(lambda: self.store.load_procedure(self.procedure_id))
        if view is not None:
            self.show(view)

    def show(self, view: ProcedureView) -> None:
        self.view = view
        st = view.state
        row = view.row
        ended = row["status"] == "ended"
        self.sub_title = f"{view.patient['study_code']} · " + ("ENDED" if ended else "IN PROGRESS")
        self.title = "sma-log"
        stopped = st.milestones.get("end")
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
            f"now #{current.number} · {current.level or '—'}" if current else "none yet",
        )
        self.query_one("#redirections", BigNumber).update(
            str(st.redirection_count),
            f"{current.redirections} in #{current.number}" if current else "",
        )
        self.query_one(Milestones).show(st, self.tz)
        self.query_one(AttemptList).show(st, self.tz)
        pt = view.patient
        line = Text()
        line.append(f" {pt['study_code']}", style="bold")
        if pt.get("sma_type"):
            line.append(f"  SMA type {pt['sma_type']}")
        line.append(f"  {vocab.label(vocab.REGIMENS, row['regimen'])}")
        line.append(f"  {vocab.label(vocab.GUIDANCE, row['guidance'])}")
        line.append(f"  {vocab.label(vocab.APPROACH, row['approach'])} {row['level_intended']}")
        if row.get("cobb_angle") is not None:
            line.append(f"  Cobb {row['cobb_angle']:g}°")
        if row.get("hardware") and row["hardware"] != "none":
            line.append(f"  {vocab.label(vocab.HARDWARE, row['hardware'])}")
        if ended:
            line.append("  — ENDED", style="bold")
        self.query_one("#patient-line", Static).update(line)
        self.query_one("#last-action", Static).update(self.last_message)

    def _say(self, message: str) -> None:
        self.last_message = Text(message)
        self.query_one("#last-action", Static).update(self.last_message)

    # ------------------------------------------------------------- actions
    def action_record(self, kind: str, value: str | None = None) -> None:
        view = self.guarded(lambda: self.store.record(self.procedure_id, kind, value))
        if view is None:
            return
        ev = view.events[-1]
        words = ACTION_WORDS.get(kind, kind)
        if kind == "attempt" and view.state.current:
            words = f"Attempt {view.state.current.number}"
        self.last_message = Text(f"{words} recorded at {local_time(ev.at, self.tz)} — u to undo")
        self.show(view)

    def action_flag(self, name: str) -> None:
        self.action_record("flag", name)
        if self.view and self.view.state.current:
            on = getattr(self.view.state.current, name)
            label = dict(timeline.FLAGS)[name]
            self._say(
                f"{label} {'set' if on else 'cleared'} on attempt "
                f"{self.view.state.current.number} — u to undo"
            )

    def action_undo(self) -> None:
        result = self.guarded(lambda: self.store.undo(self.procedure_id))
        if result is None:
            return
        view, undone = result
        words = timeline.EVENT_LABELS.get(undone.kind, undone.kind)
        if undone.kind == "flag":
            words = dict(timeline.FLAGS).get(undone.value or "", "Flag")
        self.last_message = Text(
            f"Undone: {words} ({local_time(undone.at, self.tz)}); kept in the audit log"
        )
        self.show(view)

    def _open(self) -> bool:
        if self.view is None or self.view.row["status"] != "open":
            self.notify("This procedure has ended.", severity="warning")
            return False
        return True

    def action_attempt_detail(self) -> None:
        if not self._open() or self.view is None:
            return
        current = self.view.state.current
        if current is None:
            self.notify("No attempt yet: press a for the first skin puncture.", severity="warning")
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
            self.last_message = Text(
                f"Procedure ended at {local_time(ended.state.milestones['end'], self.tz)}"
            )
            self.show(ended)
            self.ask_score()

        from ..modals.end import EndDialog

        self.app.push_screen(EndDialog(view.state, view.row.get("csf_removed_ml") or 5), done)

    def ask_score(self) -> None:
        if self.view is None:
            return
        code = self.view.patient["study_code"]

        def done(score: int | None) -> None:
            if score is not None:
                saved = self.guarded(lambda: self.store.set_score(self.procedure_id, score))
                if saved is None:
                    return
                self.notify(f"Satisfaction at 5 min: {saved} saved", markup=False)
            else:
                self.notify("5-minute score left pending: it shows on the home screen.")
            self.sma.go_home()

        from ..modals.score import ScoreDialog

        self.app.push_screen(ScoreDialog(code), done)

    def action_home(self) -> None:
        self.sma.go_home()
