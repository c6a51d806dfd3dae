"""The reboot-loop counter (SPEC §6, issue 13): what the guard counts, shown and cleared.

The guard turns a reboot or panic into stopgroup once `max_reboots` of them fell within
`reboot_window` seconds. What it counts:
- reboots and panics recorded as final actions (the store's final_actions table), performed or
  drilled;
- drill and real ones apart: a drill counts toward the drill guard only, a real one toward the
  real guard only -- rehearsals never hold back a real reboot, and a drill sees its own loop;
- only those after the last clear (`rearm reboots --clear`, the original's reboot-count
  control command, kept as the store's meta key CLEARED_KEY: the id of the last row cleared).

Pure: rows and the clock in, counts out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rearm import policy

CLEARED_KEY = "reboots_cleared_after"  # final_actions id; "<id> <wall time>"
MACHINE_ACTIONS = ("reboot", "panic")


@dataclass(frozen=True)
class Reboot:
    """One reboot or panic, as the store recorded it."""

    id: int
    when: policy.Time
    action: str
    requested: str
    watch: str | None
    group: str | None
    drill: bool

    def cause(self) -> str:
        why = f"watch {self.watch}" if self.watch else "no watch"
        if self.group:
            why += f" of group {self.group}"
        if self.requested != self.action:
            why += f" ({self.requested} asked)"
        return why


def parse_cleared(value: str | None) -> tuple[int, float | None]:
    """The meta value of CLEARED_KEY: (last id cleared, when), (0, None) when never."""
    if not value:
        return 0, None
    first, _, rest = value.partition(" ")
    try:
        return int(first), float(rest) if rest else None
    except ValueError:
        return 0, None


def counted(rows: Iterable[Reboot], cleared_after: int, drill: bool) -> list[Reboot]:
    """The rows the guard of this mode counts (not yet aged out is decided by `within`)."""
    return [r for r in rows if r.id > cleared_after and r.drill == drill]


def count(
    now: policy.Time, rows: Iterable[Reboot], cleared_after: int, drill: bool, window: int
) -> int:
    return sum(policy.within(now, [r.when for r in counted(rows, cleared_after, drill)], window))


def summary(
    now: policy.Time,
    rows: list[Reboot],
    cleared: tuple[int, float | None],
    drill: bool,
    max_reboots: int,
    window: int,
) -> dict[str, Any]:
    """The counter as status JSON and `rearm reboots --json` show it."""
    cleared_after, cleared_at = cleared
    real = count(now, rows, cleared_after, False, window)
    drilled = count(now, rows, cleared_after, True, window)
    current = drilled if drill else real
    return {
        "count": current,  # what the guard counts now (this mode's)
        "max": max_reboots,
        "window": window,
        "mode": "drill" if drill else "real",
        "real": real,
        "drill_count": drilled,
        "guard": current >= max_reboots,  # the next reboot/panic becomes stopgroup
        "cleared": cleared_at,
    }


def listing(
    now: policy.Time, rows: list[Reboot], cleared_after: int, drill: bool, window: int
) -> list[dict[str, Any]]:
    """Each reboot with its cause, and whether the guard of this mode counts it now."""
    mine = {r.id for r in counted(rows, cleared_after, drill)}
    inside = policy.within(now, [r.when for r in rows], window)
    return [
        {
            "id": r.id,
            "wall": policy.wall(r.when),
            "action": r.action,
            "requested": r.requested,
            "watch": r.watch,
            "group": r.group,
            "drill": r.drill,
            "cause": r.cause(),
            "counted": r.id in mine and within,
        }
        for r, within in zip(rows, inside, strict=True)
    ]
