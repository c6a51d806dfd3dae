"""One watch's state machine: inputs in, effects out, every state change through TRANSITIONS."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rearm import policy
from rearm.model import LoadRequest, RestartPolicy, WatchState
from rearm.watch import (
    TRANSITIONS,
    CancelRestart,
    Effect,
    Emit,
    FireFinalAction,
    Forget,
    InvalidTransition,
    KillLeftovers,
    RecordFault,
    RunRecoverScript,
    ScheduleRestart,
    Spawn,
    StopTarget,
    Watch,
)

S = WatchState
T0 = 1_700_000_000.0
HOUR = policy.SECONDS_PER_HOUR
TERMINAL = (S.STOPPED, S.FAILED, S.ESCALATED)


def make(
    retry: int | None = 3,
    hours: int | None = None,
    interval: int = 0,
    script: bool = False,
    hour: float = HOUR,
) -> Watch:
    request = LoadRequest(
        "WEB",
        RestartPolicy(retry=retry, hours=hours, interval=interval, script=script),
        argv=("/usr/bin/sleep", "60"),
    )
    return Watch("WEB", request, group="g", instance="i1", hour=hour)


def running(pid: int = 100, **kwargs: object) -> Watch:
    w = make(**kwargs)  # type: ignore[arg-type]
    assert w.started(pid, ready=True) == []
    assert w.state is S.RUNNING
    return w


def state_of(w: Watch) -> WatchState:
    """The current state, read through a call so that type checkers do not pin it."""
    return w.state


def kinds(effects: list[Effect]) -> list[type]:
    return [type(e) for e in effects]


def only(effects: list[Effect], cls: type) -> list[Effect]:
    return [e for e in effects if isinstance(e, cls)]


# --- starting -------------------------------------------------------------------------------


def test_a_new_watch_is_starting() -> None:
    w = make()
    assert (w.state, w.pid, w.restarts, w.fault_times, w.restart_due) == (
        S.STARTING,
        None,
        0,
        [],
        None,
    )


def test_started_and_ready_is_running() -> None:
    w = make()
    assert w.started(4242, ready=True) == []
    assert w.state is S.RUNNING
    assert w.pid == 4242


def test_started_not_ready_waits_for_readiness() -> None:
    w = make()
    assert w.started(4242, ready=False) == []
    assert w.state is S.STARTING
    assert w.pid == 4242
    assert w.became_ready() == []
    assert state_of(w) is S.RUNNING
    assert w.pid == 4242


def test_started_clears_the_detail_of_the_last_fault() -> None:
    w = running()
    w.exited(T0, "killed by SIGSEGV", clean=False)
    assert w.detail == "killed by SIGSEGV"
    w.restart_due_now()
    w.started(101, ready=True)
    assert w.detail is None


# --- a fault with /R: restart ---------------------------------------------------------------


def test_exit_with_retry_records_then_schedules_the_restart() -> None:
    w = running(pid=100, retry=3, interval=7)
    effects = w.exited(T0, "exit status 1", clean=False)
    assert kinds(effects) == [RecordFault, KillLeftovers, Emit, ScheduleRestart]
    assert effects[0] == RecordFault(T0, "exit status 1")
    assert effects[1] == KillLeftovers(100)
    assert effects[-1] == ScheduleRestart(delay=7)
    emit = effects[2]
    assert isinstance(emit, Emit)
    assert (emit.kind, emit.severity) == ("fault", "warning")
    assert "WEB ended: exit status 1" in emit.message
    assert "fault 1 of 3" in emit.message
    assert "restart in 7 s" in emit.message
    assert w.state is S.RESTARTING
    assert w.pid is None
    assert w.restart_due == T0 + 7
    assert w.fault_times == [T0]
    assert w.detail == "exit status 1"


def test_a_clean_exit_is_a_fault_too_with_retry() -> None:
    w = running(retry=1)
    effects = w.exited(T0, "exit status 0", clean=True)
    assert effects[0] == RecordFault(T0, "exit status 0")
    assert w.state is S.RESTARTING


def test_restart_due_spawns_the_target_again() -> None:
    w = running(retry=3)
    w.exited(T0, "exit status 1", clean=False)
    effects = w.restart_due_now()
    assert kinds(effects) == [Emit, Spawn]
    emit = effects[0]
    assert isinstance(emit, Emit)
    assert emit.kind == "restart"
    assert "restart 1" in emit.message
    assert "start script" not in emit.message
    assert w.state is S.STARTING
    assert w.restarts == 1
    assert w.restart_due is None


def test_restart_with_scr_runs_the_recover_script() -> None:
    w = running(retry=3, script=True, interval=2)
    fault = w.exited(T0, "exit status 1", clean=False)
    fault_emit = only(fault, Emit)[0]
    assert isinstance(fault_emit, Emit)
    assert "by the start script" in fault_emit.message
    effects = w.restart_due_now()
    assert kinds(effects) == [Emit, RunRecoverScript]
    assert "start script (RECOVER)" in effects[0].message  # type: ignore[union-attr]
    assert only(effects, Spawn) == []
    assert w.state is S.STARTING
    assert w.restarts == 1


def test_restarts_count_every_restart() -> None:
    w = running(retry=9)
    for n in range(1, 6):
        w.exited(T0 + n, "exit status 1", clean=False)
        w.restart_due_now()
        assert w.restarts == n
        w.started(100 + n, ready=True)
    assert len(w.fault_times) == 5


# --- the threshold --------------------------------------------------------------------------


@pytest.mark.parametrize("retry", [1, 2, 3, 9])
def test_the_retry_plus_first_fault_escalates(retry: int) -> None:
    w = running(retry=retry, hours=1, interval=5)
    for n in range(retry):
        effects = w.exited(T0 + n, "exit status 1", clean=False)
        assert only(effects, FireFinalAction) == []
        assert w.state is S.RESTARTING
        w.restart_due_now()
        w.started(200 + n, ready=True)
    effects = w.exited(T0 + retry, "exit status 1", clean=False)
    assert kinds(effects) == [RecordFault, KillLeftovers, Emit, FireFinalAction]
    assert effects[-1] == FireFinalAction(faults_in_window=retry + 1)
    emit = effects[2]
    assert isinstance(emit, Emit)
    assert (emit.kind, emit.severity) == ("threshold", "critical")
    assert f"{retry + 1} faults exceed the threshold of {retry} in 1 h" in emit.message
    assert only(effects, ScheduleRestart) == []
    assert w.state is S.ESCALATED
    assert w.restarts == retry


def test_faults_further_apart_than_the_window_never_escalate() -> None:
    w = running(retry=1, hours=1)
    for n in range(10):
        effects = w.exited(T0 + n * HOUR, "exit status 1", clean=False)
        assert only(effects, FireFinalAction) == []
        assert w.fault_times == [T0 + n * HOUR]  # the older one aged out exactly at /H
        w.restart_due_now()
        w.started(300 + n, ready=True)
    assert w.restarts == 10


def test_without_hours_faults_never_age_out() -> None:
    w = running(retry=1)
    w.exited(T0, "exit status 1", clean=False)
    w.restart_due_now()
    w.started(101, ready=True)
    effects = w.exited(T0 + 365 * 24 * HOUR, "exit status 1", clean=False)
    assert effects[-1] == FireFinalAction(2)
    assert state_of(w) is S.ESCALATED


def test_the_watch_hour_scales_the_window() -> None:
    inside = running(retry=1, hours=2, hour=1.0)
    inside.exited(T0, "x", clean=False)
    inside.restart_due_now()
    inside.started(101, ready=True)
    assert inside.exited(T0 + 1.5, "x", clean=False)[-1] == FireFinalAction(2)

    outside = running(retry=1, hours=2, hour=1.0)
    outside.exited(T0, "x", clean=False)
    outside.restart_due_now()
    outside.started(101, ready=True)
    assert outside.exited(T0 + 2.0, "x", clean=False)[-1] == ScheduleRestart(0)
    assert outside.fault_times == [T0 + 2.0]
    assert outside.faults_in_window(T0 + 2.0) == 1
    assert outside.faults_in_window(T0 + 4.0) == 0


def test_a_fault_from_before_a_clock_step_back_still_counts() -> None:
    w = running(retry=1, hours=1)
    w.exited(T0 + 5 * HOUR, "x", clean=False)
    w.restart_due_now()
    w.started(101, ready=True)
    # The wall clock was stepped back five hours: the first fault now lies in the future.
    effects = w.exited(T0, "x", clean=False)
    assert effects[-1] == FireFinalAction(2)


def test_faults_in_window_reads_the_history() -> None:
    w = running(retry=5, hours=1)
    w.exited(T0, "x", clean=False)
    assert w.faults_in_window(T0) == 1
    assert w.faults_in_window(T0 + HOUR - 1) == 1
    assert w.faults_in_window(T0 + HOUR) == 0


# --- a fault without /R ---------------------------------------------------------------------


@pytest.mark.parametrize(("clean", "final"), [(True, S.STOPPED), (False, S.FAILED)])
def test_without_retry_the_end_is_logged_and_nothing_restarts(
    clean: bool, final: WatchState
) -> None:
    w = running(pid=55, retry=None)
    effects = w.exited(T0, "exit status 0" if clean else "killed by SIGKILL", clean=clean)
    assert kinds(effects) == [RecordFault, KillLeftovers, Emit]
    assert effects[1] == KillLeftovers(55)
    emit = effects[2]
    assert isinstance(emit, Emit)
    assert (emit.kind, emit.severity) == ("fault", "warning")
    assert w.state is final
    assert w.restart_due is None
    with pytest.raises(InvalidTransition):
        w.restart_due_now()
    assert w.restarts == 0


def test_without_retry_a_failed_start_is_failed() -> None:
    w = make(retry=None)
    effects = w.start_failed(T0, "cannot start: no such file")
    assert kinds(effects) == [RecordFault, Emit]
    assert w.state is S.FAILED


# --- other faults ---------------------------------------------------------------------------


def test_start_failed_counts_as_a_fault() -> None:
    w = make(retry=1, interval=3)
    effects = w.start_failed(T0, "cannot start: permission denied")
    assert kinds(effects) == [RecordFault, Emit, ScheduleRestart]  # no pid, nothing left over
    assert effects[0] == RecordFault(T0, "cannot start: permission denied")
    assert effects[-1] == ScheduleRestart(3)
    assert w.state is S.RESTARTING
    assert w.fault_times == [T0]
    w.restart_due_now()
    effects = w.start_failed(T0 + 3, "cannot start: permission denied")
    assert effects[-1] == FireFinalAction(2)
    assert state_of(w) is S.ESCALATED


def test_start_failed_after_a_pid_was_reported_forgets_it() -> None:
    w = make()
    w.started(77, ready=False)
    w.start_failed(T0, "readiness: died")
    assert w.pid is None


def test_exit_while_starting_is_a_fault() -> None:
    w = make(retry=2)
    w.started(77, ready=False)
    effects = w.exited(T0, "exit status 2", clean=False)
    assert kinds(effects) == [RecordFault, KillLeftovers, Emit, ScheduleRestart]
    assert w.state is S.RESTARTING


def test_recover_script_missed_is_a_fault() -> None:
    w = running(retry=2, script=True, interval=4)
    w.exited(T0, "exit status 1", clean=False)
    assert kinds(w.restart_due_now())[-1] is RunRecoverScript
    effects = w.recover_script_missed(T0 + 4, "the start script (RECOVER) did not start it")
    assert effects[0] == RecordFault(T0 + 4, "the start script (RECOVER) did not start it")
    assert only(effects, KillLeftovers) == []
    assert effects[-1] == ScheduleRestart(4)
    assert w.state is S.RESTARTING
    assert w.fault_times == [T0, T0 + 4]
    w.restart_due_now()
    effects = w.recover_script_missed(T0 + 8, "missed again")
    assert effects[-1] == FireFinalAction(3)
    assert state_of(w) is S.ESCALATED


FAULT_INPUTS: dict[str, Callable[[Watch, float], list[Effect]]] = {
    "exited": lambda w, now: w.exited(now, "d", clean=False),
    "exited_clean": lambda w, now: w.exited(now, "d", clean=True),
    "start_failed": lambda w, now: w.start_failed(now, "d"),
    "recover_script_missed": lambda w, now: w.recover_script_missed(now, "d"),
}


@pytest.mark.parametrize("retry", [None, 1, 3])
@pytest.mark.parametrize("name", sorted(FAULT_INPUTS))
def test_record_fault_comes_before_any_action(name: str, retry: int | None) -> None:
    # From the first fault up to the one over the threshold.
    for prior_faults in range((retry or 0) + 1):
        w = make(retry=retry, script=True)
        for n in range(prior_faults):
            w.start_failed(T0 + n, "d")
            w.restart_due_now()
        if name.startswith("exited"):
            w.started(9, ready=False)
        effects = FAULT_INPUTS[name](w, T0 + 10)
        assert effects[0] == RecordFault(T0 + 10, "d")
        assert len(only(effects, RecordFault)) == 1
        assert len(only(effects, Emit)) == 1
        actions = only(effects, ScheduleRestart) + only(effects, FireFinalAction)
        assert len(actions) == (0 if retry is None else 1)
        if actions:
            assert effects[-1] == actions[0]


# --- armkill --------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, 40, 3600])
def test_kill_a_running_target_stops_it(timeout: int) -> None:
    w = running(pid=100)
    effects = w.kill(leave_running=False, timeout=timeout)
    assert effects == [StopTarget(timeout)]
    assert w.state is S.STOPPING
    assert w.pid == 100


def test_kill_a_starting_target_with_a_pid_stops_it() -> None:
    w = make()
    w.started(100, ready=False)
    assert w.kill(leave_running=False, timeout=40) == [StopTarget(40)]
    assert w.state is S.STOPPING


def test_kill_leave_running_forgets_without_stopping() -> None:
    w = running(pid=100)
    effects = w.kill(leave_running=True, timeout=40)
    assert kinds(effects) == [Emit, Forget]
    assert effects[-1] == Forget(leave_running=True)
    assert only(effects, StopTarget) == []
    emit = effects[0]
    assert isinstance(emit, Emit)
    assert emit.kind == "watch_end"
    assert "target left running" in emit.message
    assert w.state is not S.STOPPING


def test_kill_while_restarting_cancels_the_restart() -> None:
    w = running(retry=3, interval=60)
    w.exited(T0, "exit status 1", clean=False)
    effects = w.kill(leave_running=False, timeout=40)
    assert kinds(effects) == [CancelRestart, Emit, Forget]
    assert effects[-1] == Forget(leave_running=False)
    assert only(effects, StopTarget) == []
    assert "left running" not in effects[1].message  # type: ignore[union-attr]


def test_kill_leave_running_while_restarting_also_cancels() -> None:
    w = running(retry=3, interval=60)
    w.exited(T0, "exit status 1", clean=False)
    effects = w.kill(leave_running=True, timeout=0)
    assert kinds(effects) == [CancelRestart, Emit, Forget]
    # Nothing runs, so nothing is said to be left running.
    assert "left running" not in effects[1].message  # type: ignore[union-attr]


def test_kill_before_any_process_just_forgets() -> None:
    w = make()
    assert kinds(w.kill(leave_running=False, timeout=40)) == [Emit, Forget]


@pytest.mark.parametrize("end", TERMINAL)
def test_kill_an_ended_watch_forgets_it(end: WatchState) -> None:
    w = running(retry=None if end is not S.ESCALATED else 1)
    if end is S.ESCALATED:
        w.exited(T0, "x", clean=False)
        w.restart_due_now()
        w.started(101, ready=True)
    w.exited(T0 + 1, "x", clean=end is S.STOPPED)
    assert w.state is end
    effects = w.kill(leave_running=False, timeout=40)
    assert kinds(effects) == [Emit, Forget]
    assert only(effects, CancelRestart) == []


def test_exit_while_stopping_is_not_a_fault() -> None:
    w = running(pid=100, retry=1)
    w.kill(leave_running=False, timeout=40)
    assert w.exited(T0, "killed by SIGTERM", clean=False) == []
    assert w.fault_times == []
    assert w.state is S.STOPPING
    assert w.pid is None
    effects = w.stop_finished("killed by SIGTERM")
    assert kinds(effects) == [Emit, Forget]
    assert effects[-1] == Forget(leave_running=False)
    emit = effects[0]
    assert isinstance(emit, Emit)
    assert emit.kind == "watch_stopped"
    assert "killed by SIGTERM" in emit.message
    assert w.restarts == 0


def test_stop_finished_without_seeing_the_exit() -> None:
    # SIGKILL after /T: the supervisor reports the end of the group directly.
    w = running(pid=100)
    w.kill(leave_running=False, timeout=1)
    effects = w.stop_finished("killed with SIGKILL after 1 s")
    assert effects[-1] == Forget()
    assert w.pid is None


def test_a_second_kill_while_stopping_is_refused() -> None:
    w = running()
    w.kill(leave_running=False, timeout=40)
    with pytest.raises(InvalidTransition, match="already being stopped"):
        w.kill(leave_running=False, timeout=40)
    with pytest.raises(InvalidTransition):
        w.kill(leave_running=True, timeout=40)
    assert w.state is S.STOPPING


# --- inputs a state does not accept ---------------------------------------------------------


def at(state: WatchState) -> Watch:
    """A watch driven into `state` through its inputs."""
    if state is S.STARTING:
        return make()
    if state is S.RUNNING:
        return running()
    if state is S.RESTARTING:
        w = running(retry=3)
        w.exited(T0, "x", clean=False)
        return w
    if state is S.STOPPING:
        w = running()
        w.kill(leave_running=False, timeout=40)
        return w
    if state is S.STOPPED:
        w = running(retry=None)
        w.exited(T0, "x", clean=True)
        return w
    if state is S.FAILED:
        w = running(retry=None)
        w.exited(T0, "x", clean=False)
        return w
    w = running(retry=1)
    w.exited(T0, "x", clean=False)
    w.restart_due_now()
    w.started(101, ready=True)
    w.exited(T0 + 1, "x", clean=False)
    return w


@pytest.mark.parametrize("state", list(WatchState))
def test_at_reaches_each_state(state: WatchState) -> None:
    assert at(state).state is state


INPUTS: dict[str, Callable[[Watch], list[Effect]]] = {
    "started": lambda w: w.started(999, ready=True),
    "became_ready": lambda w: w.became_ready(),
    "exited": lambda w: w.exited(T0 + 100, "x", clean=False),
    "start_failed": lambda w: w.start_failed(T0 + 100, "x"),
    "restart_due_now": lambda w: w.restart_due_now(),
    "stop_finished": lambda w: w.stop_finished("x"),
    "recover_script_missed": lambda w: w.recover_script_missed(T0 + 100, "x"),
    "kill": lambda w: w.kill(leave_running=False, timeout=40),
}

ACCEPTS: dict[WatchState, set[str]] = {
    # became_ready needs a process: at(STARTING) has none yet (see the test below).
    S.STARTING: {
        "started",
        "exited",
        "start_failed",
        "recover_script_missed",
        "kill",
    },
    S.RUNNING: {"exited", "kill"},
    S.RESTARTING: {"restart_due_now", "kill"},
    S.STOPPING: {"exited", "stop_finished"},
    S.STOPPED: {"kill"},
    S.FAILED: {"kill"},
    S.ESCALATED: {"kill"},
}


@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("state", list(WatchState))
def test_inputs_a_state_does_not_accept_raise(state: WatchState, name: str) -> None:
    w = at(state)
    before = (w.state, w.pid, w.restarts, list(w.fault_times), w.restart_due, w.detail)
    if name in ACCEPTS[state]:
        INPUTS[name](w)  # must not raise
        return
    with pytest.raises(InvalidTransition):
        INPUTS[name](w)
    # A refused input changes nothing.
    assert (w.state, w.pid, w.restarts, list(w.fault_times), w.restart_due, w.detail) == before


def test_restart_due_while_running_is_refused() -> None:
    w = running()
    with pytest.raises(InvalidTransition, match="restart_due_now"):
        w.restart_due_now()
    assert w.restarts == 0


def test_invalid_transition_is_a_runtime_error() -> None:
    assert issubclass(InvalidTransition, RuntimeError)


# --- the transition table -------------------------------------------------------------------


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(WatchState)
    for targets in TRANSITIONS.values():
        assert targets <= set(WatchState)


def test_every_state_is_reachable_from_starting() -> None:
    seen = {S.STARTING}
    todo = [S.STARTING]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(WatchState)


@pytest.mark.parametrize("state", TERMINAL)
def test_terminal_states_leave_only_by_an_operators_restart(state: WatchState) -> None:
    assert TRANSITIONS[state] == frozenset({S.RESTARTING})


def test_stopping_has_no_exits() -> None:
    assert TRANSITIONS[S.STOPPING] == frozenset()


def test_terminal_states_are_not_alive_and_the_others_are() -> None:
    for state in WatchState:
        assert state.is_alive == (state not in TERMINAL)


def test_restarting_only_leads_back_to_starting_or_to_armkill() -> None:
    assert TRANSITIONS[S.RESTARTING] == frozenset({S.STARTING, S.STOPPING})


def test_no_state_leads_to_itself() -> None:
    for state, targets in TRANSITIONS.items():
        assert state not in targets


# --- random sequences of inputs -------------------------------------------------------------


class WatchMachine(RuleBasedStateMachine):
    """Drive one watch with random inputs at a clock that only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.w = make()
        self.now = T0
        self.forgotten = False
        self.restarts = 0
        self.all_faults: list[float] = []

    @initialize(
        retry=st.none() | st.integers(1, 9),
        hours=st.none() | st.integers(1, 24),
        interval=st.integers(0, 3600),
        script=st.booleans(),
        hour=st.sampled_from([1.0, 10.0, float(HOUR)]),
    )
    def setup(
        self, retry: int | None, hours: int | None, interval: int, script: bool, hour: float
    ) -> None:
        if retry is None:
            hours, interval, script = None, 0, False
        self.w = make(retry=retry, hours=hours, interval=interval, script=script, hour=hour)

    def drive(self, step: Callable[[], list[Effect]], leave_running: bool = False) -> None:
        before = self.w.state
        faults_before = len(self.all_faults)
        try:
            effects = step()
        except InvalidTransition:
            assert self.w.state is before
            return
        after = self.w.state
        if after is not before:
            assert after in TRANSITIONS[before]
        faults = only(effects, RecordFault)
        if faults:
            assert len(faults) == 1
            assert effects[0] == faults[0]
            self.all_faults.append(self.now)
            self.check_decision(effects)
        else:
            assert len(self.all_faults) == faults_before
        if only(effects, ScheduleRestart):
            assert after is S.RESTARTING
            assert effects[-1] == ScheduleRestart(self.w.request.policy.interval)
        if only(effects, FireFinalAction):
            assert after is S.ESCALATED
        if only(effects, StopTarget):
            assert after is S.STOPPING
        if only(effects, CancelRestart):
            assert before is S.RESTARTING
            assert effects[0] == CancelRestart()
        if only(effects, Forget):
            assert len(only(effects, Forget)) == 1
            assert effects[-1] == Forget(leave_running=leave_running)
            self.forgotten = True

    def check_decision(self, effects: list[Effect]) -> None:
        """The machine's choice equals the policy's, computed from every fault it saw."""
        p = self.w.request.policy
        start = policy.window_start(self.now, p, self.w.hour)
        count = sum(1 for t in self.all_faults if start is None or t > start)
        if p.retry is None:
            assert only(effects, ScheduleRestart) == only(effects, FireFinalAction) == []
        elif count > p.retry:
            assert effects[-1] == FireFinalAction(count)
        else:
            assert effects[-1] == ScheduleRestart(p.interval)

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 5.0, 60.0, 3600.0, 86400.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: not self.forgotten)
    @rule(pid=st.integers(2, 4_194_304), ready=st.booleans())
    def started(self, pid: int, ready: bool) -> None:
        self.drive(lambda: self.w.started(pid, ready))

    # The supervisor sends became_ready only for a started process, and recover_script_missed
    # only when the RECOVER script left the watch without one (supervisor.py checks `pid`):
    # the other combinations are not inputs it can produce.
    @precondition(lambda self: not self.forgotten)
    @rule()
    def became_ready(self) -> None:
        if self.w.state is S.STARTING and self.w.pid is None:
            return
        self.drive(self.w.became_ready)

    @precondition(lambda self: not self.forgotten)
    @rule(clean=st.booleans())
    def exited(self, clean: bool) -> None:
        self.drive(lambda: self.w.exited(self.now, "exit", clean))

    @precondition(lambda self: not self.forgotten)
    @rule()
    def start_failed(self) -> None:
        self.drive(lambda: self.w.start_failed(self.now, "cannot start"))

    @precondition(lambda self: not self.forgotten)
    @rule()
    def restart_due_now(self) -> None:
        self.drive(self.w.restart_due_now)

    @precondition(lambda self: not self.forgotten)
    @rule()
    def recover_script_missed(self) -> None:
        if self.w.state is S.STARTING and self.w.pid is not None:
            return
        self.drive(lambda: self.w.recover_script_missed(self.now, "missed"))

    @precondition(lambda self: not self.forgotten)
    @rule()
    def stop_finished(self) -> None:
        self.drive(lambda: self.w.stop_finished("stopped"))

    @precondition(lambda self: not self.forgotten)
    @rule(leave_running=st.booleans(), timeout=st.integers(0, 3600))
    def kill(self, leave_running: bool, timeout: int) -> None:
        self.drive(lambda: self.w.kill(leave_running, timeout), leave_running)

    @invariant()
    def restarts_never_decrease(self) -> None:
        assert self.w.restarts >= self.restarts
        self.restarts = self.w.restarts

    @invariant()
    def fault_times_sorted_and_within_the_window(self) -> None:
        times = self.w.fault_times
        assert times == sorted(times)
        if times:
            # Kept faults are exactly those of the window at the latest fault.
            latest = times[-1]
            start = policy.window_start(latest, self.w.request.policy, self.w.hour)
            assert all(start is None or t > start for t in times)
            kept = [t for t in self.all_faults if start is None or t > start]
            assert times == kept

    @invariant()
    def threshold_bounds_the_window(self) -> None:
        retry = self.w.request.policy.retry
        if retry is not None:
            assert len(self.w.fault_times) <= retry + 1
            assert (len(self.w.fault_times) == retry + 1) == (self.w.state is S.ESCALATED)

    @invariant()
    def no_pid_when_nothing_runs(self) -> None:
        if self.w.state in (S.RESTARTING, *TERMINAL):
            assert self.w.pid is None
        if self.w.state is S.RUNNING:
            assert self.w.pid is not None

    @invariant()
    def restart_due_only_while_restarting(self) -> None:
        if self.w.state is S.RESTARTING:
            assert self.w.restart_due is not None
        else:
            assert self.w.restart_due is None


WatchMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestWatchMachine = WatchMachine.TestCase


def test_became_ready_needs_a_process() -> None:
    w = at(S.STARTING)
    assert w.pid is None
    with pytest.raises(InvalidTransition):
        w.became_ready()
    w.started(4321, ready=False)
    w.became_ready()
    assert w.state is S.RUNNING and w.pid == 4321


# --- configuration faults (issue 13) --------------------------------------------------------


def test_classify_end_the_rule() -> None:
    from rearm.watch import EndCause, classify_end

    crash, config = EndCause.CRASH, EndCause.CONFIGURATION
    # The program could not be run at all: always the configuration.
    assert classify_end(could_not_start=True, exit_status=None, uptime=None, ran=True) is config
    # Killed by a signal: a crash, however early.
    assert classify_end(could_not_start=False, exit_status=None, uptime=0.1, ran=False) is crash
    # Exited by itself within the grace time of every start so far: the configuration.
    assert classify_end(could_not_start=False, exit_status=1, uptime=0.2, ran=False) is config
    assert classify_end(could_not_start=False, exit_status=0, uptime=0.2, ran=False) is config
    # ...but once a start has lasted, an early exit is the service failing: it counts.
    assert classify_end(could_not_start=False, exit_status=1, uptime=0.2, ran=True) is crash
    # "cannot run" statuses of a shell or env(1), early: the configuration even after a run.
    for status in (125, 126, 127):
        assert (
            classify_end(could_not_start=False, exit_status=status, uptime=0.2, ran=True) is config
        )
    # A start that lasted the grace time is a crash whatever the status; unknown uptime too.
    assert classify_end(could_not_start=False, exit_status=127, uptime=1.0, ran=False) is crash
    assert classify_end(could_not_start=False, exit_status=1, uptime=None, ran=False) is crash


