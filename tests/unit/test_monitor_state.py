"""The monitor state machine (rearm.monitors.state): pure, so every rule is checked without a
clock or a probe -- hypothesis drives random sequences of starts, stops, results and operator
commands, and a small independent model says what must have happened."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rearm.monitors.base import Result, Status
from rearm.monitors.state import TRANSITIONS, Event, Input, Monitor, MonitorState

S = MonitorState
OK = Result(Status.OK, "fine")
BAD = Result(Status.ERROR, "refused")
WARN = Result(Status.WARNING, "slow")
UNK = Result(Status.UNKNOWN, "cannot tell")


def started(threshold: int = 3, delay: float = 0.0) -> Monitor:
    m = Monitor("db", threshold, delay)
    m.start(0.0)
    return m


def test_the_nth_consecutive_failure_is_the_fault_and_a_success_clears_the_count() -> None:
    m = started(threshold=3)
    assert m.result(1, BAD, m.epoch) == [] and m.result(2, BAD, m.epoch) == []
    assert (m.state, m.failures) == (S.NORMAL, 2)
    [event] = m.result(3, BAD, m.epoch)
    assert (event.kind, event.severity, event.fault) == ("monitor_error", "error", True)
    assert event.previous is S.NORMAL and m.state is S.ERROR and m.since == 3
    assert event.message == "monitor 'db' error: 3 consecutive failures: refused"
    assert m.result(4, BAD, m.epoch) == []  # no second fault (an alert-only monitor is quiet)
    [back] = m.result(5, OK, m.epoch)
    assert (back.kind, back.state, back.previous, m.failures) == (
        "monitor_normal",
        S.NORMAL,
        S.ERROR,
        0,
    )
    assert "failure count cleared" in back.message


def test_a_restart_of_the_target_starts_the_count_over_and_faults_again() -> None:
    m = started(threshold=2, delay=5)
    m.result(6, BAD, m.epoch)
    [fault] = m.result(7, BAD, m.epoch)
    assert fault.fault and m.state is S.ERROR
    assert m.start(8) == []  # the recovery restarted it: still error, count 0, start delay
    assert (m.state, m.failures, m.due(12.9), m.due(13)) == (S.ERROR, 0, False, True)
    m.result(14, BAD, m.epoch)
    [again] = m.result(15, BAD, m.epoch)
    assert again.fault and again.kind == "monitor_error" and again.previous is S.ERROR
    assert "still failing after the target's restart" in again.message


def test_warnings_and_unknowns_neither_count_nor_break_a_run() -> None:
    m = started(threshold=2)
    m.result(1, BAD, m.epoch)
    [w] = m.result(2, WARN, m.epoch)
    assert (w.kind, w.severity, m.state, m.failures) == ("monitor_warning", "warning", S.WARNING, 1)
    assert m.result(3, UNK, m.epoch) == []  # already warning
    [e] = m.result(4, BAD, m.epoch)
    assert e.fault and e.previous is S.WARNING


def test_results_of_a_probe_begun_before_a_change_are_ignored() -> None:
    m = started(threshold=1)
    old = m.epoch
    m.stop(1)
    m.start(2)
    assert m.result(3, BAD, old) == [] and m.state is S.NORMAL


def test_suspend_resume_and_clear() -> None:
    m = started(threshold=1)
    m.result(1, BAD, m.epoch)
    [s] = m.suspend(2)
    assert (s.kind, s.state, s.previous, m.failures) == (
        "monitor_suspended",
        S.SUSPENDED,
        S.ERROR,
        0,
    )
    assert m.result(3, BAD, m.epoch) == [] and not m.due(3)
    assert m.start(4) == [] and m.stop(5) == []  # the target's life does not end a suspension
    [r] = m.resume(6, target_active=False)
    assert r.state is S.OFFLINE and "not running" in r.message
    m.suspend(7)
    [r] = m.resume(8, target_active=True)
    assert r.state is S.NORMAL and m.due(8)
    m.result(9, WARN, m.epoch)
    [c] = m.clear(10)
    assert (c.kind, c.state, c.previous) == ("monitor_normal", S.NORMAL, S.WARNING)
    m2 = started(threshold=3)
    m2.result(1, BAD, m2.epoch)
    [c2] = m2.clear(2)  # no change of state, but the operator's act is on record
    assert (c2.kind, c2.state, m2.failures) == ("monitor_cleared", S.NORMAL, 0)
    assert m2.clear(3) == []  # nothing to clear


def test_every_pair_of_the_table() -> None:
    """Each state answers each input as the table says; missing pairs change nothing."""
    inputs = {
        Input.START: lambda m: m.start(50),
        Input.STOP: lambda m: m.stop(50),
        Input.SUSPEND: lambda m: m.suspend(50),
        Input.RESUME_ACTIVE: lambda m: m.resume(50, True),
        Input.RESUME_IDLE: lambda m: m.resume(50, False),
        Input.CLEAR: lambda m: m.clear(50),
        Input.OK: lambda m: m.result(50, OK, m.epoch),
        Input.WARN: lambda m: m.result(50, WARN, m.epoch),
        Input.FAIL: lambda m: m.result(50, BAD, m.epoch),
    }
    for state in S:
        for what, act in inputs.items():
            m = Monitor("m", 2)
            m.state = state
            act(m)
            assert m.state is TRANSITIONS.get((state, what), state), (state, what)
        m = Monitor("m", 1)
        m.state = state
        m.result(50, BAD, m.epoch)
        assert m.state is TRANSITIONS.get((state, Input.FAIL_LIMIT), state)


# --- random sequences ------------------------------------------------------------------------
@dataclass
class Model:
    """What must be true, written independently of the table."""

    threshold: int
    state: MonitorState = S.OFFLINE
    run: int = 0  # failures since the last success/start/clear/resume/suspend/stop

    def apply(self, action: tuple[str, object]) -> tuple[MonitorState, bool]:
        """The next state and whether the step is a fault."""
        name, arg = action
        active = self.state in (S.NORMAL, S.WARNING, S.ERROR)
        fault = False
        if name == "start":
            if self.state is S.OFFLINE:
                self.state = S.NORMAL
            if self.state is not S.SUSPENDED:
                self.run = 0
        elif name == "stop" and active:
            self.state, self.run = S.OFFLINE, 0
        elif name == "suspend" and self.state is not S.SUSPENDED:
            self.state, self.run = S.SUSPENDED, 0
        elif name == "resume" and self.state is S.SUSPENDED:
            self.state, self.run = (S.NORMAL if arg else S.OFFLINE), 0
        elif name == "clear" and (active or self.state is S.SUSPENDED):
            self.run = 0
            if active:
                self.state = S.NORMAL
        elif name == "result" and active:
            status = arg
            if status is Status.OK:
                self.state, self.run = S.NORMAL, 0
            elif status in (Status.WARNING, Status.UNKNOWN):
                self.state = S.WARNING
            else:
                self.run += 1
                if self.run == self.threshold:
                    self.state, fault = S.ERROR, True
        return self.state, fault


actions = st.one_of(
    st.tuples(st.sampled_from(["start", "stop", "suspend", "clear"]), st.none()),
    st.tuples(st.just("resume"), st.booleans()),
    st.tuples(st.just("result"), st.sampled_from(list(Status))),
    st.tuples(st.just("stale"), st.sampled_from(list(Status))),
)


@settings(max_examples=400)
@given(threshold=st.integers(1, 4), steps=st.lists(actions, max_size=60))
def test_random_sequences_follow_the_model(threshold: int, steps: list[tuple[str, object]]) -> None:
    m = Monitor("m", threshold, start_delay=1.0)
    model = Model(threshold)
    results = {s: Result(s, s.value) for s in Status}
    now = 0.0
    for action in steps:
        now += 1
        before, epoch = m.state, m.epoch
        name, arg = action
        events: list[Event]
        if name == "start":
            events = m.start(now)
        elif name == "stop":
            events = m.stop(now)
        elif name == "suspend":
            events = m.suspend(now)
        elif name == "resume":
            events = m.resume(now, bool(arg))
        elif name == "clear":
            events = m.clear(now)
        elif name == "result":
            assert isinstance(arg, Status)
            events = m.result(now, results[arg], m.epoch)
        else:  # a result from a probe begun before the last change: never counts
            assert isinstance(arg, Status)
            events = m.result(now, results[arg], epoch - 1)
            assert events == [] and m.state is before
            continue
        expected, fault = model.apply(action)
        assert m.state is expected, (action, before)
        assert m.failures == model.run
        # An event for every change of state, one fault exactly when the count reaches the
        # threshold, and nothing else but an operator's clear of a count.
        assert [e.fault for e in events if e.fault] == [True] * fault
        if m.state is not before:
            assert len(events) == 1 and events[0].previous is before
            assert events[0].state is m.state and events[0].kind == f"monitor_{m.state.value}"
            assert m.since == now
        elif not fault:
            assert all(e.kind == "monitor_cleared" for e in events), events
        if m.state is S.ERROR and before is not S.ERROR:
            assert fault, "error is only ever entered with a fault"
        if not m.state.probing:
            assert not m.due(now + 1000)


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Monitor("m", 0)
