"""Crash at any point: the installed ``sma-log`` in tmux, driven by seeded random
bedside and follow-up flows, killed with SIGKILL at a random moment, restarted.

The driver keeps a model of what the database must hold. Every key whose effect the
screen showed (read back from the terminal: the attempt list, the milestones, the
notes, the follow-up queue's call counts, the dialogs) is added to the model; the
key in flight at the kill is "shown" only if the last screen captured before the
kill showed its effect. After each kill the database must equal the model, or the
model plus the in-flight key (committed but not yet drawn) — never anything else:
no shown action missing, none duplicated, every derived column consistent,
``PRAGMA integrity_check`` ok; and the restarted app resumes the open procedure
with the same attempts and milestones.

Used by tests/reliability/test_crash.py (a few kills) and benchmarks/stress_crash.py.
"""

from __future__ import annotations

import copy
import random
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pendulum

from sma_log.domain import timeline

from .term import SMA_LOG, Terminal

MILESTONE_LABELS = {label: key for key, label in timeline.MILESTONES}
FLAG_LABELS = {label: key for key, label in timeline.FLAGS}
FLAG_KEYS = {"b": "bone_contact", "p": "paraesthesia", "h": "blood"}
BEDSIDE_KEYS = {
    "a": "attempt",
    "r": "redirect",
    "c": "csf",
    "i": "injection_start",
    "j": "injection_end",
}
MAX_ATTEMPTS = 4  # the attempt list stays on a 100x32 screen
MAX_NOTES = 2

_ATTEMPT_RE = re.compile(r"[▶ ] #(\d+) \d\d:\d\d:\d\d \S+ (\d+) redir(?: · (.*?))?\s*$")
_MILESTONE_RE = re.compile(
    r"([✓·]) (Start|First skin puncture|CSF obtained|Injection start|Injection end|End)\s+"
    r"(\d\d:\d\d:\d\d|—)"
)
_NOTE_RE = re.compile(r"^\s+\d\d:\d\d:\d\d (.*?)\s*$")

Ev = tuple[str, str | None, bool]  # kind, value (None for start), voided


# ------------------------------------------------------------------ the model
@dataclass
class Procedure:
    code: str
    status: str = "open"
    events: list[Ev] = field(default_factory=list)
    score: int | None = None


@dataclass
class Model:
    procedures: dict[str, Procedure] = field(default_factory=dict)
    calls: int = 0

    def open_one(self) -> Procedure | None:
        return next((p for p in self.procedures.values() if p.status == "open"), None)

    def summary(self) -> Any:
        return (
            sorted((p.code, p.status, tuple(p.events), p.score) for p in self.procedures.values()),
            self.calls,
        )


def state_of(events: list[Ev]) -> timeline.State:
    t = pendulum.datetime(2026, 1, 1, tz="UTC")
    evs = [
        timeline.Event(str(i), k, t.add(seconds=i), v, None, voided)
        for i, (k, v, voided) in enumerate(events)
    ]
    # attempt_id of flags/redirects does not matter for the replayed counters
    return timeline.replay(evs, "L3-L4", "paramedian")


def accepted(events: list[Ev], kind: str, value: str | None = None) -> bool:
    try:
        timeline.check(state_of(events), kind, value)
    except timeline.RuleError:
        return False
    return True


def apply_undo(events: list[Ev]) -> list[Ev] | None:
    state = state_of(events)
    if state.ended or state.undoable is None:
        return None
    i = int(state.undoable.id)
    out = list(events)
    out[i] = (out[i][0], out[i][1], True)
    return out


def signature(events: list[Ev]) -> Any:
    """What the live screen shows of a timeline: attempts, milestones, notes."""
    st = state_of(events)
    attempts = tuple(
        (
            a.redirections,
            frozenset(
                [k for k in ("bone_contact", "paraesthesia", "blood") if getattr(a, k)]
                + (["csf"] if a.csf_obtained else [])
            ),
        )
        for a in st.attempts
    )
    return attempts, frozenset(st.milestones), tuple(text for _, text in st.notes[-3:])


