"""`heartbeat`: the service itself says it is alive, at least once per period.

    [[monitors]]
    name = "app-alive"
    kind = "heartbeat"
    target = "APP"
    period = 30          # error when the last heartbeat is older than this (seconds)
    warning = 20         # optional: a warning when it is older than this
    start_delay = 60     # the first heartbeat may take this long after a (re)start

The service runs `rearm notify WATCHID` (a shell script, cron), or sends `WATCHDOG=1` as
systemd's sd_notify does, on the NOTIFY_SOCKET rearm gives it (monitors.notify): a program
written for systemd's WatchdogSec= works unchanged. `WATCHDOG=trigger` asks for recovery at
once. The probe itself only compares times; checking every half period by default.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error
from rearm.monitors.beats import Beats, judge
from rearm.validate import Table


@dataclass(frozen=True)
class HeartbeatOptions(Options):
    period: float
    warn_after: float | None = None

    @property
    def default_failures(self) -> int:
        return 1  # a missed period is the fault: the period is the tolerance

    @property
    def default_interval(self) -> float:
        return min(10.0, self.period / 2)

    @property
    def max_interval(self) -> tuple[float, str] | None:
        return self.period, "period"

    def build(self, env: ProbeEnv) -> Probe:
        return HeartbeatProbe(self, env.beats)

    def describe(self) -> str:
        return f"heartbeat every {self.period:g} s"


def parse(t: Table) -> HeartbeatOptions:
    period = keys.seconds(t, "period", None, low=0.1, high=86400)
    if period is None:
        raise t.error("period", "is required: the seconds within which a heartbeat must come")
    warn_after = keys.seconds(t, "warning", None, low=0, high=86400, above=True)
    if warn_after is not None and warn_after >= period:
        raise keys.bad(t, "warning", t.raw("warning"), f"must be below period ({period:g})")
    return HeartbeatOptions(period=period, warn_after=warn_after)


class HeartbeatProbe:
    def __init__(self, options: HeartbeatOptions, beats: Beats) -> None:
        self.options = options
        self.beats = beats
        self.step = ""

    async def probe(self, target: Target, deadline: float) -> Result:
        why = self.beats.take_trigger(target.name)
        if why is not None:
            return error(f"the service asked for recovery ({why})")
        now = asyncio.get_running_loop().time()
        return judge(
            now=now,
            since=target.started if target.started is not None else now,
            last_beat=self.beats.last(target.name),
            period=self.options.period,
            warn_after=self.options.warn_after,
        )

    async def close(self) -> None:
        return None
