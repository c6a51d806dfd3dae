"""Heartbeats: when each target last said it is alive, and whether that is recent enough.

Pure: times are passed in (the event loop's clock). The daemon records a beat when a service
runs `rearm notify WATCHID`, or sends `WATCHDOG=1` on the NOTIFY_SOCKET rearm gave it
(monitors.notify); the heartbeat monitor's probe asks `judge` at each interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rearm.monitors.base import Result, error, ok, warning


def key_of(name: str) -> str:
    """Watch IDs are case-insensitive (model.watch_key): beats are kept by the upper-case form."""
    return name.upper()


@dataclass
class Beats:
    _last: dict[str, float] = field(default_factory=dict)
    _triggered: dict[str, str] = field(default_factory=dict)

    def beat(self, name: str, now: float) -> None:
        self._last[key_of(name)] = now

    def trigger(self, name: str, why: str) -> None:
        """`WATCHDOG=trigger`: the service asks for its own recovery, now."""
        self._triggered[key_of(name)] = why

    def last(self, name: str) -> float | None:
        return self._last.get(key_of(name))

    def take_trigger(self, name: str) -> str | None:
        return self._triggered.pop(key_of(name), None)

    def forget(self, name: str) -> None:
        self._last.pop(key_of(name), None)
        self._triggered.pop(key_of(name), None)


def judge(
    *,
    now: float,
    since: float,
    last_beat: float | None,
    period: float,
    warn_after: float | None = None,
) -> Result:
    """Whether the last beat is recent enough. `since`: when this wait began (the target's
    start, or monitoring's); a beat from before it belongs to a previous run and is ignored."""
    if last_beat is None or last_beat < since:
        waited = now - since
        if waited > period:
            return error(f"no heartbeat in {waited:.1f} s since the start (period {period:g} s)")
        return ok(f"waiting for the first heartbeat ({waited:.1f} s)")
    age = now - last_beat
    if age > period:
        return error(f"last heartbeat {age:.1f} s ago (period {period:g} s)")
    if warn_after is not None and age > warn_after:
        return warning(f"last heartbeat {age:.1f} s ago (warning after {warn_after:g} s)")
    return ok(f"last heartbeat {age:.1f} s ago")