def parse_screen(screen: str) -> Any | None:
    """The same signature read off the terminal, or None if the panels are covered."""
    milestones: dict[str, bool] = {}
    attempts: list[tuple[int, frozenset[str]]] = []
    notes: list[str] = []
    rights: list[str] = []
    for line in screen.splitlines():
        if "││" not in line:
            continue
        left, _, right = line.partition("││")
        m = _MILESTONE_RE.search(left)
        if m:
            milestones[MILESTONE_LABELS[m.group(2)]] = m.group(1) == "✓"
        right = right.rstrip().removesuffix("│").rstrip()
        if (
            rights
            and right.strip()
            and not right.startswith((" ▶ #", "   #", "  ", "Notes"))
            and re.match(r"[▶ ] #", rights[-1][1:])
        ):
            rights[-1] += " " + right.strip()  # an attempt line wrapped in the panel
        else:
            rights.append(right)
    in_notes = False
    for right in rights:
        if right.strip() == "Notes":
            in_notes = True
            continue
        if in_notes:
            n = _NOTE_RE.match(right)
            if n:
                notes.append(n.group(1))
            continue
        a = _ATTEMPT_RE.search(right)
        if a:
            flags = set()
            for word in (a.group(3) or "").split(", "):
                word = word.strip()
                if word == "CSF":
                    flags.add("csf")
                elif word in FLAG_LABELS:
                    flags.add(FLAG_LABELS[word])
            attempts.append((int(a.group(2)), frozenset(flags)))
    if len(milestones) != len(timeline.MILESTONES):
        return None
    return tuple(attempts), frozenset(k for k, on in milestones.items() if on), tuple(notes)


def queue_calls(screen: str) -> int | None:
    """Sum of the follow-up queue's Calls column, or None if the queue is not shown."""
    lines = screen.splitlines()
    header = next(
        (i for i, line in enumerate(lines) if line.startswith(" Status ") and " Calls" in line),
        None,
    )
    if header is None:
        return 0 if "Nothing due" in screen else None
    col = lines[header].index(" Calls") + 1
    total = 0
    for line in lines[header + 1 :]:
        cell = line[col : col + 5].strip()
        if not cell.isdigit():
            break
        total += int(cell)
    return total


# ------------------------------------------------------------------ the database
def read_db(db: Path) -> tuple[Model, list[str]]:
    """The database as the model sees it, and every consistency problem found."""
    problems: list[str] = []
    conn = sqlite3.connect(db)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            problems.append(f"integrity_check: {ok}")
        if conn.execute("PRAGMA foreign_key_check").fetchall():
            problems.append("foreign_key_check failed")
        from sma_log.storage import reportcache

        # The report's kept figures change in the same transactions: never half done.
        problems += [f"report cache: {p}" for p in reportcache.check(conn)]
        model = Model()
        rows = conn.execute(
            "SELECT p.id, pt.study_code, p.status, p.satisfaction_5min, p.attempts_n, "
            "p.redirections_n FROM procedures p JOIN patients pt ON pt.id = p.patient_id"
        ).fetchall()
        for pid, code, status, score, attempts_n, redir_n in rows:
            evs = conn.execute(
                "SELECT kind, value, voided_at IS NOT NULL FROM events WHERE procedure_id = ? "
                "ORDER BY seq",
                (pid,),
            ).fetchall()
            events = [(k, None if k == "start" else v, bool(x)) for k, v, x in evs]
            proc = Procedure(code, status, events, score)
            model.procedures[code] = proc
            st = state_of(events)
            if (attempts_n, redir_n) != (st.attempt_count, st.redirection_count):
                problems.append(f"{code}: derived counts {attempts_n},{redir_n} disagree")
            live = conn.execute(
                "SELECT count(*) FROM attempts WHERE procedure_id = ? AND voided = 0", (pid,)
            ).fetchone()[0]
            if live != st.attempt_count:
                problems.append(f"{code}: {live} attempt rows for {st.attempt_count} attempts")
            seqs = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM events WHERE procedure_id = ? ORDER BY seq", (pid,)
                )
            ]
            if seqs != list(range(1, len(seqs) + 1)):
                problems.append(f"{code}: event seq not 1..n: {seqs}")
            if status == "ended":
                n = conn.execute(
                    "SELECT count(*) FROM followups WHERE procedure_id = ?", (pid,)
                ).fetchone()[0]
                if n != 2:
                    problems.append(f"{code}: ended with {n} follow-ups (want 2)")
        model.calls = conn.execute("SELECT count(*) FROM contact_attempts").fetchone()[0]
        n_calls = conn.execute("SELECT coalesce(sum(contact_attempts_n), 0) FROM followups")
        if n_calls.fetchone()[0] != model.calls:
            problems.append("followups.contact_attempts_n disagrees with contact_attempts")
        # Every clinical row has its audited insert.
        for table in (
            "patients",
            "procedures",
            "events",
            "followups",
            "contact_attempts",
        ):
            missing = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
                "WHERE a.table_name = ? AND a.record_id = t.id AND a.field = '*')",
                (table,),
            ).fetchone()[0]
            if missing:
                problems.append(f"{missing} {table} rows without an audited insert")
    finally:
        conn.close()
    return model, problems


