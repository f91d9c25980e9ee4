"""Timeline: replay derives the state from events; check refuses what may not happen."""

from __future__ import annotations

import dataclasses

import pendulum
import pytest

from sma_log.domain import timeline
from sma_log.domain.timeline import Event, RuleError, check, check_end, check_undo, replay

T0 = pendulum.datetime(2026, 3, 27, 9, 0, 0, tz="UTC")


class Log:
    """Builds a timeline the way the Store does: check, then append, then replay."""

    def __init__(self, sedation: str | None = "local") -> None:
        self.events: list[Event] = []
        self.minute = 0.0
        self._add("start", sedation)

    def _add(self, kind: str, value: str | None = None) -> Event:
        ev = Event(f"e{len(self.events):03d}", kind, T0.add(seconds=int(self.minute * 60)), value)
        self.events.append(ev)
        return ev

    @property
    def state(self) -> timeline.State:
        return replay(self.events, "L3-L4", "midline")

    def do(self, kind: str, value: str | None = None, at_minute: float | None = None) -> Event:
        if at_minute is not None:
            self.minute = at_minute
        check(self.state, kind, value)
        return self._add(kind, value)

    def end(self, delivered: bool, at_minute: float | None = None) -> Event:
        if at_minute is not None:
            self.minute = at_minute
        check_end(self.state, delivered)
        return self._add("end", "delivered" if delivered else "failed")

    def undo(self) -> Event:
        target = check_undo(self.state)
        self.events = [
            dataclasses.replace(e, voided=True) if e.id == target.id else e for e in self.events
        ]
        return target


def full_success(log: Log) -> Log:
    log.do("attempt", at_minute=2)
    log.do("redirect")
    log.do("attempt", at_minute=4)
    log.do("attempt", at_minute=5)
    log.do("redirect")
    log.do("redirect")
    log.do("csf", at_minute=6)
    log.do("injection_start", at_minute=7)
    log.do("injection_end", at_minute=9)
    log.end(True, at_minute=12)
    return log


# ---------------------------------------------------------------- order rules
def refused(log: Log, kind: str, match: str, value: str | None = None) -> None:
    before = list(log.events)
    with pytest.raises(RuleError, match=match):
        log.do(kind, value)
    assert log.events == before


def test_csf_before_any_attempt_refused() -> None:
    refused(Log(), "csf", "CSF cannot come before the first skin puncture")


def test_injection_start_before_csf_refused() -> None:
    log = Log()
    refused(log, "injection_start", r"Record CSF obtained \(key c\) before the injection starts")
    log.do("attempt")
    refused(log, "injection_start", "before the injection starts")


def test_injection_end_before_start_refused() -> None:
    log = Log()
    log.do("attempt")
    log.do("csf")
    refused(log, "injection_end", r"Record the injection start \(key i\) before its end")


def test_attempt_and_redirect_after_injection_start_refused() -> None:
    log = Log()
    log.do("attempt")
    log.do("csf")
    log.do("injection_start")
    refused(log, "attempt", "The injection has started: a new attempt is not possible now")
    refused(log, "redirect", "a redirection is not possible now")


def test_repeated_milestones_refused() -> None:
    log = Log()
    log.do("attempt")
    log.do("csf")
    refused(log, "csf", "CSF was already recorded; undo it first")
    log.do("injection_start")
    refused(log, "injection_start", "already recorded")
    log.do("injection_end")
    refused(log, "injection_end", "already recorded")


def test_start_twice_and_unknown_action_refused() -> None:
    log = Log()
    refused(log, "start", "already started")
    refused(log, "dance", "Unknown action: dance")
    refused(log, "flag", "No attempt yet", value="blood")
    refused(log, "redirect", "No attempt yet")
    log.do("attempt")
    refused(log, "flag", "Unknown flag: fire", value="fire")
    refused(log, "sedation", "Unknown sedation: laughing_gas", value="laughing_gas|N2O")
    refused(log, "note", "A note needs some text", value="   ")


def test_ended_procedure_refuses_more_events_and_undo() -> None:
    log = full_success(Log())
    for kind, value in [("attempt", None), ("note", "late"), ("sedation", "none"), ("end", None)]:
        refused(log, kind, "This procedure has ended", value=value)
    with pytest.raises(RuleError, match="undo is no longer possible"):
        check_undo(log.state)
    with pytest.raises(RuleError, match="has ended"):
        check_end(log.state, True)


# ---------------------------------------------------------------- derived state
def test_full_flow_derived_values() -> None:
    st = full_success(Log()).state
    assert st.ended
    assert st.attempt_count == 3
    assert [a.number for a in st.attempts] == [1, 2, 3]
    assert [a.redirections for a in st.attempts] == [1, 0, 2]
    assert st.redirection_count == 3
    assert [a.csf_obtained for a in st.attempts] == [False, False, True]
    assert st.first_attempt_success is False
    assert st.milestones["first_puncture"] == T0.add(minutes=2)
    assert st.procedure_minutes == 12.0  # start -> end
    assert st.puncture_minutes == 7.0  # first puncture (2) -> injection end (9)
    assert st.sedation == "local"
    assert st.attempts[0].level == "L3-L4" and st.attempts[0].approach == "midline"


def test_first_attempt_success() -> None:
    log = Log()
    log.do("attempt", at_minute=1)
    assert log.state.first_attempt_success is None  # not known yet
    log.do("csf", at_minute=2.5)
    assert log.state.first_attempt_success is True
    log.do("injection_start", at_minute=3)
    log.do("injection_end", at_minute=4)
    log.end(True, at_minute=5)
    st = log.state
    assert st.first_attempt_success is True
    assert st.puncture_minutes == 3.0
    assert st.procedure_minutes == 5.0


