"""Runs every monitor's probe at its interval on the event loop, and feeds the results to its
state machine; every event goes to one callback (the daemon turns a fault into recovery).

- One timer per monitor, no task while idle. A monitor's first probe comes a fixed share of
  SPREAD seconds (from a hash of its key) after its start delay, then every interval; due
  times are rounded up to a tick of TICK seconds. So 1,000 monitors started together (a group
  online, the daemon's start) spread over a second instead of firing at once, and wake the
  loop at most 1/TICK times a second instead of a thousand -- and a tick's batch (20 probes
  at 1,000 a second) starts in a millisecond or two, within the restart path's budget.
- A probe never blocks the loop or another monitor: it is a task, cancelled at its deadline;
  what it started (a process group) is killed in its own clean-up, without waiting.
- Bounded concurrency: at most `max_probes` probes run at once, of which at most
  `max_processes` start processes. A probe that finds no slot before its own timeout reports
  UNKNOWN (a warning, never a fault: the machine was busy, the service may be fine).
- A monitor's probes never overlap: one still running when the next is due makes it skip.

The daemon (later: daemon/monitors.py) calls `target_started`/`target_stopped` when a watch or
a group changes state, `suspend`/`resume`/`clear` for the operator, and reads `status`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rearm.monitors.base import Probe, ProbeEnv, Result, Status, Target
from rearm.monitors.beats import Beats
from rearm.monitors.config import MonitorSpec, Timing
from rearm.monitors.state import Event, Monitor, MonitorState

log = logging.getLogger("rearm.monitors")

TICK = 0.02
SPREAD = 1.0
HISTORY = 60  # results kept per monitor (the Manager's latency picture)
CONTINUOUS_GRACE = 1.0  # a continuous probe returns by itself at its deadline; this is a backstop


@dataclass(frozen=True)
class Change:
    """One event of one monitor, with what the daemon needs to act on it."""

    key: str
    spec: MonitorSpec
    target: Target
    event: Event


@dataclass(frozen=True)
class MonitorStatus:
    key: str
    spec: MonitorSpec
    target: Target
    state: MonitorState
    failures: int
    since: float
    last: Result | None
    probing: bool  # a probe is running right now
    history: tuple[tuple[float, Result], ...]


@dataclass
class _TargetState:
    name: str
    is_group: bool
    running: bool = False
    pid: int | None = None
    started: float | None = None


@dataclass
class _Entry:
    key: str
    spec: MonitorSpec
    probe: Probe
    machine: Monitor
    target: _TargetState
    phase: float
    handle: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    next_at: float = 0.0
    history: collections.deque[tuple[float, Result]] = field(
        default_factory=lambda: collections.deque(maxlen=HISTORY)
    )


class Scheduler:
    def __init__(
        self,
        on_event: Callable[[Change], None],
        *,
        on_result: Callable[[str, Result], None] | None = None,
        beats: Beats | None = None,
        max_probes: int = 256,
        max_processes: int = 32,
        tick: float = TICK,
        spread: float = SPREAD,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.env = ProbeEnv(beats if beats is not None else Beats())
        self._on_event = on_event
        self._on_result = on_result
        self._entries: dict[str, _Entry] = {}
        self._targets: dict[tuple[bool, str], _TargetState] = {}
        self._probe_slots = asyncio.Semaphore(max_probes)
        self._process_slots = asyncio.Semaphore(max_processes)
        self._running = 0
        self._tick = tick
        self._spread = spread
        self._closing: set[asyncio.Task[None]] = set()

    # --- configuration ----------------------------------------------------------------------
    def add(self, key: str, spec: MonitorSpec, target: str, *, is_group: bool = False) -> None:
        """Start managing monitor `key` over `target` (a watch ID, or a group's name)."""
        if key in self._entries:
            raise ValueError(f"monitor {key} is already scheduled")
        state = self._target(target, is_group)
        entry = _Entry(
            key=key,
            spec=spec,
            probe=spec.options.build(self.env),
            machine=Monitor(key, spec.failures, spec.start_delay),
            target=state,
            phase=zlib.crc32(key.encode()) / 2**32 * min(spec.interval, self._spread),
        )
        self._entries[key] = entry
        if spec.timing is Timing.ALWAYS or state.running:
            if state.started is None:
                state.started = self._loop.time()
            self._start(entry)

    def remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._halt(entry)

    def keys(self) -> list[str]:
        return list(self._entries)

    # --- what the daemon reports -----------------------------------------------------------
    def target_started(self, name: str, *, pid: int | None = None, is_group: bool = False) -> None:
        """A watch ran (or ran again: a restart), or a group came online."""
        state = self._target(name, is_group)
        state.running, state.pid, state.started = True, pid, self._loop.time()
        for entry in self._over(state):
            if entry.machine.state.probing:
                self._halt(entry)  # a probe against the old process is moot
            self._start(entry)

    def target_stopped(self, name: str, *, is_group: bool = False) -> None:
        """A watch ended (for good or before a restart), or a group went offline."""
        state = self._target(name, is_group)
        state.running, state.pid = False, None
        for entry in self._over(state):
            if entry.spec.timing is Timing.ACTIVE:
                self._halt(entry)
                self._emit(entry, entry.machine.stop(self._loop.time()))

    # --- the operator -------------------------------------------------------------------------
    def suspend(self, key: str) -> list[Event]:
        entry = self._entry(key)
        self._halt(entry)
        return self._emit(entry, entry.machine.suspend(self._loop.time()))

    def resume(self, key: str) -> list[Event]:
        entry = self._entry(key)
        active = entry.spec.timing is Timing.ALWAYS or entry.target.running
        events = self._emit(entry, entry.machine.resume(self._loop.time(), active))
        if entry.machine.state.probing:
            self._arm(entry, self._first_at(entry))
        return events

    def clear(self, key: str) -> list[Event]:
        entry = self._entry(key)
        return self._emit(entry, entry.machine.clear(self._loop.time()))

    def status(self, key: str) -> MonitorStatus:
        e = self._entry(key)
        return MonitorStatus(
            key=e.key,
            spec=e.spec,
            target=self._view(e),
            state=e.machine.state,
            failures=e.machine.failures,
            since=e.machine.since,
            last=e.machine.last,
            probing=e.task is not None,
            history=tuple(e.history),
        )

    @property
    def running(self) -> int:
        """Probes running now."""
        return self._running

    async def close(self) -> None:
        for entry in list(self._entries.values()):
            self._halt(entry)
        self._entries.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # --- inside ---------------------------------------------------------------------------------
    def _target(self, name: str, is_group: bool) -> _TargetState:
        tkey = (is_group, name if is_group else name.upper())
        state = self._targets.get(tkey)
        if state is None:
            state = self._targets[tkey] = _TargetState(name, is_group)
        return state

    def _over(self, state: _TargetState) -> list[_Entry]:
        return [e for e in self._entries.values() if e.target is state]

    def _entry(self, key: str) -> _Entry:
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"no monitor named {key}") from None

    def _view(self, entry: _Entry) -> Target:
        t = entry.target
        return Target(t.name, t.is_group, t.pid, t.started)

    def _emit(self, entry: _Entry, events: list[Event]) -> list[Event]:
        if events:
            target = self._view(entry)
            for event in events:
                try:
                    self._on_event(Change(entry.key, entry.spec, target, event))
                except Exception:
                    log.exception("monitor %s: the event callback failed", entry.key)
        return events

    def _start(self, entry: _Entry) -> None:
        self._emit(entry, entry.machine.start(self._loop.time()))
        if entry.machine.state.probing:
            self._arm(entry, self._first_at(entry))

    def _first_at(self, entry: _Entry) -> float:
        """The first due time: the monitor's share of SPREAD after the start delay."""
        return max(entry.machine.probe_after, self._loop.time()) + entry.phase

    def _arm(self, entry: _Entry, at: float) -> None:
        if entry.handle is not None:
            entry.handle.cancel()
        at = math.ceil(at / self._tick) * self._tick
        entry.next_at = at
        entry.handle = self._loop.call_at(at, self._fire, entry)

    def _halt(self, entry: _Entry) -> None:
        """No more probes for now: the timer, a running probe and what it holds all go."""
        if entry.handle is not None:
            entry.handle.cancel()
            entry.handle = None
        if entry.task is not None:
            entry.task.cancel()
            entry.task = None
        closing = self._loop.create_task(entry.probe.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _fire(self, entry: _Entry) -> None:
        entry.handle = None
        machine = entry.machine
        if not machine.state.probing or self._entries.get(entry.key) is not entry:
            return
        now = self._loop.time()
        if not machine.due(now):
            self._arm(entry, machine.probe_after)
            return
        if entry.task is not None:
            # Still running from the last interval (a continuous probe, or a slow one within
            # its timeout): this turn is skipped; its end arms the next.
            return
        entry.task = self._loop.create_task(self._run(entry, machine.epoch))

    async def _run(self, entry: _Entry, epoch: int) -> None:
        task = asyncio.current_task()
        result = await self._probe(entry)
        if entry.task is not task:
            return  # halted meanwhile
        entry.task = None
        now = self._loop.time()
        entry.history.append((now, result))
        if self._on_result is not None:
            self._on_result(entry.key, result)
        self._emit(entry, entry.machine.result(now, result, epoch))
        if entry.machine.state.probing and entry.handle is None:
            interval = entry.spec.interval
            if entry.spec.options.continuous:
                # The checker ran the whole interval: at once again; after a failure, one
                # interval later (a checker that cannot start does not spin).
                self._arm(entry, now if result.status is Status.OK else now + interval)
                return
            at = entry.next_at + interval
            if at <= now:
                at += math.ceil((now - at) / interval) * interval  # skip the turns missed
            self._arm(entry, at)

    async def _probe(self, entry: _Entry) -> Result:
        spec = entry.spec
        continuous = spec.options.continuous
        slots = [self._probe_slots]
        if spec.options.spawns and not continuous:
            slots.append(self._process_slots)
        began = self._loop.time()
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout_at(began + spec.timeout):
                    for slot in slots:
                        await stack.enter_async_context(slot)
            except TimeoutError:
                return Result(
                    Status.UNKNOWN,
                    f"no free probe slot within the {spec.timeout:g} s timeout "
                    f"({self._running} probes running)",
                )
            self._running += 1
            try:
                return await self._probe_once(entry)
            finally:
                self._running -= 1

    async def _probe_once(self, entry: _Entry) -> Result:
        spec, probe = entry.spec, entry.probe
        continuous = spec.options.continuous
        start = self._loop.time()
        deadline = start + spec.timeout
        try:
            async with asyncio.timeout_at(deadline + (CONTINUOUS_GRACE if continuous else 0)):
                result = await probe.probe(self._view(entry), deadline)
        except TimeoutError:
            step = f" ({probe.step})" if probe.step else ""
            return Result(Status.ERROR, f"timed out after {spec.timeout:g} s{step}", spec.timeout)
        except Exception as e:
            log.exception("monitor %s: the %s probe failed", entry.key, spec.kind)
            return Result(Status.UNKNOWN, f"the probe itself failed: {type(e).__name__}: {e}")
        latency = self._loop.time() - start
        if result.latency is None and not continuous:
            result = replace(result, latency=latency)
        if spec.slow is not None and result.status is Status.OK and latency > spec.slow:
            result = replace(
                result,
                status=Status.WARNING,
                message=f"slow: {latency:.2f} s (slow above {spec.slow:g} s): {result.message}",
            )
        return result
