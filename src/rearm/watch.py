"""One watch's state machine: named states, a table of transitions; effects returned, not done.

The supervisor feeds it what happened (the process started, exited, a timer fired, an operator
asked) and carries out the effects it returns, in order: persisting first, then acting. Nothing
here touches a process, a file or a clock; `now` is always passed in.

    STARTING --ready--> RUNNING --exit--> RESTARTING --due--> STARTING ...
        \\                 \\------exit--> ESCALATED (over /R: final action)
         \\                 \\-----exit--> STOPPED | FAILED (no /R)
          '--armkill--> STOPPING --exit--> (forgotten)
    rearm restart: RUNNING | STOPPED | FAILED | ESCALATED --> RESTARTING (the target stopped,
                   nothing counted) --> STARTING

Why a target ended is decided in one place, `classify_end`: a crash of a service that had
started counts toward /R; a fault of the configuration (the program cannot be run, or it exits
by itself within STARTUP_GRACE of every start) stops the watch as FAILED with a critical event
and counts nothing, so a typo never walks /R into a reboot of a healthy server.
"""

from __future__ import annotations

import enum
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


# --- why a target ended ---------------------------------------------------------------------
# A start lasts this long before an exit of the target's own counts as a crash (systemd's
# "start" vs "main process exited" distinction; the guide's services start within a second).
STARTUP_GRACE = 1.0
# Exit statuses that mean "the program could not be run" (POSIX shells and env(1): 126 found
# but not executable, 127 not found; env -C: 125 could not change directory).
CANNOT_RUN_STATUSES = frozenset({125, 126, 127})


class EndCause(enum.Enum):
    CRASH = "crash"  # counts toward /R
    CONFIGURATION = "configuration"  # the watch fails; nothing is counted