def _fresh(retry: int = 1) -> Watch:
    w = make(retry=retry)
    w.ran = False  # as armload makes it
    return w


def test_a_program_that_cannot_run_fails_the_watch_without_counting() -> None:
    w = running(retry=1)
    w.exited(T0, "killed by SIGKILL", clean=False)  # a crash: counted, restarted
    assert w.fault_times == [T0] and w.state is S.RESTARTING
    w.restart_due_now()
    effects = w.start_failed(T0 + 1, "cannot start: /opt/app: no such file", cannot_run=True)
    assert only(effects, RecordFault) == [] and only(effects, FireFinalAction) == []
    [emit] = only(effects, Emit)
    assert (emit.kind, emit.severity) == ("config_fault", "critical")
    assert "not counted" in emit.message and "rearm restart WEB" in emit.message
    assert w.state is S.FAILED and w.fault_times == [T0]
    assert w.detail == "configuration fault: cannot start: /opt/app: no such file"


def test_an_exit_within_the_grace_of_every_start_is_the_configuration() -> None:
    w = _fresh(retry=1)
    w.started(10, ready=True, now=T0)
    effects = w.exited(T0 + 0.3, "exit status 1", clean=False, exit_status=1)
    assert kinds(effects) == [KillLeftovers, Emit] and w.state is S.FAILED
    assert w.fault_times == []


