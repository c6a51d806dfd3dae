"""The restart policy (SPEC §4), as a pure function of the clock and the fault history.

Rule: at a fault, count this watch's faults within the last /H hours, this one included.
If that count is at most /R, restart after /INT seconds; above /R, fire the final action.
Without /R nothing is restarted; without /H every fault since the watch began counts.

Fault times are wall-clock seconds (they are persisted and must mean the same thing after a
reboot). A fault stamped in the future -- the clock was stepped back since -- still counts:
when the clock lies, erring towards the final action beats restarting a service forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rearm.model import RestartPolicy

SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class Restart:
    """Restart after `delay` seconds; through the group's start script when `via_script`."""

    delay: int
    via_script: bool
    faults_in_window: int


@dataclass(frozen=True)
class Escalate:
    """The threshold is exceeded: fire the final action."""

    faults_in_window: int


@dataclass(frozen=True)
class LetDie:
    """The watch has no /R: record the end, restart nothing, fire nothing."""


Decision = Restart | Escalate | LetDie


def window_start(now: float, policy: RestartPolicy, hour: float = SECONDS_PER_HOUR) -> float | None:
    """The time after which faults still count, or None when every fault counts (no /H).

    `hour` is only ever shortened by the integration tests (see Supervisor.hour_seconds).
    """
    if policy.hours is None:
        return None
    return now - policy.hours * hour


def faults_in_window(
    now: float, fault_times: Iterable[float], policy: RestartPolicy, hour: float = SECONDS_PER_HOUR
) -> int:
    """How many of `fault_times` count against the threshold at time `now`."""
    start = window_start(now, policy, hour)
    if start is None:
        return sum(1 for _ in fault_times)
    # A fault exactly /H hours old has aged out: "within the last /H hours" is a half-open span.
    return sum(1 for t in fault_times if t > start)


def decide(
    now: float, fault_times: Iterable[float], policy: RestartPolicy, hour: float = SECONDS_PER_HOUR
) -> Decision:
    """What to do about a fault at `now`; `fault_times` already includes this fault."""
    if policy.retry is None:
        return LetDie()
    count = faults_in_window(now, fault_times, policy, hour)
    if count > policy.retry:
        return Escalate(faults_in_window=count)
    return Restart(delay=policy.interval, via_script=policy.script, faults_in_window=count)


def prune(
    now: float, fault_times: Iterable[float], policy: RestartPolicy, hour: float = SECONDS_PER_HOUR
) -> list[float]:
    """The fault times worth keeping: those that can still count now or later."""
    start = window_start(now, policy, hour)
    if start is None:
        return list(fault_times)
    return [t for t in fault_times if t > start]
