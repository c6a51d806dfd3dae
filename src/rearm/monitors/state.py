"""One monitor's state machine: named states, a table of transitions, an event per change.

Pure: the scheduler feeds it what happened (the target started or stopped, a probe's result,
an operator's suspend/resume/clear) with the time, and gets back the events to record. Nothing
here touches a clock, a socket or a process.

    OFFLINE --start--> NORMAL --warning--> WARNING
                         |  ^                 |
          N-th failure   |  '------ok---------'
                         v                    |  N-th failure
                       ERROR <----------------'
                         |--ok--> NORMAL (the failure count is cleared, as the original does)
    any --suspend--> SUSPENDED --resume--> NORMAL (target active) | OFFLINE (target idle)
    NORMAL/WARNING/ERROR --stop--> OFFLINE

`failures` counts the failed probes since the last success, the last (re)start of the target,
or the last clear (a WARNING or UNKNOWN result neither counts nor ends the run). When it
reaches the monitor's threshold the monitor enters ERROR
with a *fault* event: the daemon runs the monitor's recovery. In ERROR, further failures do not
fault again until the count starts over (a restart of the target, a clear, a success): so a
restart that did not help faults again after N more failures (and counts toward /R), while an
`alert`-only monitor stuck in error does not repeat its alert every interval.

Results of a probe that began before a start, stop, suspend, resume or clear are stale: each of
those moves the `epoch`, and a result carrying an older epoch is ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rearm.monitors.base import Result, Status


class MonitorState(enum.StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    ERROR = "error"
    SUSPENDED = "suspended"  # by an operator (maintenance): no probes, no faults
    OFFLINE = "offline"  # not monitoring: the target is not running (timing "active")

    @property
    def probing(self) -> bool:
        return self in (MonitorState.NORMAL, MonitorState.WARNING, MonitorState.ERROR)


class Input(enum.Enum):
    START = "start"  # the target started (or, timing "always", the monitor was enabled)
    STOP = "stop"  # the target stopped (timing "active"), or the monitor was disabled
    OK = "ok"
    WARN = "warning"  # a WARNING or UNKNOWN result: shown, alerted, never a fault
    FAIL = "failure"  # an ERROR result below the threshold
    FAIL_LIMIT = "failure limit"  # the ERROR result that makes `failures` reach the threshold
    SUSPEND = "suspend"
    RESUME_ACTIVE = "resume (target active)"
    RESUME_IDLE = "resume (target idle)"
    CLEAR = "clear"


S, In = MonitorState, Input
_ACTIVE = (S.NORMAL, S.WARNING, S.ERROR)

# (state, input) -> next state. A pair that is missing is ignored (a late result while
# suspended, a stop while offline...). The table is the whole behaviour: tests walk it.
TRANSITIONS: dict[tuple[MonitorState, Input], MonitorState] = {
    (S.OFFLINE, In.START): S.NORMAL,
    (S.OFFLINE, In.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, In.RESUME_ACTIVE): S.NORMAL,
    (S.SUSPENDED, In.RESUME_IDLE): S.OFFLINE,
    (S.SUSPENDED, In.CLEAR): S.SUSPENDED,
    **{(s, In.START): s for s in _ACTIVE},  # a restart of the target: the count starts over
    **{(s, In.STOP): S.OFFLINE for s in _ACTIVE},
    **{(s, In.SUSPEND): S.SUSPENDED for s in _ACTIVE},
    **{(s, In.OK): S.NORMAL for s in _ACTIVE},
    **{(s, In.WARN): S.WARNING for s in _ACTIVE},
    **{(s, In.FAIL): s for s in _ACTIVE},
    **{(s, In.FAIL_LIMIT): S.ERROR for s in _ACTIVE},
    **{(s, In.CLEAR): S.NORMAL for s in _ACTIVE},
}

SEVERITY = {
    S.NORMAL: "info",
    S.WARNING: "warning",
    S.ERROR: "error",
    S.SUSPENDED: "info",
    S.OFFLINE: "info",
}


@dataclass(frozen=True)
class Event:
    """A change to record (and alert on). `fault`: the daemon must run the recovery."""

    kind: str  # monitor_normal, monitor_warning, monitor_error, monitor_suspended, ...
    severity: str
    message: str
    state: MonitorState
    previous: MonitorState
    failures: int
    fault: bool = False


@dataclass
class Monitor:
    """The state of one monitor. Mutated only through the methods below."""

    name: str
    threshold: int  # consecutive failures that make an error (>= 1)
    start_delay: float = 0.0
    state: MonitorState = MonitorState.OFFLINE
    failures: int = 0
    epoch: int = 0
    probe_after: float = 0.0  # no probe before this time (the start delay)
    since: float = 0.0  # when the current state was entered
    last: Result | None = None

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")

    # --- queries ---------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        """Whether a probe may run now."""
        return self.state.probing and now >= self.probe_after

    # --- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Event]:
        """The target started (again): probes begin after the start delay, the count over."""
        self.probe_after = now + self.start_delay
        note = f" (first probe after the {self.start_delay:g} s start delay)" * (
            self.start_delay > 0
        )
        return self._apply(now, In.START, f"monitoring started{note}", reset=True)

    def stop(self, now: float) -> list[Event]:
        return self._apply(now, In.STOP, "target stopped: monitoring paused", reset=True)

    def suspend(self, now: float) -> list[Event]:
        return self._apply(now, In.SUSPEND, "suspended by an operator", reset=True)

    def resume(self, now: float, target_active: bool) -> list[Event]:
        self.probe_after = max(now, self.probe_after)  # a start delay still running counts
        what = In.RESUME_ACTIVE if target_active else In.RESUME_IDLE
        note = "" if target_active else " (target not running: offline)"
        return self._apply(now, what, f"resumed by an operator{note}", reset=True)

    def clear(self, now: float) -> list[Event]:
        had = self.failures
        before = self.state
        events = self._apply(now, In.CLEAR, f"cleared by an operator ({had} failures)", reset=True)
        if not events and had and before != S.OFFLINE:
            # No change of state, but a count was dropped: the operator's act is on record.
            events.append(self._event(before, f"cleared by an operator ({had} failures)"))
        return events

    def result(self, now: float, result: Result, epoch: int) -> list[Event]:
        """A probe's result. Ignored when stale (older epoch) or when not probing."""
        if epoch != self.epoch or not self.state.probing:
            return []
        self.last = result
        if result.status is Status.OK:
            return self._apply(now, In.OK, _recovered(self, result), reset=True)
        if result.status in (Status.WARNING, Status.UNKNOWN):
            # A check that warns, or cannot tell, is no evidence of a fault; it is not one of
            # the consecutive failures either, but it does not end a run of them.
            note = "the check cannot tell: " if result.status is Status.UNKNOWN else ""
            return self._apply(now, In.WARN, note + result.message)
        self.failures += 1
        if self.failures == self.threshold:
            if self.state is S.ERROR:
                message = (
                    f"still failing after the target's restart ({self.failures} consecutive "
                    f"failures): {result.message}"
                )
            else:
                message = f"{self.failures} consecutive failures: {result.message}"
            return self._apply(now, In.FAIL_LIMIT, message, fault=True)
        return self._apply(now, In.FAIL, "")

    # --- the one place a transition happens -----------------------------------------------
    def _apply(
        self, now: float, what: Input, message: str, *, reset: bool = False, fault: bool = False
    ) -> list[Event]:
        before = self.state
        after = TRANSITIONS.get((before, what))
        if after is None:
            return []
        if what not in (In.OK, In.WARN, In.FAIL, In.FAIL_LIMIT):
            self.epoch += 1  # a probe already running reports to a past that is gone
        if reset:
            self.failures = 0
        if what in (In.STOP, In.SUSPEND):
            self.last = None
        self.state = after
        if after is before and not fault:
            return []
        self.since = now if after is not before else self.since
        return [self._event(before, message, fault)]

    def _event(self, previous: MonitorState, message: str, fault: bool = False) -> Event:
        return Event(
            kind=f"monitor_{self.state.value}"
            if previous is not self.state or fault
            else "monitor_cleared",
            severity=SEVERITY[self.state],
            message=f"monitor '{self.name}' {self.state.value}: {message}",
            state=self.state,
            previous=previous,
            failures=self.failures,
            fault=fault,
        )


def _recovered(m: Monitor, result: Result) -> str:
    if m.state is S.ERROR:
        return f"recovered, failure count cleared: {result.message}"
    return result.message