def test_failed_procedure_without_csf() -> None:
    log = Log()
    log.do("attempt")
    log.do("attempt")
    log.end(False, at_minute=20)
    st = log.state
    assert st.first_attempt_success is False
    assert st.puncture_minutes is None
    assert st.procedure_minutes == 20.0


def test_redirections_counted_within_the_current_attempt() -> None:
    log = Log()
    log.do("attempt")
    for _ in range(4):
        log.do("redirect")
    log.do("attempt")
    log.do("redirect")
    st = log.state
    assert [a.redirections for a in st.attempts] == [4, 1]
    assert st.current is st.attempts[-1]
    assert st.redirection_count == 5


def test_flags_toggle_on_the_current_attempt() -> None:
    log = Log()
    log.do("attempt")
    log.do("flag", "bone_contact")
    log.do("flag", "blood")
    log.do("flag", "bone_contact")
    log.do("attempt")
    log.do("flag", "paraesthesia")
    a1, a2 = log.state.attempts
    assert (a1.bone_contact, a1.blood, a1.paraesthesia) == (False, True, False)
    assert (a2.bone_contact, a2.blood, a2.paraesthesia) == (False, False, True)


def test_attempt_detail_sets_level_and_carries_to_next_attempt() -> None:
    log = Log()
    log.do("attempt")
    log.do("attempt_detail", "L4-L5|paramedian")
    log.do("attempt")
    a1, a2 = log.state.attempts
    assert (a1.level, a1.approach) == ("L4-L5", "paramedian")
    assert (a2.level, a2.approach) == ("L4-L5", "paramedian")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("L9-L9|midline", "Unknown level: L9-L9"),
        ("L3-L4|sideways", "Unknown approach: sideways"),
        ("garbage", "Unknown level"),
        ("|", "level or approach"),
        (None, "level or approach"),
    ],
)
def test_attempt_detail_with_unknown_codes_refused(value: str | None, match: str) -> None:
    log = Log()
    log.do("attempt")
    refused(log, "attempt_detail", match, value=value)


def test_attempt_detail_level_only_or_approach_only() -> None:
    log = Log()
    log.do("attempt")
    log.do("attempt_detail", "L2-L3|")
    log.do("attempt_detail", "|transforaminal")
    a = log.state.attempts[0]
    assert (a.level, a.approach) == ("L2-L3", "transforaminal")


def test_sedation_change_and_notes() -> None:
    log = Log(sedation="none")
    log.do("sedation", "iv_sedation|propofol", at_minute=3)
    log.do("note", "patient anxious")
    st = log.state
    assert st.sedation == "iv_sedation"
    assert st.sedation_agent == "propofol"
    assert [c[1] for c in st.sedation_changes] == ["none", "iv_sedation"]
    assert st.notes == [(T0.add(minutes=3), "patient anxious")]


# ---------------------------------------------------------------- undo
def test_undo_skips_voided_events() -> None:
    log = Log()
    log.do("attempt")
    log.do("redirect")
    target = log.undo()
    assert target.kind == "redirect"
    st = log.state
    assert st.redirection_count == 0
    assert len(log.events) == 3  # nothing deleted, only marked void
    assert log.events[-1].voided
    assert st.undoable is not None and st.undoable.kind == "attempt"


def test_multi_level_undo_back_to_start() -> None:
    log = Log()
    log.do("attempt")
    log.do("flag", "blood")
    log.do("redirect")
    log.do("csf")
    log.do("injection_start")
    kinds = [log.undo().kind for _ in range(5)]
    assert kinds == ["injection_start", "csf", "redirect", "flag", "attempt"]
    st = log.state
    assert st.attempt_count == 0
    assert st.milestones.keys() == {"start"}
    assert [a.id for a in st.voided_attempts] == ["e001"]
    with pytest.raises(RuleError, match="Nothing to undo"):
        check_undo(st)


def test_undone_milestone_can_be_recorded_again() -> None:
    log = Log()
    log.do("attempt")
    log.do("csf", at_minute=1)
    log.undo()
    refused(log, "injection_start", "before the injection starts")
    log.do("attempt", at_minute=2)
    log.do("csf", at_minute=3)
    st = log.state
    assert st.milestones["csf"] == T0.add(minutes=3)
    assert [a.csf_obtained for a in st.attempts] == [False, True]


def test_undo_after_undo_of_flag_restores_toggle() -> None:
    log = Log()
    log.do("attempt")
    log.do("flag", "blood")
    assert log.state.attempts[0].blood
    log.undo()
    assert not log.state.attempts[0].blood


# ---------------------------------------------------------------- check_end
def test_check_end_delivered_needs_the_injection_milestones() -> None:
    log = Log()
    with pytest.raises(RuleError, match="missing First skin puncture, CSF obtained, Injection st"):
        log.end(True)
    log.do("attempt")
    log.do("csf")
    with pytest.raises(RuleError, match=r"missing Injection start, Injection end$"):
        log.end(True)
    log.do("injection_start")
    with pytest.raises(RuleError, match=r"missing Injection end$"):
        log.end(True)


def test_check_end_failed_with_injection_half_done_refused() -> None:
    log = Log()
    log.do("attempt")
    log.do("csf")
    log.do("injection_start")
    with pytest.raises(RuleError, match="The injection started: record its end"):
        log.end(False)
    log.undo()
    log.end(False)
    assert log.state.ended


def test_failed_end_with_nothing_is_allowed() -> None:
    log = Log()
    log.end(False, at_minute=1)
    st = log.state
    assert st.ended and st.attempt_count == 0 and st.first_attempt_success is None
