"""The one protocol every monitor kind meets, and the values that cross it.

A kind is one module (rearm/monitors/KIND.py) with a `parse(table) -> Options` that reads the
kind's own keys of a `[[monitors]]` table (pure), and an Options class whose `build(env)` makes
the Probe. The scheduler calls `await probe.probe(target, deadline)` once per interval and gets a
Result; it never waits past the deadline (it cancels the probe there), and a probe that started
processes ends them in its own clean-up, without waiting for them.

Statuses follow the Nagios/monitoring-plugins convention, the common language of checks:
OK, WARNING, ERROR (Nagios' CRITICAL) and UNKNOWN (the check itself could not tell).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rearm.monitors.beats import Beats


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"  # Nagios' CRITICAL
    UNKNOWN = "unknown"

    @classmethod
    def from_nagios(cls, code: int) -> Status | None:
        """0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; None for any other exit status."""
        return _NAGIOS.get(code)


_NAGIOS = {0: Status.OK, 1: Status.WARNING, 2: Status.ERROR, 3: Status.UNKNOWN}
MESSAGE_MAX = 300  # a result's message is one line of at most this many characters


@dataclass(frozen=True)
class Result:
    """What one probe found. `latency` is seconds from the probe's start to its answer; the
    scheduler measures it when the probe leaves it None."""

    status: Status
    message: str
    latency: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", one_line(self.message))


def ok(message: str) -> Result:
    return Result(Status.OK, message)


def warning(message: str) -> Result:
    return Result(Status.WARNING, message)


def error(message: str) -> Result:
    return Result(Status.ERROR, message)


def unknown(message: str) -> Result:
    return Result(Status.UNKNOWN, message)


def one_line(text: str) -> str:
    """Messages come from programs and servers: one printable line, bounded."""
    flat = " ".join(text.split())
    flat = "".join(ch if ch.isprintable() else "?" for ch in flat)
    return flat if len(flat) <= MESSAGE_MAX else flat[: MESSAGE_MAX - 1] + "…"


@dataclass(frozen=True)
class Target:
    """What a monitor watches over: a watch (by ID) or a group. `pid` is the watch's main
    process while it runs (None for a group, or a watch that is not running)."""

    name: str
    is_group: bool = False
    pid: int | None = None
    # When the target last started, or monitoring began (the event loop's clock).
    started: float | None = None


class Probe(Protocol):
    """One configured check. A probe object runs one probe at a time (the scheduler sees to
    it), so it may keep state between probes (a counter's last value, a stuck child)."""

    # What the probe is doing now ("connecting", "reading the reply"...): shown after
    # "timed out" when the scheduler cancels it at its deadline.
    step: str

    async def probe(self, target: Target, deadline: float) -> Result:
        """Check once. `deadline` is on the event loop's clock (time.monotonic)."""
        ...

    async def close(self) -> None:
        """Release what the probe holds (a long-running checker, sockets). Never blocks long."""
        ...


@dataclass
class ProbeEnv:
    """What probes share, given to every Options.build: the heartbeat board."""

    beats: Beats


@dataclass(frozen=True)
class Options:
    """A kind's own settings, read by its parse(). The traits below drive the common checks
    and the scheduler; a kind overrides those that apply to it."""

    @property
    def continuous(self) -> bool:
        """The probe lasts one whole interval by design (the `async` form of exec: OK at the
        end of the interval while its checker runs, ERROR as soon as the checker ends)."""
        return False

    @property
    def needs_pid(self) -> bool:
        """The probe looks at the target's processes (resource): the target must be a watch."""
        return False

    @property
    def spawns(self) -> bool:
        """The probe starts processes: it takes one of the scheduler's process slots."""
        return False

    @property
    def default_failures(self) -> int:
        """Consecutive failures before error when the monitor does not say (`failures`)."""
        return 3

    @property
    def default_interval(self) -> float:
        return 10.0

    @property
    def max_interval(self) -> tuple[float, str] | None:
        """An upper bound for `interval` and the key that sets it (heartbeat: its period)."""
        return None

    def build(self, env: ProbeEnv) -> Probe:
        raise NotImplementedError

    def describe(self) -> str:
        """A few words for `rearm monitor show`: 'tcp 127.0.0.1:5432'."""
        raise NotImplementedError
