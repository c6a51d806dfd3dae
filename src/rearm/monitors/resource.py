"""`resource`: a watched process tree's memory, growth, files, threads, zombies and CPU (psrw).

    [[monitors]]
    name = "app-memory"
    kind = "resource"
    target = "APP"               # a watch: its main process and all its descendants
    rss_max = "2G"               # error above; each *_max may have a *_warning below it
    rss_warning = "1.5G"
    rss_growth_max = "200M"      # growth of the tree's RSS over growth_window: a leak
    growth_window = 600          # seconds (default 600)
    fds_max = 4000               # open file descriptors, summed over the tree
    threads_max = 500
    zombies_max = 10             # children that ended and were never reaped
    cpu_max = 95                 # percent of one core, averaged since the previous probe

RSS is summed over the processes of the tree, as monit does: pages the processes share (a
database's shared buffers) count once per process. /proc is read in a thread.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from rearm.monitors import keys, procfs
from rearm.monitors.base import (
    Options,
    Probe,
    ProbeEnv,
    Result,
    Status,
    Target,
    error,
    ok,
    unknown,
    warning,
)
from rearm.monitors.offload import Offload, Stuck
from rearm.validate import Table

# metric -> (how it is read from the table, how it is shown)
METRICS = ("rss", "rss_growth", "fds", "threads", "zombies", "cpu")
SIZES = ("rss", "rss_growth")


@dataclass(frozen=True)
class Limits:
    warning: float | None
    error: float | None


@dataclass(frozen=True)
class ResourceOptions(Options):
    limits: dict[str, Limits]
    growth_window: float = 600.0

    @property
    def needs_pid(self) -> bool:
        return True

    def build(self, env: ProbeEnv) -> Probe:
        return ResourceProbe(self)

    def describe(self) -> str:
        shown = []
        for metric, limit in self.limits.items():
            if limit.error is not None:
                shown.append(f"{metric} < {_show(metric, limit.error)}")
        return "resource " + ", ".join(shown)


def _show(metric: str, value: float) -> str:
    if metric in SIZES:
        return keys.human_size(value)
    if metric == "cpu":
        return f"{value:.0f}%"
    return f"{value:.0f}"


def parse(t: Table) -> ResourceOptions:
    limits = {}
    for metric in METRICS:
        pair = []
        for level in ("warning", "max"):
            key = f"{metric}_{level}"
            if metric in SIZES:
                value: float | None = keys.size(t, key)
            elif metric == "cpu":
                value = keys.number(t, key, 0, 100_000)
            else:
                count = keys.count(t, key, None, 0, 10_000_000)
                value = None if count is None else float(count)
            pair.append(value)
        low, high = pair
        if low is not None and high is not None and low >= high:
            raise keys.bad(
                t, f"{metric}_warning", t.raw(f"{metric}_warning"), f"must be below {metric}_max"
            )
        if low is not None or high is not None:
            limits[metric] = Limits(low, high)
    if not limits:
        raise t.error(
            "rss_max", "give at least one limit: " + ", ".join(f"{m}_max" for m in METRICS)
        )
    window = keys.seconds(t, "growth_window", 600.0, low=1, high=7 * 86400)
    assert window is not None
    if "rss_growth" not in limits and t.has("growth_window"):
        raise t.error("growth_window", "is the window of rss_growth_max: give that too")
    return ResourceOptions(limits=limits, growth_window=window)


@dataclass(frozen=True)
class Sample:
    at: float
    pid: int
    rss: int
    cpu_ticks: int
    threads: int
    zombies: int
    fds: int | None
    processes: int


def sample(root: int, count_fds: bool) -> Sample | None:
    members = procfs.tree(procfs.all_stats(), root)
    if not members:
        return None
    live = [m for m in members if m.state not in ("Z", "X")]
    fds = None
    if count_fds:
        fds = sum(procfs.fd_count(m.pid) or 0 for m in live)
    return Sample(
        at=time.monotonic(),
        pid=root,
        rss=sum(m.rss for m in live),
        cpu_ticks=sum(m.cpu_ticks for m in live),
        threads=sum(m.threads for m in live),
        zombies=len(members) - len(live),
        fds=fds,
        processes=len(live),
    )


class ResourceProbe:
    def __init__(self, options: ResourceOptions) -> None:
        self.options = options
        self.step = "reading /proc"
        self._offload = Offload("resource")
        self._history: collections.deque[Sample] = collections.deque()

    async def probe(self, target: Target, deadline: float) -> Result:
        if target.pid is None:
            return unknown(f"{target.name} is not running")
        count_fds = "fds" in self.options.limits
        pid = target.pid
        try:
            now = await self._offload.run(lambda: sample(pid, count_fds))
        except Stuck as e:
            return error(str(e))
        if now is None:
            return unknown(f"process {pid} of {target.name} is gone")
        if self._history and self._history[-1].pid != now.pid:
            self._history.clear()  # restarted: a new process tree, a new baseline
        values = self._values(now)
        self._remember(now)
        return self._verdict(values, now.processes)

    def _values(self, now: Sample) -> dict[str, float]:
        values: dict[str, float] = {
            "rss": now.rss,
            "threads": now.threads,
            "zombies": now.zombies,
        }
        if now.fds is not None:
            values["fds"] = now.fds
        if self._history:
            before = self._history[-1]
            elapsed = now.at - before.at
            if elapsed > 0:
                ticks = max(0, now.cpu_ticks - before.cpu_ticks)
                values["cpu"] = ticks / procfs.TICKS / elapsed * 100
        window = self.options.growth_window
        old = [s for s in self._history if now.at - s.at >= window]
        if old:
            values["rss_growth"] = now.rss - old[-1].rss
        return values

    def _remember(self, now: Sample) -> None:
        self._history.append(now)
        window = self.options.growth_window
        # Keep the newest sample at least a window old (the baseline) and all after it.
        while len(self._history) > 2 and now.at - self._history[1].at >= window:
            self._history.popleft()

    def _verdict(self, values: dict[str, float], processes: int) -> Result:
        worst = Status.OK
        notes = []
        for metric, limit in self.options.limits.items():
            value = values.get(metric)
            if value is None:
                continue  # cpu and growth need history
            shown = f"{metric} {_show(metric, value)}"
            if limit.error is not None and value > limit.error:
                worst = Status.ERROR
                notes.append(f"{shown} above {_show(metric, limit.error)}")
            elif limit.warning is not None and value > limit.warning:
                worst = Status.WARNING if worst is Status.OK else worst
                notes.append(f"{shown} above the warning {_show(metric, limit.warning)}")
        if worst is Status.OK:
            summary = ", ".join(
                f"{m} {_show(m, values[m])}" for m in self.options.limits if m in values
            )
            return ok(f"{processes} processes: {summary}")
        text = f"{processes} processes: " + "; ".join(notes)
        return error(text) if worst is Status.ERROR else warning(text)

    async def close(self) -> None:
        return None
