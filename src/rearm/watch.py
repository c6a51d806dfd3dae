"""One watch's state machine: named states, a table of transitions; effects returned, not done.

The supervisor feeds it what happened (the process started, exited, a timer fired, an operator
asked) and carries out the effects it returns, in order: persisting first, then acting. Nothing
here touches a process, a file or a clock; `now` is always passed in.

    STARTING --ready--> RUNNING --exit--> RESTARTING --due--> STARTING ...
        \\                 \\------exit--> ESCALATED (over /R: final action)
         \\                 \\-----exit--> STOPPED | FAILED (no /R)
          '--armkill--> STOPPING --exit--> (forgotten)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rearm import policy
from rearm.model import LoadRequest, WatchState


# --- effects: what the supervisor must do, in order ----------------------------------------
@dataclass(frozen=True)
class RecordFault:
    ts: policy.Time
    detail: str


@dataclass(frozen=True)
class Emit:
    kind: str
    severity: str
    message: str


@dataclass(frozen=True)
class ScheduleRestart:
    delay: int


@dataclass(frozen=True)
class CancelRestart:
    pass


@dataclass(frozen=True)
class Spawn:
    """Start the target again (a restart of the target alone)."""


@dataclass(frozen=True)
class RunRecoverScript:
    """/SCR: run the group's start script with REARM_EVENT=RECOVER."""


@dataclass(frozen=True)
class KillLeftovers:
    """The main process `pid` died: end what is left of the process group it led."""

    pid: int


@dataclass(frozen=True)
class FireFinalAction:
    faults_in_window: int


@dataclass(frozen=True)
class StopTarget:
    """armkill: stop command or signal; SIGKILL the whole group after `timeout` s (0: never)."""

    timeout: int


@dataclass(frozen=True)
class Forget:
    """The watch ends: remove it. `leave_running` is armkill /C."""

    leave_running: bool = False


Effect = (
    RecordFault
    | Emit
    | ScheduleRestart
    | CancelRestart
    | Spawn
    | RunRecoverScript
    | KillLeftovers
    | FireFinalAction
    | StopTarget
    | Forget
)


class InvalidTransition(RuntimeError):
    """An input that the current state does not accept (a bug, or a stale callback)."""


S = WatchState


