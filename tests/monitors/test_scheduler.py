"""The scheduler: probes never block the loop or each other, concurrency is bounded, 1,000
monitors spread over their interval, and the state machine's rules hold with real time
(failures x interval to an error, start delay, timing "active", operator commands)."""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from rearm.monitors.base import Status, Target
from rearm.monitors.config import MonitorSpec
from rearm.monitors.schedule import TICK
from rearm.monitors.state import MonitorState

from .helpers import running, spec

S = MonitorState


SILENT_SERVER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1024)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])  # and never a word
"""


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A server in a process of its own that accepts connections and never answers: every
    probe against it hangs. (In the test's own loop it would be part of what is measured.)"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SILENT_SERVER, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        yield int(await proc.stdout.readline())
    finally:
        proc.kill()
        await proc.wait()


async def closed_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def lateness(seconds: float, period: float = 0.005) -> list[float]:
    """How late a plain timer fires, in seconds, sampled for `seconds`."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        due = loop.time() + period
        fired = loop.create_future()
        loop.call_at(due, fired.set_result, None)
        await fired
        late.append(loop.time() - due)
    return late


def hanging(port: int) -> list[MonitorSpec]:
    tcp = (
        f'kind = "tcp"\nport = {port}\nsend = "PING\\r\\n"\nexpect = "PONG"\n'
        "interval = 3\ntimeout = 2.5\n"
    )
    sleep = 'kind = "exec"\ncommand = ["/bin/sleep", "60"]\ninterval = 3\ntimeout = 2.5\n'
    return [spec(f'name = "tcp{i}"\n' + tcp) for i in range(150)] + [
        spec(f'name = "exec{i}"\n' + sleep) for i in range(50)
    ]