def test_an_exit_after_a_lasting_start_counts() -> None:
    w = _fresh(retry=1)
    w.started(10, ready=True, now=T0)
    w.exited(T0 + 5, "exit status 1", clean=False, exit_status=1)  # ran 5 s: a crash
    assert w.state is S.RESTARTING and w.fault_times == [T0 + 5]
    w.restart_due_now()
    w.started(11, ready=True, now=T0 + 6)
    effects = w.exited(T0 + 6.2, "exit status 1", clean=False, exit_status=1)  # early, but ran
    assert only(effects, FireFinalAction) == [FireFinalAction(2)]
    assert state_of(w) is S.ESCALATED


def test_a_ready_answer_is_a_lasting_start() -> None:
    w = _fresh(retry=1)
    w.started(10, ready=False, now=T0)
    w.became_ready()
    w.exited(T0 + 0.5, "exit status 3", clean=False, exit_status=3)
    assert w.state is S.RESTARTING and len(w.fault_times) == 1


def test_without_retry_a_configuration_fault_ends_as_before() -> None:
    w = make(retry=None)
    w.ran = False
    w.started(10, ready=True, now=T0)
    effects = w.exited(T0 + 0.1, "exit status 3", clean=False, exit_status=3)
    assert kinds(effects) == [RecordFault, KillLeftovers, Emit] and w.state is S.FAILED


