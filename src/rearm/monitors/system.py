"""`system`: the machine's disk space and inodes on a path, memory available, swap, load (sraw).

    [[monitors]]
    name = "data-disk"
    kind = "system"
    path = "/var/lib/postgresql"   # the file system to look at (default "/")
    free_min = "5%"                # error below: a size ("10G") or a percentage
    free_warning = "15%"           # warning below
    inodes_free_min = "5%"
    memory_available_min = "256M"  # MemAvailable of /proc/meminfo
    swap_used_max = "50%"          # error above
    load_max = 20                  # the one-minute load average, error above (also load_warning)

Each limit is optional, at least one is given. statvfs runs in a thread (monitors.offload): on
a hung network file system it hangs that thread, and the probe says it is stuck.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import (
    Options,
    Probe,
    ProbeEnv,
    Result,
    Status,
    Target,
    error,
    ok,
    warning,
)
from rearm.monitors.offload import Offload, Stuck
from rearm.validate import Table

# metric -> (error key, warning key, lower bound?)
LIMITS = {
    "free": ("free_min", "free_warning", True),
    "inodes_free": ("inodes_free_min", "inodes_free_warning", True),
    "memory_available": ("memory_available_min", "memory_available_warning", True),
    "swap_used": ("swap_used_max", "swap_used_warning", False),
}
Limit = tuple[float, bool]  # (value, is a percentage)


@dataclass(frozen=True)
class SystemOptions(Options):
    path: str = "/"
    limits: dict[str, tuple[Limit | None, Limit | None]] | None = None  # metric -> (error, warn)
    load: tuple[float | None, float | None] = (None, None)  # (error, warning)

    def build(self, env: ProbeEnv) -> Probe:
        return SystemProbe(self)

    def describe(self) -> str:
        names = sorted(self.limits or {}) + ["load"] * (self.load != (None, None))
        return f"system {self.path}: {', '.join(names)}"


def parse(t: Table) -> SystemOptions:
    limits: dict[str, tuple[Limit | None, Limit | None]] = {}
    for metric, (error_key, warning_key, _) in LIMITS.items():
        pair = (keys.size_or_percent(t, error_key), keys.size_or_percent(t, warning_key))
        if pair != (None, None):
            limits[metric] = pair
    load = (keys.number(t, "load_max", 0, 100_000), keys.number(t, "load_warning", 0, 100_000))
    if not limits and load == (None, None):
        raise t.error(
            "free_min",
            "give at least one limit: "
            + ", ".join([k for k, _, _ in LIMITS.values()] + ["load_max"]),
        )
    path = keys.abs_path(t, "path") or "/"
    if t.has("path") and not {"free", "inodes_free"} & set(limits):
        raise t.error("path", "is the file system of free_* and inodes_free_*: give one of those")
    return SystemOptions(path=path, limits=limits, load=load)


@dataclass(frozen=True)
class Reading:
    values: dict[str, tuple[float, float]]  # metric -> (amount, total)
    load: float


def read(path: str, metrics: set[str]) -> Reading:
    values: dict[str, tuple[float, float]] = {}
    if {"free", "inodes_free"} & metrics:
        st = os.statvfs(path)
        values["free"] = (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
        values["inodes_free"] = (float(st.f_favail), float(st.f_files))
    if {"memory_available", "swap_used"} & metrics:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                info[name] = float(rest.split()[0]) * 1024
        values["memory_available"] = (info["MemAvailable"], info["MemTotal"])
        values["swap_used"] = (info["SwapTotal"] - info["SwapFree"], info["SwapTotal"])
    return Reading(values, os.getloadavg()[0])


class SystemProbe:
    def __init__(self, options: SystemOptions) -> None:
        self.options = options
        self.step = "reading the system's figures"
        self._offload = Offload("system")

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.options
        limits = o.limits or {}
        try:
            reading = await self._offload.run(lambda: read(o.path, set(limits)))
        except Stuck as e:
            return error(f"{o.path}: {e}")
        except OSError as e:
            return error(f"{o.path}: {e.strerror}")
        worst, notes, shown = Status.OK, [], []
        for metric, (error_limit, warning_limit) in limits.items():
            amount, total = reading.values[metric]
            lower = LIMITS[metric][2]
            text = _show(metric, amount, total)
            shown.append(text)
            for level, limit in ((Status.ERROR, error_limit), (Status.WARNING, warning_limit)):
                if limit is None:
                    continue
                bound = limit[0] * total / 100 if limit[1] else limit[0]
                if (amount < bound) if lower else (amount > bound):
                    side = "below" if lower else "above"
                    what = "" if level is Status.ERROR else "the warning "
                    notes.append(f"{text}: {side} {what}{_limit_text(metric, limit)}")
                    worst = level if worst is not Status.ERROR else worst
                    break
        load_error, load_warning = o.load
        if load_error is not None or load_warning is not None:
            shown.append(f"load {reading.load:.2f}")
            if load_error is not None and reading.load > load_error:
                notes.append(f"load {reading.load:.2f} above {load_error:g}")
                worst = Status.ERROR
            elif load_warning is not None and reading.load > load_warning:
                notes.append(f"load {reading.load:.2f} above the warning {load_warning:g}")
                worst = worst if worst is Status.ERROR else Status.WARNING
        if worst is Status.OK:
            return ok(", ".join(shown))
        return error("; ".join(notes)) if worst is Status.ERROR else warning("; ".join(notes))

    async def close(self) -> None:
        return None


def _show(metric: str, amount: float, total: float) -> str:
    share = f" ({amount / total * 100:.1f}%)" if total else ""
    value = f"{amount:.0f}" if metric == "inodes_free" else keys.human_size(amount)
    return f"{metric.replace('_', ' ')} {value}{share}"


def _limit_text(metric: str, limit: Limit) -> str:
    if limit[1]:
        return f"{limit[0]:g}%"
    return f"{limit[0]:.0f}" if metric == "inodes_free" else keys.human_size(limit[0])