def classify_end(
    *, could_not_start: bool, exit_status: int | None, uptime: float | None, ran: bool
) -> EndCause:
    """Why a target ended: the rule of SPEC §4 "configuration faults" (docs/spec-additions.md).

    `could_not_start`: the start itself failed (program missing or not executable, unknown
    user, definition missing or invalid). `exit_status`: the status it exited with by itself
    (None: killed by a signal, or unknown). `uptime`: seconds since this start (None: unknown,
    e.g. adopted). `ran`: some start of this watch has lasted (ready, or up STARTUP_GRACE s).
    """
    if could_not_start:
        return EndCause.CONFIGURATION
    if exit_status is None or uptime is None or uptime >= STARTUP_GRACE:
        return EndCause.CRASH
    if exit_status in CANNOT_RUN_STATUSES or not ran:
        return EndCause.CONFIGURATION
    return EndCause.CRASH


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
    # Some start of this armload has lasted (classify_end). Not persisted: a watch rebuilt
    # after a daemon restart is taken to have run, so its exits count as before.
    ran: bool = True
    started_at: policy.Time | None = None  # this start's moment (None: adopted or unknown)

    # --- inputs -------------------------------------------------------------------------------
    def started(self, pid: int, ready: bool, now: policy.Time | None = None) -> list[Effect]:
        """The process runs (spawned at `now`, or adopted: None); `ready` when nothing more is
        awaited."""
        self._expect("started", S.STARTING)
        self.pid = pid
        self.detail = None
        self.started_at = now
        if now is None:
            self.ran = True  # it ran before rearm saw it
        if ready:
            return self._to(S.RUNNING)
        return []

    def became_ready(self) -> list[Effect]:
        self._expect("became_ready", S.STARTING)
        if self.pid is None:
            raise InvalidTransition(f"{self.watch_id}: ready without a running process")
        self.ran = True  # it answered: it started
        return self._to(S.RUNNING)

    def exited(
        self,
        now: policy.Time,
        detail: str,
        clean: bool,
        seen: bool = True,
        exit_status: int | None = None,
    ) -> list[Effect]:
        """The main process ended. In STOPPING that is the armkill completing; else a fault.

        `seen` is False when the end was not witnessed (it happened while no daemon ran): the
        pid may since belong to someone else, so its process group is not touched.
        `exit_status`: the status it exited with by itself (None: a signal, or unknown).
        """
        self._expect("exited", S.STARTING, S.RUNNING, S.STOPPING, S.RESTARTING)
        if self.state is S.RESTARTING and self.pid is None:
            raise InvalidTransition(f"{self.watch_id}: exited while waiting to restart")
        pid, self.pid = self.pid, None
        if self.state in (S.STOPPING, S.RESTARTING):
            # armkill or `rearm restart` ending it: stop_finished() or restart_due_now() next,
            # once the whole group is gone.
            self.detail = detail
            return []
        uptime = None if self.started_at is None else -policy.until(now, self.started_at)
        if uptime is not None and uptime >= STARTUP_GRACE:
            self.ran = True
        cause = classify_end(
            could_not_start=False, exit_status=exit_status, uptime=uptime, ran=self.ran
        )
        return self._fault(now, detail, clean, leftovers_of=pid if seen else None, cause=cause)

    def start_failed(
        self,
        now: policy.Time,
        detail: str,
        *,
        cannot_run: bool = False,
        exit_status: int | None = None,
    ) -> list[Effect]:
        """The start failed. `cannot_run`: the program could not be run at all (missing, not
        executable, unknown user, no definition...). Else a forking daemon's start command
        exited (with `exit_status`), or its pid file named no live process in time."""
        self._expect("start_failed", S.STARTING)
        self.pid = None
        cause = classify_end(
            could_not_start=cannot_run, exit_status=exit_status, uptime=0.0, ran=self.ran
        )
        return self._fault(now, detail, clean=False, leftovers_of=None, cause=cause)

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

    def restart_requested(self, timeout: int) -> list[Effect]:
        """`rearm restart`: stop the target (like armkill, SIGKILL after `timeout` s) and start
        it again. An operator's act, not a fault: nothing is counted. A watch that has ended
        (stopped, failed, escalated) is started again; one waiting out /INT restarts now."""
        if self.state is S.STOPPING or (self.state is S.STARTING and self.pid is None):
            raise InvalidTransition(f"{self.watch_id} is {self.state.value}: try again shortly")
        if self.state is S.RESTARTING and self.pid is not None:
            raise InvalidTransition(f"{self.watch_id} is already being restarted")
        waiting = self.state is S.RESTARTING
        effects: list[Effect] = [
            Emit("watch_restart", "info", f"{self.watch_id}: restart asked by an operator")
        ]
        if waiting:
            effects.append(CancelRestart())
        else:
            effects += self._to(S.RESTARTING)
        if self.pid is not None:
            effects.append(StopTarget(timeout))  # then restart_due_now(), once it is gone
            return effects
        return effects + self.restart_due_now()

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
        if self.state is S.RESTARTING and self.pid is None:
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
        self,
        now: policy.Time,
        detail: str,
        clean: bool,
        leftovers_of: int | None,
        cause: EndCause = EndCause.CRASH,
    ) -> list[Effect]:
        retry = self.request.policy.retry
        if cause is EndCause.CONFIGURATION and retry is not None:
            # Not a crash of the service: restarting cannot help and counting it would walk
            # /R into the final action. The watch fails and says why, loudly.
            self.detail = f"configuration fault: {detail}"
            effects: list[Effect] = []
            if leftovers_of is not None:
                effects.append(KillLeftovers(leftovers_of))
            effects.append(
                Emit(
                    "config_fault",
                    "critical",
                    f"{self.watch_id} cannot run: {detail}. A fault of its configuration, "
                    f"not of the service: not restarted, not counted toward /R {retry}, no "
                    f"final action. Fix it, then 'rearm restart {self.watch_id}'",
                )
            )
            return effects + self._to(S.FAILED)
        self.detail = detail
        self.fault_times = policy.prune(
            now, [*self.fault_times, now], self.request.policy, self.hour
        )
        effects = [RecordFault(now, detail)]
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
    # RESTARTING -> STOPPING: armkill while `rearm restart` stops the target.
    S.RESTARTING: frozenset({S.STARTING, S.STOPPING}),
    S.STOPPING: frozenset(),
    # An ended watch starts again only when an operator asks (`rearm restart`).
    S.STOPPED: frozenset({S.RESTARTING}),
    S.FAILED: frozenset({S.RESTARTING}),
    S.ESCALATED: frozenset({S.RESTARTING}),
}
