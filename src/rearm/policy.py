"""The restart policy (SPEC §4), as a pure function of the clock and the fault history.

Rule: at a fault, count this watch's faults within the last /H hours, this one included.
If that count is at most /R, restart after /INT seconds; above /R, fire the final action.
Without /R nothing is restarted; without /H every fault since the watch began counts.

Two clocks (DESIGN: "delays use the monotonic clock, the wall clock only for the persisted /H
window"). A persisted moment is a `Stamp`: the wall clock, which means the same thing after a
reboot but can be stepped either way at any time, and (boot id, CLOCK_BOOTTIME), which never
jumps but starts again at zero at every boot. How old a stamp is (`ages`):
- same boot: the boot clock alone. A wall-clock step -- NTP, an operator, a bad RTC -- changes
  nothing: an old fault does not count forever, a new one does not vanish.
- an earlier boot: the wall clock, but never less than this boot's uptime (that boot ended
  before this one began), so a clock set back at a reboot cannot keep old faults counting once
  this boot has run for longer than the window. Within one earlier boot the boot clock keeps
  its stamps in their true order and distance.
- unknown boot (a bare float: records from before stamps, and the pure tests of the rule): the
  wall clock alone. A fault stamped in the future -- the clock was stepped back since -- still
  counts: when the clock lies, erring towards the final action beats restarting forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from rearm.model import RestartPolicy

SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class Stamp:
    """A moment on both clocks: `wall` (time.time()) and `mono` (CLOCK_BOOTTIME of `boot`).

    `boot` is "" and `mono` None when only the wall clock is known.
    """

    wall: float
    boot: str = ""
    mono: float | None = None

    def plus(self, seconds: float) -> Stamp:
        return Stamp(
            self.wall + seconds, self.boot, None if self.mono is None else self.mono + seconds
        )


# A moment: a Stamp, or a bare wall-clock reading (boot unknown).
Time = float | Stamp
T = TypeVar("T", float, Stamp, Time)


def stamp(t: Time) -> Stamp:
    return t if isinstance(t, Stamp) else Stamp(float(t))


def wall(t: Time) -> float:
    return t.wall if isinstance(t, Stamp) else float(t)


def later(t: Time, seconds: float) -> Time:
    """`seconds` after `t`, in the same form."""
    return t.plus(seconds) if isinstance(t, Stamp) else t + seconds


def _same_boot(a: Stamp, b: Stamp) -> bool:
    return bool(a.boot) and a.boot == b.boot and a.mono is not None and b.mono is not None


def until(now: Time, due: Time) -> float:
    """Seconds from `now` to `due` (negative once it is past), by the best clock both share."""
    n, d = stamp(now), stamp(due)
    if _same_boot(n, d):
        assert n.mono is not None and d.mono is not None
        return d.mono - n.mono
    return d.wall - n.wall


def ages(now: Time, times: Iterable[Time]) -> list[float]:
    """How long ago each of `times` was, at `now` (0 for a moment stamped in the future)."""
    n = stamp(now)
    stamps = [stamp(t) for t in times]
    # The newest moment seen of each earlier boot: the anchor its other moments are measured from.
    newest: dict[str, Stamp] = {}
    if n.boot and n.mono is not None:
        for s in stamps:
            if s.boot and s.boot != n.boot and s.mono is not None:
                seen = newest.get(s.boot)
                if seen is None or s.mono > (seen.mono or 0.0):
                    newest[s.boot] = s
    out = []
    for s in stamps:
        if _same_boot(n, s):
            assert n.mono is not None and s.mono is not None
            age = n.mono - s.mono
        elif s.boot in newest:
            last = newest[s.boot]
            assert n.mono is not None and s.mono is not None and last.mono is not None
            # That boot ended before this one began, n.mono seconds ago, whatever the wall says.
            age = max(n.wall - last.wall, n.mono) + (last.mono - s.mono)
        else:
            age = n.wall - s.wall
        out.append(max(age, 0.0))
    return out


def within(now: Time, times: Iterable[Time], seconds: float) -> list[bool]:
    """For each of `times`: does it fall within the last `seconds` at `now` (a half-open span:
    a moment exactly `seconds` old has aged out)?"""
    return [age < seconds for age in ages(now, times)]


def window_start(now: float, policy: RestartPolicy, hour: float = SECONDS_PER_HOUR) -> float | None:
    """The wall time after which faults still count, or None when every fault counts (no /H).

    `hour` is only ever shortened by the integration tests (see Supervisor.hour_seconds).
    """
    if policy.hours is None:
        return None
    return now - policy.hours * hour


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


def faults_in_window(
    now: Time, fault_times: Iterable[Time], policy: RestartPolicy, hour: float = SECONDS_PER_HOUR
) -> int:
    """How many of `fault_times` count against the threshold at time `now`."""
    if policy.hours is None:
        return sum(1 for _ in fault_times)
    return sum(within(now, fault_times, policy.hours * hour))


def decide(
    now: Time, fault_times: Iterable[Time], policy: RestartPolicy, hour: float = SECONDS_PER_HOUR
) -> Decision:
    """What to do about a fault at `now`; `fault_times` already includes this fault."""
    if policy.retry is None:
        return LetDie()
    count = faults_in_window(now, fault_times, policy, hour)
    if count > policy.retry:
        return Escalate(faults_in_window=count)
    return Restart(delay=policy.interval, via_script=policy.script, faults_in_window=count)


def prune(
    now: Time, fault_times: Iterable[T], policy: RestartPolicy, hour: float = SECONDS_PER_HOUR
) -> list[T]:
    """The fault times worth keeping: those that can still count now or later.

    Within one boot the boot clock only moves forward, so what has aged out stays out; and the
    newest stamp of an earlier boot is kept as long as any of that boot is (it anchors the rest),
    so pruning never changes what the kept stamps count for.
    """
    kept = list(fault_times)
    if policy.hours is None:
        return kept
    inside = within(now, kept, policy.hours * hour)
    return [t for t, counts in zip(kept, inside, strict=True) if counts]
