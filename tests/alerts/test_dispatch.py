"""The dispatcher with sinks the test scripts: filters, retries with backoff, bounded queues,
priorities, flush, stop, reload -- and that nothing of it ever waits in offer()."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from rearm.alerts import AlertDispatcher, EventFilter, SinkConfig
from rearm.alerts.model import Alert, DeliveryError
from rearm.store import EventRow

from .conftest import eventually
from .helpers import event, sink

pytestmark = pytest.mark.asyncio


@dataclass
class Script:
    """What the fake sink does on each attempt: ok, fail, permanent, hang, crash, or slow."""

    outcomes: list[str] = field(default_factory=list)
    default: str = "ok"
    delay: float = 0.0
    sent: list[Alert] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    closed: bool = False


class FakeSink:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def open(self) -> None:
        return None

    async def send(self, alert: Alert) -> str:
        s = self.script
        s.attempts.append(time.monotonic())
        outcome = s.outcomes.pop(0) if s.outcomes else s.default
        if s.delay:
            await asyncio.sleep(s.delay)
        if outcome == "hang":
            await asyncio.Event().wait()
        if outcome == "fail":
            raise DeliveryError("connection refused")
        if outcome == "permanent":
            raise DeliveryError("HTTP 404", permanent=True)
        if outcome == "crash":
            raise RuntimeError("a bug in the sink")
        s.sent.append(alert)
        return "ok"

    async def close(self) -> None:
        self.script.closed = True


@dataclass(frozen=True)
class FakeSettings:
    script: Script = field(compare=False)
    label: str = "fake"

    def describe(self) -> str:
        return self.label

    def create(self, timeout: float) -> FakeSink:
        return FakeSink(self.script)


def fake(name: str = "fake", script: Script | None = None, **options: Any) -> SinkConfig:
    options.setdefault("filter", EventFilter(kinds=("*",)))
    options.setdefault("backoff", 0.01)
    return SinkConfig(name=name, type="fake", settings=FakeSettings(script or Script()), **options)


class Bus:
    """Stands in for the daemon's bus: emit records the event and offers it, as the bus does."""

    def __init__(self) -> None:
        self.events: list[EventRow] = []
        self.dispatcher: AlertDispatcher | None = None
        self._ids = itertools.count(10_000)

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "info",
        data: dict[str, Any] | None = None,
    ) -> EventRow:
        row = event(kind, severity, group=None, watch=None, message=message, data=data)
        self.events.append(row)
        if self.dispatcher is not None:
            self.dispatcher.offer(row)
        return row

    def kinds(self, kind: str) -> list[EventRow]:
        return [e for e in self.events if e.kind == kind]


@pytest.fixture
def bus() -> Iterator[Bus]:
    yield Bus()


async def _dispatcher(bus: Bus, *sinks: SinkConfig, **kw: Any) -> AlertDispatcher:
    d = AlertDispatcher(sinks, "testcl", "test-server", bus.emit, **kw)
    bus.dispatcher = d
    await d.start()
    return d


async def test_filters_by_kind_and_severity(bus: Bus) -> None:
    script = Script()
    d = await _dispatcher(
        bus, fake(script=script, filter=EventFilter(("fault", "group_*"), "warning"))
    )
    for e in (
        event("fault", "warning"),
        event("group_error", "error"),
        event("group_online", "info"),
        event("restart", "info"),
    ):
        d.offer(e)
    assert await d.flush(timeout=5)
    assert [a.event.kind for a in script.sent] == ["fault", "group_error"]
    await d.stop()


async def test_the_default_kinds_are_the_important_ones(bus: Bus) -> None:
    config = sink(type="webhook", url="http://127.0.0.1:1/")
    accepted = {
        k
        for k in ("daemon_start", "fault", "restart", "threshold", "final_action", "watch_start")
        if config.filter.accepts(k, "info")
    }
    assert accepted == {"daemon_start", "fault", "restart", "threshold", "final_action"}


async def test_own_failure_events_are_never_alerted(bus: Bus) -> None:
    script = Script(default="fail")
    d = await _dispatcher(bus, fake(script=script, retries=0))
    d.offer(event("fault"))
    await eventually("the failure event", lambda: bus.kinds("alert_failed"))
    assert await d.flush(timeout=5)
    # The alert_failed event went through offer() (as on the real bus) but was not queued.
    assert len(script.attempts) == 1
    await d.stop()