@dataclass
class Watch:
    watch_id: str
    request: LoadRequest
    group: str | None
    instance: str
    state: WatchState = S.STARTING
    pid: int | None = None
    restarts: int = 0
    # Moments on both clocks (policy.Stamp) in the daemon; bare wall times in some tests.
    fault_times: list[policy.Time] = field(default_factory=list)
    detail: str | None = None
    restart_due: policy.Time | None = None  # persisted, so a restarted daemon keeps the delay
    hour: float = policy.SECONDS_PER_HOUR  # the length of /H's hour; shortened by tests only

    # --- inputs -------------------------------------------------------------------------------
    def started(self, pid: int, ready: bool) -> list[Effect]:
        """The process runs (spawned or adopted); `ready` when nothing more is awaited."""
        self._expect("started", S.STARTING)
        self.pid = pid
        self.detail = None
        if ready:
            return self._to(S.RUNNING)
        return []

    def became_ready(self) -> list[Effect]:
        self._expect("became_ready", S.STARTING)
        if self.pid is None:
            raise InvalidTransition(f"{self.watch_id}: ready without a running process")
        return self._to(S.RUNNING)

    def exited(self, now: policy.Time, detail: str, clean: bool, seen: bool = True) -> list[Effect]:
        """The main process ended. In STOPPING that is the armkill completing; else a fault.

        `seen` is False when the end was not witnessed (it happened while no daemon ran): the
        pid may since belong to someone else, so its process group is not touched.
        """
        self._expect("exited", S.STARTING, S.RUNNING, S.STOPPING)
        pid, self.pid = self.pid, None
        if self.state is S.STOPPING:
            self.detail = detail
            return []  # stop_finished() ends the watch once the whole group is gone
        return self._fault(now, detail, clean, leftovers_of=pid if seen else None)

    def start_failed(self, now: policy.Time, detail: str) -> list[Effect]:
        """Spawning failed (missing program, bad user...): a fault like any other end."""
        self._expect("start_failed", S.STARTING)
        self.pid = None
        return self._fault(now, detail, clean=False, leftovers_of=None)

    def restart_due_now(self) -> list[Effect]:
        self._expect("restart_due_now", S.RESTARTING)
        self.restart_due = None
        self.restarts += 1
        effects: list[Effect] = self._to(S.STARTING)
        how = " by running the start script (RECOVER)" if self.request.policy.script else ""
        effects.append(
            Emit("restart", "info", f"restarting {self.watch_id}{how} (restart {self.restarts})")
        )
        effects.append(RunRecoverScript() if self.request.policy.script else Spawn())
        return effects

    def stop_finished(self, detail: str) -> list[Effect]:
        """armkill is done: the target and its process group are gone."""
        self._expect("stop_finished", S.STOPPING)
        self.pid = None
        return [Emit("watch_stopped", "info", f"{self.watch_id} stopped: {detail}"), Forget()]

    def recover_script_missed(self, now: policy.Time, detail: str) -> list[Effect]:
        """/SCR: the RECOVER script ran but did not start this watch again."""
        self._expect("recover_script_missed", S.STARTING)
        self.pid = None
        return self._fault(now, detail, clean=False, leftovers_of=None)

    def kill(self, leave_running: bool, timeout: int) -> list[Effect]:
        """armkill. /C forgets the watch; else stop a live target, or just forget a dead one."""
        if self.state is S.STOPPING:
            raise InvalidTransition(f"{self.watch_id} is already being stopped")
        effects: list[Effect] = []
        if self.state is S.RESTARTING:
            effects.append(CancelRestart())
        if leave_running or self.pid is None:
            effects.append(
                Emit(
                    "watch_end",
                    "info",
                    f"{self.watch_id}: watch ended"
                    + (", target left running" if leave_running and self.pid else ""),
                )
            )
            effects.append(Forget(leave_running=leave_running))
            return effects
        effects += self._to(S.STOPPING)
        effects.append(StopTarget(timeout))
        return effects

    # --- derived ------------------------------------------------------------------------------
    def faults_in_window(self, now: policy.Time) -> int:
        return policy.faults_in_window(now, self.fault_times, self.request.policy, self.hour)

    # --- internals ----------------------------------------------------------------------------
    def _fault(
        self, now: policy.Time, detail: str, clean: bool, leftovers_of: int | None
    ) -> list[Effect]:
        self.detail = detail
        self.fault_times = policy.prune(
            now, [*self.fault_times, now], self.request.policy, self.hour
        )
        effects: list[Effect] = [RecordFault(now, detail)]
        if leftovers_of is not None:
            effects.append(KillLeftovers(leftovers_of))
        decision = policy.decide(now, self.fault_times, self.request.policy, self.hour)
        if isinstance(decision, policy.LetDie):
            effects.append(Emit("fault", "warning", f"{self.watch_id} ended: {detail}"))
            effects += self._to(S.STOPPED if clean else S.FAILED)
        elif isinstance(decision, policy.Restart):
            effects.append(
                Emit(
                    "fault",
                    "warning",
                    f"{self.watch_id} ended: {detail}; fault {decision.faults_in_window} of "
                    f"{self.request.policy.retry} allowed, restart in {decision.delay} s"
                    + (" by the start script" if decision.via_script else ""),
                )
            )
            self.restart_due = policy.later(now, decision.delay)
            effects += self._to(S.RESTARTING)
            effects.append(ScheduleRestart(decision.delay))
        else:
            effects.append(
                Emit(
                    "threshold",
                    "critical",
                    f"{self.watch_id} ended: {detail}; {decision.faults_in_window} faults exceed "
                    f"the threshold of {self.request.policy.retry}"
                    + (f" in {self.request.policy.hours} h" if self.request.policy.hours else ""),
                )
            )
            effects += self._to(S.ESCALATED)
            effects.append(FireFinalAction(decision.faults_in_window))
        return effects

    def _to(self, state: WatchState) -> list[Effect]:
        allowed = TRANSITIONS.get(self.state, frozenset())
        if state not in allowed:
            raise InvalidTransition(f"{self.watch_id}: {self.state} -> {state} is not allowed")
        self.state = state
        return []

    def _expect(self, what: str, *states: WatchState) -> None:
        if self.state not in states:
            raise InvalidTransition(f"{self.watch_id}: {what} in state {self.state}")


# The whole graph in one table: every state change above goes through it.
TRANSITIONS: dict[WatchState, frozenset[WatchState]] = {
    S.STARTING: frozenset({S.RUNNING, S.RESTARTING, S.ESCALATED, S.STOPPED, S.FAILED, S.STOPPING}),
    S.RUNNING: frozenset({S.RESTARTING, S.ESCALATED, S.STOPPED, S.FAILED, S.STOPPING}),
    S.RESTARTING: frozenset({S.STARTING}),
    S.STOPPING: frozenset(),
    S.STOPPED: frozenset(),
    S.FAILED: frozenset(),
    S.ESCALATED: frozenset(),
}
