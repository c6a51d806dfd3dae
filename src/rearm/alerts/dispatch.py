"""The alert dispatcher: every event of the bus in, each sink's alerts out, recovery never held up.

`offer()` is all the bus calls, for every event: it filters and queues, never waits and never
raises. Each sink has a lane of its own -- a bounded queue and one worker task -- so a sink that
hangs holds up only its own alerts. Every attempt has a timeout; failed ones are retried with
doubling backoff; an alert that still fails is logged as an `alert_failed` event. A full lane
drops its least severe oldest alert and counts it. Critical alerts (threshold, final action)
go ahead of the others, and `flush()` lets a final action wait, boundedly, for its own alert.

The dispatcher's own events (alert_failed, alert_dropped, alert_recovered) are emitted on the
bus like any other but are never alerted, so failures cannot feed themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rearm.alerts.config import SinkConfig
from rearm.alerts.model import (
    ALERT_DROPPED,
    ALERT_FAILED,
    ALERT_RECOVERED,
    OWN_KINDS,
    Alert,
    DeliveryError,
)
from rearm.store import EventRow

log = logging.getLogger("rearm.alerts")

# A failing sink is reported at most this often (seconds); the failures in between are counted
# and named in the next report, so a dead receiver does not flood the event log.
REPORT_INTERVAL = 60.0
MAX_BACKOFF = 60.0
# How long a final action waits for its alert by default: long enough for a receiver that
# answers, short enough that a dead one delays a reboot by seconds, not minutes.
FLUSH_TIMEOUT = 5.0


class Emit(Protocol):
    """The bus's emit, as the dispatcher uses it (EventBus.emit fits)."""

    def __call__(
        self,
        kind: str,
        message: str,
        *,
        severity: str = ...,
        data: dict[str, Any] | None = ...,
    ) -> object: ...


@dataclass
class SinkCounters:
    """What /metrics shows per sink. Counts since the daemon started."""

    name: str
    type: str
    delivered: int = 0
    failed: int = 0  # alerts given up on, after every attempt
    attempts_failed: int = 0  # single attempts that failed, retried or not
    dropped: int = 0  # alerts pushed out of a full queue, or still queued at stop
    queued: int = 0  # waiting or being sent now
    last_error: str | None = None


@dataclass
class _Item:
    alert: Alert
    urgent: bool
    attempts: int = 0


class _Lane:
    """One sink: its queue, its worker, its counters, and what is left to report about it."""

    def __init__(self, config: SinkConfig, counters: SinkCounters | None = None) -> None:
        self.config = config
        self.sink = config.create()
        self.urgent: deque[_Item] = deque()
        self.normal: deque[_Item] = deque()
        self.in_flight: _Item | None = None
        self.pending: set[int] = set()  # event ids queued or in flight, for flush()
        self.wakeup = asyncio.Event()
        self.urgent_waiting = asyncio.Event()
        self.counters = counters or SinkCounters(config.name, config.type)
        self.task: asyncio.Task[None] | None = None
        self.failing = False
        self.unreported_failures = 0
        self.last_failure_report = -math.inf
        self.unreported_drops = 0
        self.last_drop_report = -math.inf
        self.drop_report_due = False

    def __len__(self) -> int:
        return len(self.urgent) + len(self.normal)

    def put(self, item: _Item) -> _Item | None:
        """Queue `item`; when full, return the one dropped for it (possibly `item` itself)."""
        dropped: _Item | None = None
        if len(self) >= self.config.queue_size:
            if self.normal:
                dropped = self.normal.popleft()
            elif item.urgent:
                dropped = self.urgent.popleft()
            else:
                return item
            self.pending.discard(dropped.alert.event.id)
        (self.urgent if item.urgent else self.normal).append(item)
        self.pending.add(item.alert.event.id)
        self.wakeup.set()
        if item.urgent:
            self.urgent_waiting.set()
        return dropped

    def take(self) -> _Item | None:
        if self.urgent:
            item = self.urgent.popleft()
            if not self.urgent:
                self.urgent_waiting.clear()
            return item
        return self.normal.popleft() if self.normal else None

    def holds(self, event_id: int | None, upto: int) -> bool:
        """Whether `event_id` (None: any event up to `upto`) is still queued or being sent."""
        if event_id is not None:
            return event_id in self.pending
        return any(i <= upto for i in self.pending)