async def test_retries_with_doubling_backoff_then_delivers(bus: Bus) -> None:
    script = Script(outcomes=["fail", "fail"])
    d = await _dispatcher(bus, fake(script=script, retries=3, backoff=0.1))
    d.offer(event())
    assert await d.flush(timeout=5)
    first, second, third = script.attempts
    assert 0.1 <= second - first < 0.5 and 0.2 <= third - second < 0.7
    (c,) = d.counters()
    assert (c.delivered, c.failed, c.attempts_failed) == (1, 0, 2)
    assert bus.kinds("alert_failed") == []
    await d.stop()


async def test_gives_up_after_the_retries_and_reports_once_per_interval(bus: Bus) -> None:
    script = Script(default="fail")
    d = await _dispatcher(bus, fake(script=script, retries=1), report_interval=3600)
    for _ in range(3):
        d.offer(event())
    assert await d.flush(timeout=5)
    assert len(script.attempts) == 6
    (failed,) = bus.kinds("alert_failed")
    assert failed.severity == "warning"
    assert failed.data["sink"] == "fake" and failed.data["attempts"] == 2
    assert "failed after 2 attempts: connection refused" in failed.message
    script.default = "ok"
    d.offer(event())
    assert await d.flush(timeout=5)
    (recovered,) = bus.kinds("alert_recovered")
    assert "2 failed since the last report" in recovered.message
    (c,) = d.counters()
    assert (c.delivered, c.failed) == (1, 3)
    await d.stop()


async def test_a_permanent_failure_is_not_retried(bus: Bus) -> None:
    script = Script(default="permanent")
    d = await _dispatcher(bus, fake(script=script, retries=5))
    d.offer(event())
    assert await d.flush(timeout=5)
    assert len(script.attempts) == 1
    await d.stop()


async def test_a_crashing_sink_keeps_its_worker(bus: Bus) -> None:
    script = Script(outcomes=["crash"])
    d = await _dispatcher(bus, fake(script=script, retries=0))
    d.offer(event())
    d.offer(event("restart", "info"))
    assert await d.flush(timeout=5)
    assert [a.event.kind for a in script.sent] == ["restart"]
    assert "RuntimeError: a bug in the sink" in bus.kinds("alert_failed")[0].message
    await d.stop()


async def test_a_hanging_attempt_times_out(bus: Bus) -> None:
    script = Script(outcomes=["hang"])
    d = await _dispatcher(bus, fake(script=script, timeout=0.2, retries=1))
    d.offer(event())
    assert await d.flush(timeout=5)
    assert len(script.sent) == 1 and len(script.attempts) == 2
    await d.stop()


async def test_offer_never_waits_and_the_queue_is_bounded(bus: Bus) -> None:
    script = Script(default="hang")
    d = await _dispatcher(bus, fake(script=script, queue_size=10, timeout=60), report_interval=3600)
    d.offer(event())
    await eventually("the first attempt", lambda: script.attempts)
    start = time.perf_counter()
    for _ in range(1000):
        d.offer(event())
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5  # about 10 microseconds each here
    (c,) = d.counters()
    assert c.queued == 11 and c.dropped == 990  # 10 waiting and the one being sent
    (dropped,) = await eventually("the drop report", lambda: bus.kinds("alert_dropped"))
    assert dropped.data["dropped"] == 990
    await d.stop(timeout=0.1)
    assert d.counters()[0].dropped == 1001


async def test_a_full_queue_drops_info_before_critical(bus: Bus) -> None:
    script = Script(default="hang")
    d = await _dispatcher(bus, fake(script=script, queue_size=10, timeout=60))
    await eventually("the worker", lambda: True)
    critical = [event("final_action", "critical") for _ in range(3)]
    d.offer(critical[0])
    await eventually("the first attempt", lambda: script.attempts)  # in flight, not queued
    for e in critical[1:]:
        d.offer(e)
    for _ in range(50):
        d.offer(event("restart", "info"))
    lane = d._lanes[0]
    assert [i.alert.event for i in lane.urgent] == critical[1:]
    assert len(lane.normal) == 8
    await d.stop(timeout=0.1)


async def test_critical_alerts_go_first_and_flush_waits_for_them(bus: Bus) -> None:
    script = Script(delay=0.05)
    d = await _dispatcher(bus, fake(script=script))
    for _ in range(40):
        d.offer(event("restart", "info"))
    final = event("final_action", "critical", data={"action": "reboot"})
    d.offer(final)
    start = time.monotonic()
    assert await d.flush(final, timeout=1.5)
    assert time.monotonic() - start < 0.5  # not behind the 40 others (2 s)
    assert final in [a.event for a in script.sent[:3]]
    await d.stop(timeout=0.1)