@pytest.mark.asyncio
async def test_200_hanging_probes_do_not_delay_an_unrelated_timer() -> None:
    peak = 0
    loop = asyncio.get_running_loop()
    async with silent_server() as port, running(*hanging(port)) as rec:
        assert rec.scheduler is not None
        scheduler = rec.scheduler
        # All start within the first second (SPREAD), and hang for 2.5 s.
        await rec.until(lambda: scheduler.running >= 150, timeout=5, what="150 probes hanging")
        sampler_end = loop.time() + 3

        async def watch_peak() -> None:
            nonlocal peak
            while loop.time() < sampler_end:
                peak = max(peak, scheduler.running)
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch_peak())
        samples = await lateness(3)
        await watcher
        await rec.until(lambda: len(rec.results) >= 150, timeout=10, what="timeouts")
    timed_out = [r for r in rec.results if r.message.startswith("timed out after 2.5 s")]
    assert len(timed_out) >= 150
    samples.sort()
    p50, p99, worst = (samples[len(samples) // 2], samples[int(len(samples) * 0.99)], samples[-1])
    print(
        f"\nunrelated 5 ms timer while {peak} probes hang: lateness p50 {p50 * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms, max {worst * 1000:.2f} ms over {len(samples)} timers"
    )
    assert peak >= 150 + 32 - 5  # the tcp probes and every process slot were hanging
    assert p99 < 0.010, f"p99 lateness {p99 * 1000:.1f} ms"
    assert p50 < 0.003, f"p50 lateness {p50 * 1000:.1f} ms"


@pytest.mark.asyncio
async def test_1000_monitors_spread_over_the_second_and_few_ticks() -> None:
    specs = [
        spec(f'name = "lo{i}"\nkind = "link"\ninterface = "lo"\ninterval = 1\n')
        for i in range(1000)
    ]
    async with running(*specs) as rec:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await rec.until(lambda: len(rec.results) >= 2000, timeout=10, what="two rounds")
    assert set(rec.statuses()) == {Status.OK}
    first_round = sorted(rec.result_times[:1000])
    ticks = collections.Counter(round((t - began) / TICK) for t in first_round)
    spread = first_round[-1] - first_round[0]
    print(
        f"\n1,000 monitors: first round over {spread:.2f} s in {len(ticks)} ticks of "
        f"{TICK * 1000:.0f} ms, at most {max(ticks.values())} in one"
    )
    assert spread > 0.8  # over the second, not at once
    assert len(ticks) <= 1 / TICK + 3  # wake-ups: one per tick, not one per monitor
    assert max(ticks.values()) < 3 * 1000 * TICK  # about 20 per tick; never all together


@pytest.mark.asyncio
async def test_concurrency_is_bounded_and_a_starved_probe_is_unknown_not_a_fault() -> None:
    specs = [
        spec(
            f'name = "e{i}"\nkind = "exec"\ncommand = ["/bin/sleep", "2"]\n'
            "interval = 5\ntimeout = 2.5\nfailures = 1\n"
        )
        for i in range(8)
    ]
    peak = 0
    async with running(*specs, max_processes=3) as rec:
        assert rec.scheduler is not None
        scheduler = rec.scheduler

        def sample() -> bool:
            nonlocal peak
            peak = max(peak, scheduler.running)
            return len(rec.results) >= 8

        while not sample():
            await asyncio.sleep(0.02)
    statuses = collections.Counter(rec.statuses())
    assert peak == 3
    # Three run at once; the others wait for a slot, and those still waiting at their own
    # timeout are unknown (their phases decide how many).
    assert statuses[Status.OK] >= 3 and statuses[Status.UNKNOWN] >= 1, rec.results
    assert statuses[Status.OK] + statuses[Status.UNKNOWN] == 8
    starved = [r for r in rec.results if r.status is Status.UNKNOWN]
    assert all("no free probe slot within the 2.5 s timeout" in r.message for r in starved)
    assert not rec.faults()


@pytest.mark.asyncio
async def test_failures_times_interval_to_the_error_and_a_success_clears_it() -> None:
    port = await closed_port()
    s = spec(f'kind = "tcp"\nport = {port}\ninterval = 0.3\ntimeout = 0.2\nfailures = 3\n')
    async with running(s) as rec:
        await rec.until(rec.faults, timeout=10, what="the fault")
        first, fault_at = rec.result_times[0], rec.result_times[-1]
        [fault] = rec.faults()
        assert fault.event.message.endswith(
            f"3 consecutive failures: 127.0.0.1:{port}: connection refused"
        )
        assert fault.target.name == "T" and fault.spec.name == "m"
        assert 0.5 < fault_at - first < 0.75  # two more intervals after the first failure
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        try:
            await rec.until(lambda: rec.states()[-1] == "normal", timeout=5)
        finally:
            server.close()
        assert "failure count cleared" in rec.changes[-1].event.message
        assert rec.scheduler is not None and rec.scheduler.status("m").failures == 0


@pytest.mark.asyncio
async def test_timing_active_start_delay_and_a_stopped_target() -> None:
    s = spec('kind = "link"\ninterface = "lo"\ninterval = 0.2\nstart_delay = 0.8\n')
    loop = asyncio.get_running_loop()
    async with running(s, started=False) as rec:
        assert rec.scheduler is not None
        scheduler = rec.scheduler
        assert scheduler.status("m").state is S.OFFLINE and rec.changes == []
        started = loop.time()
        scheduler.target_started("t", pid=None)  # watch IDs are case-insensitive
        await rec.until(lambda: rec.results, timeout=5)
        assert rec.result_times[0] - started >= 0.8
        assert rec.states() == ["normal"] and "0.8 s start delay" in rec.changes[0].event.message
        scheduler.target_stopped("T")
        assert rec.states() == ["normal", "offline"]
        count = len(rec.results)
        await lateness(0.6)  # three intervals' time: nothing may be probed
        assert len(rec.results) == count and scheduler.status("m").probing is False


@pytest.mark.asyncio
async def test_suspend_resume_and_clear_each_leave_an_event(tmp_path: object) -> None:
    port = await closed_port()
    s = spec(f'kind = "tcp"\nport = {port}\ninterval = 0.2\ntimeout = 0.1\nfailures = 2\n')
    async with running(s) as rec:
        assert rec.scheduler is not None
        scheduler = rec.scheduler
        await rec.until(rec.faults, timeout=5)
        [suspended] = scheduler.suspend("m")
        assert suspended.kind == "monitor_suspended" and suspended.previous is S.ERROR
        count = len(rec.results)
        await lateness(0.6)
        assert len(rec.results) == count  # no probes while suspended
        [resumed] = scheduler.resume("m")
        assert resumed.state is S.NORMAL
        await rec.until(lambda: scheduler.status("m").failures == 1, timeout=5)
        [cleared] = scheduler.clear("m")
        assert (cleared.kind, scheduler.status("m").failures) == ("monitor_cleared", 0)
    assert [c.event.kind for c in rec.changes] == [
        "monitor_normal",
        "monitor_error",
        "monitor_suspended",
        "monitor_normal",
        "monitor_cleared",
    ]


@pytest.mark.asyncio
async def test_slow_answers_are_warnings() -> None:
    s = spec(
        'kind = "exec"\ncommand = ["/bin/sleep", "0.3"]\ninterval = 2\ntimeout = 1\nslow = 0.1\n'
    )
    async with running(s) as rec:
        await rec.until(lambda: rec.results, timeout=5)
    [result] = rec.results
    assert result.status is Status.WARNING and result.message.startswith("slow: 0.3")
    assert rec.states() == ["normal", "warning"]


@pytest.mark.asyncio
async def test_always_monitors_run_without_the_target_and_restart_their_grace() -> None:
    s = spec(
        'kind = "link"\ninterface = "lo"\ninterval = 0.2\ntiming = "always"\nstart_delay = 0.5\n',
        in_service=False,
    )
    loop = asyncio.get_running_loop()
    async with running(s, target=Target("grp", is_group=True), started=False) as rec:
        await rec.until(lambda: rec.results, timeout=5)  # the group never came online
        assert rec.scheduler is not None
        rec.scheduler.target_started("grp", is_group=True)
        restarted = loop.time()
        count = len(rec.results)
        await rec.until(lambda: len(rec.results) > count, timeout=5)
        assert rec.result_times[count] - restarted >= 0.5  # the start delay again
        rec.scheduler.target_stopped("grp", is_group=True)
        await rec.until(lambda: len(rec.results) > count + 2, timeout=5)  # still probing
    assert "offline" not in rec.states()