class AlertDispatcher:
    def __init__(
        self,
        sinks: Sequence[SinkConfig],
        cluster_name: str,
        server: str,
        emit: Emit,
        *,
        report_interval: float = REPORT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster_name = cluster_name
        self.server = server
        self._emit = emit
        self._report_interval = report_interval
        self._clock = clock
        self._lanes = [_Lane(config) for config in sinks]
        self._last_offered = 0
        self._progress = asyncio.Event()
        self._started = False
        self._stopped = False

    # --- the bus side: never waits, never raises ------------------------------------------------
    def offer(self, event: EventRow) -> None:
        """Queue `event` for every sink whose filter takes it. Called by the bus for each event."""
        if self._stopped or event.kind in OWN_KINDS:
            return
        try:
            alert: Alert | None = None
            for lane in self._lanes:
                if not lane.config.filter.accepts(event.kind, event.severity):
                    continue
                alert = alert or Alert(self.cluster_name, self.server, event)
                dropped = lane.put(_Item(alert, urgent=event.severity == "critical"))
                if dropped is not None:
                    self._count_drop(lane)
            self._last_offered = max(self._last_offered, event.id)
        except Exception:
            # An alerting bug must never turn into a failed restart: the bus's caller is the
            # recovery path itself.
            log.exception("alerts: could not queue event %s", event.id)

    def _count_drop(self, lane: _Lane) -> None:
        lane.counters.dropped += 1
        lane.unreported_drops += 1
        self._notify()
        if not lane.drop_report_due:
            # Reported from the loop, not from here: offer() runs inside the bus's emit.
            with contextlib.suppress(RuntimeError):  # no running loop: reported at the next drop
                asyncio.get_running_loop().call_soon(self._report_drops, lane)
                lane.drop_report_due = True

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one worker per sink. Events offered before are kept and sent now."""
        if self._started:
            return
        self._started = True
        for lane in self._lanes:
            self._launch(lane)

    def _launch(self, lane: _Lane) -> None:
        lane.task = asyncio.create_task(self._work(lane), name=f"alerts:{lane.config.name}")

    async def stop(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Send what is queued (daemon_stop included) for up to `timeout` s, then close."""
        if self._started and not self._stopped:
            await self.flush(None, timeout)
        self._stopped = True
        for lane in self._lanes:
            await self._retire(lane)

    async def _retire(self, lane: _Lane) -> None:
        left = len(lane) + (lane.in_flight is not None)  # before the worker's finally clears it
        if lane.task is not None:
            lane.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lane.task
            lane.task = None
        if left:
            lane.counters.dropped += left
            log.warning("alerts: %d alert(s) for %s not sent at stop", left, lane.config.name)
        lane.urgent.clear()
        lane.normal.clear()
        lane.pending.clear()
        lane.in_flight = None
        try:
            async with asyncio.timeout(2):
                await lane.sink.close()
        except Exception as e:
            log.warning("alerts: closing %s: %s", lane.config.name, e)
        self._notify()

    async def reconfigure(
        self, sinks: Sequence[SinkConfig], cluster_name: str, server: str
    ) -> None:
        """Take a reloaded configuration: unchanged sinks keep going; changed ones restart with
        their queue and counters; removed ones are closed (their queued alerts count as dropped).
        """
        self.cluster_name, self.server = cluster_name, server
        # Build the new set of lanes and swap it in without yielding to the loop, so no event
        # offered meanwhile lands in a lane on its way out.
        old = {lane.config.name: lane for lane in self._lanes}
        lanes: list[_Lane] = []
        retired: list[_Lane] = []
        for config in sinks:
            lane = old.pop(config.name, None)
            if lane is not None and lane.config == config:
                lanes.append(lane)
                continue
            new = _Lane(config, lane.counters if lane else None)
            new.counters.type = config.type
            if lane is not None:
                # Its queue moves over; the alert being sent is sent again by the new sink.
                if lane.task is not None:
                    lane.task.cancel()
                items = [*([lane.in_flight] if lane.in_flight else []), *lane.urgent, *lane.normal]
                lane.urgent.clear()
                lane.normal.clear()
                lane.in_flight = None
                for item in items:
                    if new.put(replace(item, attempts=0)) is not None:
                        self._count_drop(new)
                retired.append(lane)
            lanes.append(new)
        retired += old.values()
        self._lanes = lanes
        if self._started and not self._stopped:
            for lane in lanes:
                if lane.task is None:
                    self._launch(lane)
        for lane in retired:
            await self._retire(lane)

    # --- waiting for delivery --------------------------------------------------------------------
    async def flush(self, event: EventRow | None = None, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every sink has sent `event` (or given up on it), at most `timeout` s.

        Without `event`: everything offered so far. True when done, False when time ran out.
        For final actions: `await dispatcher.flush(bus.emit("final_action", ...))`, then act.
        """
        event_id = event.id if event is not None else None
        upto = self._last_offered
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(lane.holds(event_id, upto) for lane in self._lanes):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            progress = self._progress
            try:
                await asyncio.wait_for(progress.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # --- counters ---------------------------------------------------------------------------------
    def counters(self) -> list[SinkCounters]:
        out = []
        for lane in self._lanes:
            lane.counters.queued = len(lane) + (lane.in_flight is not None)
            out.append(replace(lane.counters))
        return out

    # --- the workers ------------------------------------------------------------------------------
    async def _work(self, lane: _Lane) -> None:
        try:
            # Import libraries and build engines now rather than at the first alert.
            async with asyncio.timeout(lane.config.timeout):
                await lane.sink.open()
        except Exception as e:
            log.warning(
                "alerts: preparing %s: %s (will retry with each alert)", lane.config.name, e
            )
        while True:
            item = lane.take()
            if item is None:
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            lane.in_flight = item
            try:
                await self._deliver(lane, item)
            finally:
                lane.in_flight = None

    async def _deliver(self, lane: _Lane, item: _Item) -> None:
        config = lane.config
        while True:
            item.attempts += 1
            try:
                async with asyncio.timeout(config.timeout):
                    await lane.sink.send(item.alert)
            except DeliveryError as e:
                error = e
            except TimeoutError:
                error = DeliveryError(f"no answer within {config.timeout:g} s")
            except Exception as e:
                # A bug in a sink must not end its worker: log it and treat it as a failure.
                log.exception("alerts: %s raised", config.name)
                error = DeliveryError(f"{type(e).__name__}: {e}")
            else:
                self._delivered(lane, item)
                return
            lane.counters.attempts_failed += 1
            lane.counters.last_error = str(error)
            if error.permanent or item.attempts > config.retries:
                self._failed(lane, item, error)
                return
            delay = min(config.backoff * 2 ** (item.attempts - 1), MAX_BACKOFF)
            if not item.urgent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.urgent_waiting.wait(), delay)
                if lane.urgent_waiting.is_set():
                    # A critical alert came in: it goes first, this one retries after it.
                    lane.normal.appendleft(item)
                    return
            else:
                await asyncio.sleep(delay)

    def _delivered(self, lane: _Lane, item: _Item) -> None:
        lane.counters.delivered += 1
        lane.pending.discard(item.alert.event.id)
        self._notify()
        if lane.failing:
            lane.failing = False
            missed = lane.unreported_failures
            lane.unreported_failures = 0
            self._report(
                ALERT_RECOVERED,
                f"alerts to {lane.config.name} ({lane.config.type}) are delivered again"
                + (f"; {missed} failed since the last report" if missed else ""),
                "info",
                {"sink": lane.config.name, "type": lane.config.type, "unreported": missed},
            )

    def _failed(self, lane: _Lane, item: _Item, error: DeliveryError) -> None:
        lane.counters.failed += 1
        lane.pending.discard(item.alert.event.id)
        self._notify()
        lane.failing = True
        lane.unreported_failures += 1
        now = self._clock()
        if now - lane.last_failure_report < self._report_interval:
            return
        others = lane.unreported_failures - 1
        lane.unreported_failures = 0
        lane.last_failure_report = now
        e = item.alert.event
        self._report(
            ALERT_FAILED,
            f"alert {e.kind} #{e.id} to {lane.config.name} ({lane.config.type}) failed after "
            f"{item.attempts} attempt{'s' if item.attempts > 1 else ''}: {error}"
            + (f"; {others} more failed since the last report" if others else ""),
            "warning",
            {
                "sink": lane.config.name,
                "type": lane.config.type,
                "event_id": e.id,
                "event_kind": e.kind,
                "attempts": item.attempts,
                "reason": str(error),
                "unreported": others,
            },
        )

    def _report_drops(self, lane: _Lane) -> None:
        if self._stopped:
            return
        now = self._clock()
        wait = lane.last_drop_report + self._report_interval - now
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._report_drops, lane)
            return
        lane.drop_report_due = False
        count, lane.unreported_drops = lane.unreported_drops, 0
        if not count:
            return
        lane.last_drop_report = now
        self._report(
            ALERT_DROPPED,
            f"{count} alert{'s' if count > 1 else ''} to {lane.config.name} dropped: its queue "
            f"of {lane.config.queue_size} was full (the receiver is slow or unreachable)",
            "warning",
            {"sink": lane.config.name, "type": lane.config.type, "dropped": count},
        )

    def _report(self, kind: str, message: str, severity: str, data: dict[str, Any]) -> None:
        try:
            self._emit(kind, message, severity=severity, data=data)
        except Exception:
            log.exception("alerts: could not record %s", kind)