# --- rearm restart ---------------------------------------------------------------------------


def test_restart_of_a_running_watch_stops_then_starts_without_a_fault() -> None:
    w = running(pid=100, retry=1)
    effects = w.restart_requested(40)
    assert kinds(effects) == [Emit, StopTarget] and w.state is S.RESTARTING and w.pid == 100
    assert w.exited(T0, "killed by SIGTERM", clean=False) == []  # its end is the stop, not a fault
    assert w.pid is None and w.fault_times == []
    assert kinds(w.restart_due_now())[-1] is Spawn
    assert w.state is S.STARTING and w.restarts == 1
    with pytest.raises(InvalidTransition):
        w.restart_requested(40)  # starting, no process yet


@pytest.mark.parametrize("ended", ["clean", "failed", "escalated"])
def test_restart_of_an_ended_watch_starts_it_again(ended: str) -> None:
    w = running(pid=100, retry=None if ended != "escalated" else 1)
    if ended == "escalated":
        w.exited(T0, "x", clean=False)
        w.restart_due_now()
        w.started(101, ready=True)
        w.exited(T0 + 1, "x", clean=False)
    else:
        w.exited(T0, "x", clean=ended == "clean")
    assert w.state in TERMINAL
    effects = w.restart_requested(40)
    assert kinds(effects)[-1] is Spawn and w.state is S.STARTING


def test_restart_while_waiting_out_the_interval_restarts_now() -> None:
    w = running(pid=100, retry=2, interval=60)
    w.exited(T0, "x", clean=False)
    effects = w.restart_requested(40)
    assert kinds(effects) == [Emit, CancelRestart, Emit, Spawn] and w.state is S.STARTING
