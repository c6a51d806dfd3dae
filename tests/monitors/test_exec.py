"""`exec` monitors: Nagios exit codes, the timeout that kills the whole process group, the
long-running (`async`) form, and commands that misbehave (no such program, a flood of output)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from rearm.monitors.base import Status
from rearm.monitors.config import MonitorSpec

from ..integration.harness import start_time
from .helpers import exec_spec, probe_once, running, spec

SH = "/bin/sh"


def sh(script: str, *lines: str) -> MonitorSpec:
    return exec_spec([SH, "-c", script], "interval = 5", "timeout = 3", *lines)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, Status.OK),
        (1, Status.WARNING),
        (2, Status.ERROR),
        (3, Status.UNKNOWN),
        (7, Status.UNKNOWN),
    ],
)
async def test_nagios_exit_codes(code: int, status: Status) -> None:
    result = await probe_once(sh(f"echo 'DISK OK - 42% free | /=42%;80;90'; exit {code}"))
    assert result.status is status
    if code <= 3:
        assert result.message == "DISK OK - 42% free"  # performance data dropped
    else:
        assert "exit status 7 (not a Nagios status 0-3)" in result.message
    assert result.latency is not None and 0 < result.latency < 3


@pytest.mark.asyncio
async def test_plain_exit_codes() -> None:
    plain = '"plain"'
    assert (await probe_once(sh("exit 0", f"exit_codes = {plain}"))).status is Status.OK
    result = await probe_once(sh("echo broken >&2; exit 1", f"exit_codes = {plain}"))
    assert (result.status, result.message) == (Status.ERROR, "broken")


@pytest.mark.asyncio
async def test_the_target_is_in_the_environment() -> None:
    s = sh('echo "$REARM_TARGET $REARM_TARGET_PID $LC_ALL"')
    from rearm.monitors.base import Target

    result = await probe_once(s, Target("WEB", pid=4242))
    assert result.message == "WEB 4242 C"


@pytest.mark.asyncio
async def test_a_probe_that_ignores_sigterm_and_forks_is_killed_whole_at_its_timeout(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    script = (
        "trap '' TERM\n"
        f"echo $$ >> {pids}\n"
        f"sh -c 'trap \"\" TERM; echo $$ >> {pids}; exec sleep 1000' &\n"
        # a grandchild that leaves the process group (not the session)
        f"{sys.executable} -c 'import os, time; os.setpgid(0, 0); "
        f'open("{pids}", "a").write(f"{{os.getpid()}}\\n"); time.sleep(1000)\' &\n'
        "sleep 1000\n"
    )
    s = exec_spec([SH, "-c", script], "interval = 10", "timeout = 1.5")
    loop = asyncio.get_running_loop()
    async with running(s) as rec:
        began = loop.time()
        await rec.until(lambda: rec.results, timeout=10)
        took = loop.time() - began
    [result] = rec.results
    assert result.status is Status.ERROR and result.message.startswith("timed out after 1.5 s")
    assert result.latency == 1.5
    # Reported at the timeout (the first probe starts within a second: its share of SPREAD).
    assert 1.5 <= took < 1 + 1.5 + 0.5
    seen = {int(p): start_time(int(p)) for p in pids.read_text().split()}
    try:
        assert len(seen) == 3, f"the script did not start all its processes in time: {seen}"
        loop_deadline = loop.time() + 5
        while any(start_time(p) is not None for p in seen) and loop.time() < loop_deadline:
            await asyncio.sleep(0.02)
        assert [p for p in seen if start_time(p) is not None] == [], "processes left alive"
    finally:
        for pid, start in seen.items():  # what a failing run left: by pid and start time
            if start is not None and start_time(pid) == start:
                os.kill(pid, signal.SIGKILL)


@pytest.mark.asyncio
async def test_the_async_form_fails_as_soon_as_its_checker_ends(tmp_path: Path) -> None:
    go = tmp_path / "end-now"
    script = f"while [ ! -e {go} ]; do sleep 0.05; done; echo 'lost the log stream'; exit 0"
    s = exec_spec([SH, "-c", script], "async = true", "interval = 0.5")
    loop = asyncio.get_running_loop()
    async with running(s) as rec:
        await rec.until(lambda: len(rec.results) >= 2, timeout=10)
        assert rec.statuses() == [Status.OK, Status.OK]  # running: OK at each interval's end
        assert "running (pid" in rec.results[0].message
        go.write_text("")
        ended = loop.time()
        await rec.until(lambda: rec.faults(), timeout=10, what="the fault")
        noticed = loop.time() - ended
        [fault] = rec.faults()
        assert "ended (exit status 0): lost the log stream" in fault.event.message
        assert noticed < 0.45, f"the checker's end was seen after {noticed:.2f} s"
        # Started again one interval later; it ends at once (the file is there): failing on.
        go.unlink()
        await rec.until(lambda: rec.results[-1].status is Status.OK, timeout=10)


@pytest.mark.asyncio
async def test_a_missing_program_is_unknown_not_a_fault() -> None:
    result = await probe_once(spec('kind = "exec"\ncommand = ["/no/such/check"]\n'))
    assert (result.status, result.message) == (Status.UNKNOWN, "/no/such/check: no such file")


@pytest.mark.asyncio
async def test_a_flood_of_output_neither_blocks_the_check_nor_fills_memory() -> None:
    result = await probe_once(sh("yes xxxxxxxx | head -c 5000000; echo end"))
    assert result.status is Status.OK and result.message.startswith("xxxx")
    assert len(result.message) <= 300