# ------------------------------------------------------------------ the driver
@dataclass
class Step:
    """One key (or typed text) and what the database and screen look like after it."""

    keys: list[str]
    text: str | None = None
    after: Model | None = None  # None: the step commits nothing
    shown: Any = None  # predicate(screen) -> bool: the screen shows the step done
    ready: Any = None  # predicate(screen) for steps that commit nothing
    then: Step | None = None  # the step that must follow (a dialog's keys)


@dataclass
class Figures:
    kills: int = 0
    shown: int = 0
    found: int = 0
    lost: int = 0
    duplicated: int = 0
    inflight_committed_unshown: int = 0
    failures: list[str] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "actions_shown": self.shown,
            "actions_found": self.found,
            "lost": self.lost,
            "unexpected_state": self.duplicated,
            "in_flight_committed_not_yet_drawn": self.inflight_committed_unshown,
            "committed_keys": dict(sorted(self.keys.items())),
            "start_key_resent": self.retries,
            "failures": self.failures,
        }


class CrashDriver:
    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.db = folder / "crash.db"
        self.rng = random.Random(seed)
        self.seed = seed
        self.model = Model()
        self.figures = Figures()
        self.counter = 0
        self.lives = 0
        self.env = {
            "SMA_LOG_CONFIG": str(folder / "settings.json"),
            "TERM": "xterm-256color",
            "TZ": "UTC",
            "HOME": str(folder),
        }

    # -------------------------------------------------------------- terminal
    def launch(self) -> Terminal:
        self.lives += 1
        cmd = [*SMA_LOG, "--db", str(self.db), "--user", "crash-driver"]
        term = Terminal(self.folder, f"life{self.lives}", cmd, self.env)
        proc = self.model.open_one()
        if proc is None:
            term.wait_for(lambda s: "No procedure in progress" in s, timeout=30)
        else:
            # The app opens on home, the open procedure its first line; l resumes it.
            code = proc.code
            term.wait_for(lambda s: "l resumes" in s and f"IN PROGRESS  {code}" in s, timeout=30)
            term.key("l")
            want = signature(proc.events)
            screen = term.wait_for(
                lambda s: "In progress since" in s and parse_screen(s) == want, timeout=30
            )
            assert proc.code in screen
        return term

    # -------------------------------------------------------------- planning
    def plan(self, screen_kind: str) -> Step:
        """The next step, chosen at random among what the current screen accepts."""
        rng = self.rng
        m = self.model
        proc = m.open_one()
        if screen_kind == "procedure" and proc is not None:
            evs = proc.events
            st = state_of(evs)
            options: list[tuple[float, str]] = []
            for key, kind in BEDSIDE_KEYS.items():
                if kind == "attempt" and st.attempt_count >= MAX_ATTEMPTS:
                    continue
                if accepted(evs, kind):
                    options.append(({"a": 3, "r": 2}.get(key, 1.5), key))
            for key, name in FLAG_KEYS.items():
                if accepted(evs, "flag", name):
                    options.append((0.7, key))
            if st.undoable is not None:
                options.append((1.2, "u"))
            if len(st.notes) < MAX_NOTES:
                options.append((0.5, "n"))
            if "injection_end" in st.milestones:
                options.append((3.0, "e"))
            key = _choose(rng, options)
            new = copy.deepcopy(m)
            p = new.procedures[proc.code]
            if key == "u":
                undone = apply_undo(p.events)
                assert undone is not None
                p.events = undone
            elif key in FLAG_KEYS:
                p.events.append(("flag", FLAG_KEYS[key], False))
            elif key == "n":
                return self._note_steps(new, p)
            elif key == "e":
                return self._end_steps(new, p)
            else:
                p.events.append((BEDSIDE_KEYS[key], None, False))
            want = signature(p.events)
            return Step([key], after=new, shown=lambda s: parse_screen(s) == want)
        if screen_kind == "home":
            ended = any(p.status == "ended" for p in m.procedures.values())
            if ended and m.calls < 40 and rng.random() < 0.35:
                return Step(["f"], ready=lambda s: self.where(s) == "followups")
            return Step(["+"], ready=lambda s: "Study code" in s and "Set-up" in s)
        if screen_kind == "start":
            self.counter += 1
            code = f"C{self.seed}-{self.lives}-{self.counter}"
            new = copy.deepcopy(m)
            new.procedures[code] = Procedure(code, "open", [("start", None, False)])
            return Step(
                ["C-s"],
                text=code,
                after=new,
                shown=lambda s: "IN PROGRESS" in s and code in s,
            )
        if screen_kind == "followups":
            if rng.random() < 0.75:
                new = copy.deepcopy(m)
                new.calls += 1
                want = new.calls
                return Step(["x"], after=new, shown=lambda s: queue_calls(s) == want)
            return Step(["Escape"], ready=lambda s: "No procedure in progress" in s)
        raise AssertionError(f"nothing planned for {screen_kind}")

    def _note_steps(self, new: Model, p: Procedure) -> Step:
        text = self.rng.choice(["bleeding ok", "[red]x[/] stays text", "pt moved [b]", "ok 2"])
        p.events.append(("note", text, False))
        want = signature(p.events)
        step = Step(["n"], ready=lambda s: "Add a note" in s)
        step.then = Step(["Enter"], text=text, after=new, shown=lambda s: parse_screen(s) == want)
        return step

    def _end_steps(self, new: Model, p: Procedure) -> Step:
        p.events.append(("end", "delivered", False))
        p.status = "ended"
        code = p.code
        step = Step(["e"], ready=lambda s: "End the procedure?" in s)
        end = Step(
            ["C-s"], after=new, shown=lambda s: "Satisfaction at 5 minutes" in s or "ENDED" in s
        )
        step.then = end
        scored = copy.deepcopy(new)
        digit = self.rng.choice("12345l")
        if digit == "l":
            score = Step(["l"], ready=lambda s: "No procedure in progress" in s)
        else:
            # Seconds after the end the score is early: one confirmation (y) saves it.
            scored.procedures[code].score = int(digit)
            score = Step([digit], ready=lambda s: "EARLY 5-minute score" in s)
            score.then = Step(
                ["y"],
                after=scored,
                shown=lambda s: (
                    f"{code}: satisfaction at 5 min: {digit} saved" in s
                    or (
                        "No procedure in progress" in s
                        and f"{code} " in s
                        and _home_score(s, code) == digit
                    )
                ),
            )
        end.then = score
        return step

    # -------------------------------------------------------------- running
    def where(self, screen: str) -> str:
        if "EARLY 5-minute score" in screen:
            return "early"
        if "Satisfaction at 5 minutes" in screen:
            return "score"
        if "End the procedure?" in screen:
            return "end"
        if "Add a note" in screen:
            return "note"
        if "IN PROGRESS" in screen and "Milestones" in screen:  # home shows IN PROGRESS too
            return "procedure"
        if "Set-up" in screen and "Study code" in screen:
            return "start"
        if "Follow-ups" in screen and queue_calls(screen) is not None:
            return "followups"
        if "No procedure in progress" in screen:
            return "home"
        return "unknown"

    def life(self, steps_before_kill: int) -> None:
        """Start the app, run ``steps_before_kill`` confirmed steps, then one step in
        flight, kill at a random moment, and check the database."""
        term = self.launch()
        try:
            done = 0
            pending: list[Step] = []
            while True:
                screen = term.screen()
                if pending:
                    step = pending.pop(0)
                else:
                    kind = self.where(screen)
                    if kind == "unknown":
                        screen = term.wait_for(lambda s: self.where(s) != "unknown")
                        kind = self.where(screen)
                    step = self.plan(kind)
                nxt = step.then
                if nxt is not None:
                    pending.insert(0, nxt)
                if done >= steps_before_kill:
                    self._in_flight(term, step)
                    return
                self._send(term, step)
                if step.after is not None:
                    try:
                        term.wait_for(step.shown, timeout=8)
                    except AssertionError:
                        if step.text is None:  # only the start step is safe to resend
                            raise
                        # The start key was not taken: note what the screen said (a
                        # toast lasts a few seconds) and press it once more.
                        self.figures.retries.append(term.screen()[-600:])
                        term.key(step.keys[-1])
                        term.wait_for(step.shown, timeout=20)
                    self.model = step.after
                    self.figures.keys[step.keys[0]] = self.figures.keys.get(step.keys[0], 0) + 1
                    self.figures.shown += 1
                    self.figures.found += 1  # checked at the next kill: see _check
                else:
                    term.wait_for(step.ready, timeout=20)
                done += 1
        finally:
            term.kill_server()

    def _send(self, term: Terminal, step: Step) -> None:
        if step.text is not None:
            term.type(step.text)
            time.sleep(0.05)
        for key in step.keys:
            term.key(key)

    def _in_flight(self, term: Terminal, step: Step) -> None:
        self._send(term, step)
        time.sleep(self.rng.uniform(0.0, 0.3))
        last = term.screen()
        term.sigkill()
        self.figures.kills += 1
        shown = step.after is not None and bool(step.shown(last))
        if shown:
            self.figures.shown += 1
        self._check(step, shown, last)

    def _check(self, step: Step, shown: bool, last: str) -> None:
        db_model, problems = read_db(self.db)
        got = db_model.summary()
        before = self.model.summary()
        after = step.after.summary() if step.after is not None else before
        tag = f"seed {self.seed} kill {self.figures.kills}"
        for p in problems:
            self.figures.failures.append(f"{tag}: {p}")
        if got == after and step.after is not None:
            if shown:
                self.figures.found += 1
            else:
                self.figures.inflight_committed_unshown += 1
        elif got == before:
            if shown:
                self.figures.lost += 1
                self.figures.failures.append(f"{tag}: shown but not in the database: {step.keys}")
        else:
            self.figures.duplicated += 1
            self.figures.lost += 1  # the model's shown actions are not exactly there
            self.figures.found -= 1
            self.figures.failures.append(
                f"{tag}: database differs from what was shown: keys {step.keys}\n"
                f"  db:    {got}\n  model: {before}\n  screen:\n{last}"
            )
        self.model = db_model  # carry on from what was committed

    def run(self, kills: int, min_steps: int = 2, max_steps: int = 14) -> Figures:
        for _ in range(kills):
            self.life(self.rng.randint(min_steps, max_steps))
        # A last start: the app resumes what the database holds.
        term = self.launch()
        term.kill_server()
        return self.figures


def _home_score(screen: str, code: str) -> str | None:
    """The "Score 5′" cell of ``code``'s row among home's recent procedures."""
    col = None
    for line in screen.splitlines():
        if "Score 5′" in line and "Started" in line:
            col = line.index("Score 5′")
        elif col is not None and line.strip().startswith(code + " ") and "delivered" in line:
            cell = line[col:].split()
            return cell[0] if cell else None
    return None


def _choose(rng: random.Random, options: list[tuple[float, str]]) -> str:
    total = sum(w for w, _ in options)
    x = rng.uniform(0, total)
    for w, key in options:
        x -= w
        if x <= 0:
            return key
    return options[-1][1]