async def test_a_critical_alert_overtakes_a_retry_in_backoff(bus: Bus) -> None:
    script = Script(outcomes=["fail"])
    d = await _dispatcher(bus, fake(script=script, backoff=30, retries=1))
    d.offer(event("restart", "info"))
    await eventually("the first attempt", lambda: script.attempts)
    final = event("final_action", "critical")
    d.offer(final)
    assert await d.flush(final, timeout=1)
    assert await d.flush(timeout=1)  # the restart alert was retried right after
    assert [a.event.kind for a in script.sent] == ["final_action", "restart"]
    await d.stop()


async def test_flush_is_bounded_with_a_black_hole(bus: Bus) -> None:
    script = Script(default="hang")
    d = await _dispatcher(bus, fake(script=script, timeout=60))
    final = event("final_action", "critical")
    d.offer(final)
    start = time.monotonic()
    assert not await d.flush(final, timeout=0.3)
    assert 0.3 <= time.monotonic() - start < 0.6
    await d.stop(timeout=0.1)


async def test_flush_of_an_event_no_sink_takes_returns_at_once(bus: Bus) -> None:
    d = await _dispatcher(bus, fake(script=Script(default="hang"), filter=EventFilter(("fault",))))
    e = event("final_action", "critical")
    d.offer(e)
    assert await d.flush(e, timeout=0.01)
    await d.stop(timeout=0.1)


async def test_a_hanging_sink_does_not_delay_another(bus: Bus) -> None:
    hung, fine = Script(default="hang"), Script()
    d = await _dispatcher(bus, fake("hung", hung, timeout=60), fake("fine", fine))
    d.offer(event())
    await eventually("the working sink's alert", lambda: fine.sent, timeout=1)
    await d.stop(timeout=0.1)
    assert hung.closed and fine.closed


async def test_events_offered_before_start_are_sent(bus: Bus) -> None:
    script = Script()
    d = AlertDispatcher([fake(script=script)], "testcl", "test-server", bus.emit)
    d.offer(event("daemon_start", "info"))
    await d.start()
    assert await d.flush(timeout=5)
    await d.stop()
    assert [a.event.kind for a in script.sent] == ["daemon_start"]


async def test_stop_sends_what_is_queued(bus: Bus) -> None:
    script = Script(delay=0.01)
    d = await _dispatcher(bus, fake(script=script))
    d.offer(event("daemon_stop", "info"))
    await d.stop(timeout=5)
    assert [a.event.kind for a in script.sent] == ["daemon_stop"] and script.closed
    d.offer(event())  # after stop: ignored, not an error
    assert d.counters()[0].queued == 0


async def test_reconfigure_keeps_counters_and_moves_the_queue(bus: Bus) -> None:
    old, new, other = Script(default="hang"), Script(), Script()
    d = await _dispatcher(bus, fake("a", old, timeout=60))
    d.offer(event())
    await eventually("the first attempt", lambda: old.attempts)
    d.offer(event("restart", "info"))
    await d.reconfigure([fake("a", new, backoff=0.02), fake("b", other)], "testcl", "test-server")
    assert await d.flush(timeout=5)
    assert [a.event.kind for a in new.sent] == ["fault", "restart"] and old.closed
    assert {c.name: c.delivered for c in d.counters()} == {"a": 2, "b": 0}
    await d.reconfigure([fake("b", other)], "testcl", "test-server")
    assert [c.name for c in d.counters()] == ["b"]
    await d.stop()


async def test_a_black_hole_webhook_leaves_the_loop_free(bus: Bus) -> None:
    """A real webhook to a port that accepts connections and never answers."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(100)  # the kernel completes handshakes; nobody ever reads
        port = hole.getsockname()[1]
        config = sink(type="webhook", url=f"http://127.0.0.1:{port}/", timeout=1, retries=0)
        d = await _dispatcher(bus, config)
        lateness: list[float] = []
        for _ in range(100):
            d.offer(event())
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lateness.append(time.monotonic() - before - 0.01)
        assert max(lateness) < 0.05, max(lateness)
        assert not await d.flush(timeout=0.1)
        await d.stop(timeout=0.1)
