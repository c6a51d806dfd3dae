"""Running monitors in a test: specs from TOML text, a scheduler whose events and results are
recorded, and waiting on what was recorded with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from rearm.monitors.base import Result, Status, Target
from rearm.monitors.config import MonitorSpec, monitors_from
from rearm.monitors.schedule import Change, Scheduler
from rearm.validate import Table


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def exec_spec(argv: list[str], *lines: str) -> MonitorSpec:
    """An exec monitor running argv, with more TOML lines (interval, timeout...)."""
    command = ", ".join(toml_str(a) for a in argv)
    return spec(f'kind = "exec"\ncommand = [{command}]\n' + "".join(f"{x}\n" for x in lines))


def spec(text: str, *, in_service: bool = True) -> MonitorSpec:
    """One monitor from the body of a [[monitors]] table (name defaults to "m")."""
    if "name =" not in text:
        text = 'name = "m"\n' + text
    [one] = monitors_from(
        Table(tomllib.loads("[[monitors]]\n" + text), "test.toml"), in_service=in_service
    )
    return one


async def probe_once(s: MonitorSpec, target: Target | None = None) -> Result:
    """One probe, run by a scheduler (so cancelled at the monitor's timeout)."""
    results: list[Result] = []
    async with running(s, target=target, spread=0) as rec:
        await rec.until(lambda: rec.results, timeout=s.timeout + 10)
        results = rec.results
    return results[0]


@dataclass
class Recorder:
    changes: list[Change] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    result_times: list[float] = field(default_factory=list)
    _signal: asyncio.Event = field(default_factory=asyncio.Event)
    scheduler: Scheduler | None = None

    def on_event(self, change: Change) -> None:
        self.changes.append(change)
        self._signal.set()

    def on_result(self, key: str, result: Result) -> None:
        self.results.append(result)
        self.result_times.append(asyncio.get_running_loop().time())
        self._signal.set()

    def kinds(self) -> list[str]:
        return [c.event.kind for c in self.changes]

    def states(self) -> list[str]:
        return [c.event.state.value for c in self.changes]

    def faults(self) -> list[Change]:
        return [c for c in self.changes if c.event.fault]

    def statuses(self) -> list[Status]:
        return [r.status for r in self.results]

    async def until(self, check: Callable[[], object], timeout: float, what: str = "") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or check}: events "
                    f"{[c.event.message for c in self.changes]}, results {self.results[-5:]}"
                )
            self._signal.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), left)


@asynccontextmanager
async def running(
    *specs: MonitorSpec,
    target: Target | None = None,
    started: bool = True,
    **options: float,
) -> AsyncIterator[Recorder]:
    """A scheduler running `specs` over one target (a watch "T" by default, already started)."""
    rec = Recorder()
    scheduler = Scheduler(rec.on_event, on_result=rec.on_result, **options)  # type: ignore[arg-type]
    rec.scheduler = scheduler
    t = target or Target("T")
    if started:
        scheduler.target_started(t.name, pid=t.pid, is_group=t.is_group)
    for s in specs:
        scheduler.add(s.name, s, t.name, is_group=t.is_group)
    try:
        yield rec
    finally:
        await scheduler.close()
