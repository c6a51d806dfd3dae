"""The systemd backend (rearm.backends.systemd) against a real systemd 252, booted as PID 1 of
private namespaces by tests/services/systemd_sandbox.py (never the host's init).

The backend runs in this test process and reaches the sandbox's system bus through the socket
under the sandbox's directory (sb.bus_address); PIDs that systemd reports belong to the sandbox's
PID namespace, so the tests translate them (sb.host_pid) before signalling. One test runs the
backend inside the sandbox, on the default system bus, as the daemon would run there.

Root and the machine's systemd are needed. On CI (CI=true) a missing prerequisite fails the
tests instead of skipping them (as in test_systemd_sandbox.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from rearm.backends.systemd import (
    SystemdError,
    SystemdUnits,
    UnitState,
    exit_detail,
    is_down,
    unit_name,
)

from .systemd_sandbox import SystemdSandbox, require_sandbox, systemd_sandbox

SLEEPER = """\
[Service]
ExecStart=/bin/sleep 1000
Restart=no
"""

# Ignores SIGTERM (the shell, and sleep, which inherits the ignored signal), and systemd's own
# stop timeout is far away: only the backend's SIGKILL after its timeout ends it. The start job
# ends at the fork, before the trap is set: the file in /run says when it is.
STUBBORN = """\
[Service]
ExecStart=/bin/sh -c 'trap "" TERM; echo $$ > /run/stubborn.ready; sleep 1000'
TimeoutStopSec=300
"""

# Type=exec: the start job waits for the exec, so a program that cannot run fails the job.
MISSING_PROGRAM = """\
[Service]
Type=exec
ExecStart=/nonexistent/program
"""

ONESHOT_FALSE = """\
[Service]
Type=oneshot
ExecStart=/bin/false
"""

CONDITION_UNMET = """\
[Unit]
ConditionPathExists=/nonexistent/file

[Service]
ExecStart=/bin/sleep 1000
"""

ASSERT_FAILS = """\
[Unit]
AssertPathExists=/nonexistent/file

[Service]
ExecStart=/bin/sleep 1000
"""

NEEDS_MISSING_PROGRAM = """\
[Unit]
Requires=missing-program.service
After=missing-program.service

[Service]
ExecStart=/bin/sleep 1000
"""

RESTARTS_ITSELF = """\
[Service]
ExecStart=/bin/sleep 1000
Restart=on-failure
"""

UNITS = {
    "sleeper.service": SLEEPER,
    "stubborn.service": STUBBORN,
    "missing-program.service": MISSING_PROGRAM,
    "oneshot-false.service": ONESHOT_FALSE,
    "condition-unmet.service": CONDITION_UNMET,
    "restarts-itself.service": RESTARTS_ITSELF,
    "assert-fails.service": ASSERT_FAILS,
    "needs-missing-program.service": NEEDS_MISSING_PROGRAM,
    "bad-setting.service": "[Service]\nExecStart=relative/path\n",
}

DEADLINE = 10.0  # seconds for anything systemd does here (it takes milliseconds)


def _require_sandbox() -> None:
    require_sandbox()


@pytest.fixture
def sandbox() -> Iterator[SystemdSandbox]:
    _require_sandbox()
    with systemd_sandbox(UNITS) as sb:
        yield sb


@pytest_asyncio.fixture
async def units(sandbox: SystemdSandbox) -> AsyncIterator[SystemdUnits]:
    u = await SystemdUnits.connect(sandbox.bus_address)
    try:
        yield u
    finally:
        await u.close()


class Changes:
    """Collects the snapshots a watch pushes; waits on them with a deadline."""

    def __init__(self) -> None:
        self.seen: list[UnitState] = []
        self._queue: asyncio.Queue[UnitState] = asyncio.Queue()

    def __call__(self, state: UnitState) -> None:
        self.seen.append(state)
        self._queue.put_nowait(state)

    async def until(self, what: str, predicate: Callable[[UnitState], bool]) -> UnitState:
        deadline = time.monotonic() + DEADLINE
        while True:
            left = deadline - time.monotonic()
            try:
                state = await asyncio.wait_for(self._queue.get(), max(left, 0))
            except TimeoutError:
                raise AssertionError(f"no change to {what} in {DEADLINE} s: {self.seen}") from None
            if predicate(state):
                return state


def kill_main(sb: SystemdSandbox, state: UnitState) -> None:
    assert state.main_pid is not None
    os.kill(sb.host_pid(state.main_pid), signal.SIGKILL)


# --- pure functions -----------------------------------------------------------------------------


def _state(**kw: object) -> UnitState:
    fields: dict[str, object] = {
        "name": "x.service",
        "load_state": "loaded",
        "active_state": "failed",
        "sub_state": "failed",
        "main_pid": None,
        "result": "signal",
        "exec_main_code": 2,
        "exec_main_status": 9,
        "restart": "no",
    }
    fields.update(kw)
    return UnitState(**fields)  # type: ignore[arg-type]


def test_exit_detail() -> None:
    assert exit_detail(_state()) == ("killed by SIGKILL", False)
    assert exit_detail(_state(result="core-dump", exec_main_code=3, exec_main_status=6)) == (
        "killed by SIGABRT (core dumped)",
        False,
    )
    assert exit_detail(_state(result="exit-code", exec_main_code=1, exec_main_status=3)) == (
        "exit status 3",
        False,
    )
    exited = _state(result="success", exec_main_code=1, exec_main_status=0)
    assert exit_detail(exited) == ("exit status 0", True)
    assert exit_detail(_state(result="exit-code", exec_main_code=1, exec_main_status=203)) == (
        "exit status 203 (systemd could not execute the program)",
        False,
    )
    assert exit_detail(_state(result="oom-kill"))[0] == (
        "killed by SIGKILL (out of memory: the kernel's OOM killer ended it)"
    )
    # SIGTERM from a stop counts as success for systemd, but rearm never calls a signal clean.
    assert exit_detail(_state(result="success", exec_main_status=15)) == (
        "killed by SIGTERM",
        False,
    )
    assert exit_detail(_state(result="resources", exec_main_code=None, exec_main_status=None)) == (
        "systemd could not set up its resources (a missing user, directory or file?)",
        False,
    )
    never = _state(result="success", exec_main_code=None, exec_main_status=None)
    assert exit_detail(never) == ("no exit recorded", True)


def test_is_down() -> None:
    assert is_down(_state(active_state="failed", sub_state="failed"))
    assert is_down(_state(active_state="inactive", sub_state="dead"))
    assert not is_down(_state(active_state="active", sub_state="running"))
    assert not is_down(_state(active_state="activating", sub_state="auto-restart"))
    assert not is_down(_state(active_state="deactivating", sub_state="stop-sigterm"))
    # systemd 252 reports failed/auto-restart while waiting to restart a Restart= unit.
    assert not is_down(_state(active_state="failed", sub_state="auto-restart"))


def test_unit_name() -> None:
    assert unit_name("web") == "web.service"
    assert unit_name("web.service") == "web.service"


# --- connecting ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_no_system_bus_fails_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SystemdError) as err:
        await SystemdUnits.connect(f"unix:path={tmp_path}/no-bus")
    assert str(err.value) == (
        f"systemd is not running here (no system bus at {tmp_path}/no-bus: "
        "No such file or directory)"
    )
    assert time.monotonic() - started < 1
    with pytest.raises(SystemdError, match=r"^bad D-Bus address 'nonsense': "):
        await SystemdUnits.connect("nonsense")


@pytest.mark.asyncio
async def test_silent_socket_times_out(tmp_path: Path) -> None:
    # Something listens but never speaks D-Bus: the connect gives up after ~2 s.
    path = tmp_path / "silent"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        started = time.monotonic()
        with pytest.raises(SystemdError, match="did not answer within 2 s"):
            await SystemdUnits.connect(f"unix:path={path}")
        assert time.monotonic() - started < 4


@pytest.mark.asyncio
async def test_bus_without_systemd(tmp_path: Path) -> None:
    # A D-Bus daemon of our own (a session bus on a socket in tmp_path), where no systemd is.
    dbus_daemon = shutil.which("dbus-daemon")
    if dbus_daemon is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dbus-daemon is not installed (scripts/test-deps.sh installs dbus)")
        pytest.skip("dbus-daemon is not installed")
    address = f"unix:path={tmp_path}/bus"
    daemon = subprocess.Popen(
        [dbus_daemon, "--session", "--nofork", "--nopidfile", f"--address={address}"],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + DEADLINE
        while not (tmp_path / "bus").exists():
            assert time.monotonic() < deadline and daemon.poll() is None, "dbus-daemon failed"
            await asyncio.sleep(0.01)
        with pytest.raises(SystemdError) as err:
            await SystemdUnits.connect(address)
        assert str(err.value) == (
            "systemd is not running here (nothing provides org.freedesktop.systemd1 on the "
            f"system bus at {tmp_path}/bus)"
        )
    finally:
        daemon.kill()
        daemon.wait()


# --- against the sandbox's systemd -----------------------------------------------------------


@pytest.mark.asyncio
async def test_unit_states(units: SystemdUnits) -> None:
    assert await units.unit("no-such-unit") is None
    state = await units.unit("sleeper")
    assert state == UnitState(
        name="sleeper.service",
        load_state="loaded",
        active_state="inactive",
        sub_state="dead",
        main_pid=None,
        result="success",
        exec_main_code=None,
        exec_main_status=None,
        restart="no",
    )
    # armload refuses these: systemd would restart the service itself.
    restarts = await units.unit("restarts-itself.service")
    assert restarts is not None and restarts.restart == "on-failure"


@pytest.mark.asyncio
async def test_start_watch_kill_and_start_again(
    sandbox: SystemdSandbox, units: SystemdUnits
) -> None:
    state = await units.start("sleeper")
    assert (state.active_state, state.sub_state) == ("active", "running")
    assert state.main_pid is not None and state.main_pid > 1
    assert not is_down(state)
    # The PID is the sandbox's: /proc inside shows it as sleep.
    assert sandbox.run(["cat", f"/proc/{state.main_pid}/comm"]).stdout.strip() == "sleep"

    changes = Changes()
    watch = await units.watch("sleeper", changes)
    assert watch.state == state
    killed = time.monotonic()
    kill_main(sandbox, state)
    down = await changes.until("down after SIGKILL", is_down)
    assert time.monotonic() - killed < 2
    assert (down.active_state, down.sub_state, down.main_pid) == ("failed", "failed", None)
    assert down.result == "signal"
    assert exit_detail(down) == ("killed by SIGKILL", False)
    assert watch.state == down

    again = await units.start("sleeper")
    assert again.active_state == "active" and again.main_pid not in (None, state.main_pid)
    # While start() runs, systemd reports the way there (inactive after the reset of the failed
    # state, the new MainPID before `active`); the watch holds those and publishes the outcome
    # once, when start() is done: nothing that looks like another death.
    after_kill = changes.seen[changes.seen.index(down) + 1 :]
    assert after_kill == [again] and watch.state == again
    assert again.exec_main_code is None  # a fresh exit record for the new main process
    watch.cancel()
    assert await units.stop("sleeper", timeout=5) is True


@pytest.mark.asyncio
async def test_watch_cancel(sandbox: SystemdSandbox, units: SystemdUnits) -> None:
    state = await units.start("sleeper")
    first, second = Changes(), Changes()
    w1 = await units.watch("sleeper.service", first)
    w2 = await units.watch("sleeper.service", second)
    w1.cancel()
    w1.cancel()  # idempotent
    kill_main(sandbox, state)
    await second.until("down", is_down)
    # Both watches would have been served by the same signal message: w1 got nothing.
    assert first.seen == []
    w2.cancel()
    with pytest.raises(SystemdError, match=r"^systemd knows no unit no-such\.service$"):
        await units.watch("no-such", Changes())


@pytest.mark.asyncio
async def test_only_systemd_may_report_a_change(
    sandbox: SystemdSandbox, units: SystemdUnits
) -> None:
    # Any client of the bus may send a signal straight to the backend's connection; a forged
    # "failed" must not pass for systemd's word.
    from dbus_fast import Message, MessageType, Variant
    from dbus_fast.aio import MessageBus

    state = await units.start("sleeper")
    changes = Changes()
    watch = await units.watch("sleeper", changes)
    forger = await MessageBus(bus_address=sandbox.bus_address).connect()
    try:
        forged = Message(
            message_type=MessageType.SIGNAL,
            destination=units._bus.unique_name,
            path=watch.path,
            interface="org.freedesktop.DBus.Properties",
            member="PropertiesChanged",
            signature="sa{sv}as",
            body=[
                "org.freedesktop.systemd1.Unit",
                {"ActiveState": Variant("s", "failed"), "SubState": Variant("s", "forged")},
                [],
            ],
        )
        await forger.send(forged)
        # A round trip from the forger: the bus daemon has passed the signal on before it
        # answers, so the backend reads it before anything systemd says after the kill below.
        await forger.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="GetId",
            )
        )
    finally:
        forger.disconnect()
    kill_main(sandbox, state)
    down = await changes.until("down", is_down)
    assert down.sub_state == "failed"
    assert [s for s in changes.seen if s.sub_state == "forged"] == []


@pytest.mark.asyncio
async def test_start_rate_limit_is_rearms_business(
    sandbox: SystemdSandbox, units: SystemdUnits
) -> None:
    # systemd refuses a 6th start within 10 s (StartLimitBurst=5) unless the failed state is
    # reset; rearm's policy decides how often a unit restarts, so start() resets it.
    changes = Changes()
    await units.watch("sleeper", changes)
    for _ in range(7):
        state = await units.start("sleeper")
        assert state.active_state == "active"
        kill_main(sandbox, state)
        await changes.until("down", is_down)


@pytest.mark.asyncio
async def test_stop_in_time(units: SystemdUnits) -> None:
    await units.start("sleeper")
    assert await units.stop("sleeper", timeout=10) is True
    state = await units.unit("sleeper")
    assert state is not None and (state.active_state, state.sub_state) == ("inactive", "dead")
    # Stopping what is not running, or not there at all, is fine.
    assert await units.stop("sleeper", timeout=10) is True
    assert await units.stop("no-such-unit", timeout=10) is True


@pytest.mark.asyncio
async def test_stop_after_a_death_resets_failed(
    sandbox: SystemdSandbox, units: SystemdUnits
) -> None:
    changes = Changes()
    await units.watch("sleeper", changes)
    kill_main(sandbox, await units.start("sleeper"))
    await changes.until("failed", lambda s: s.active_state == "failed")
    assert await units.stop("sleeper", timeout=10) is True
    after = await changes.until("reset", lambda s: s.active_state == "inactive")
    assert after.sub_state == "dead"


@pytest.mark.asyncio
async def test_stop_kills_what_ignores_sigterm(
    sandbox: SystemdSandbox, units: SystemdUnits
) -> None:
    ready = sandbox.dir / "run" / "stubborn.ready"  # the sandbox's /run, seen from the host

    async def start_stubborn() -> UnitState:
        ready.unlink(missing_ok=True)
        state = await units.start("stubborn")
        deadline = time.monotonic() + DEADLINE
        while not ready.exists() or not ready.read_text().strip():
            assert time.monotonic() < deadline, "the stubborn unit did not set its trap"
            await asyncio.sleep(0.01)
        return state

    state = await start_stubborn()
    assert state.active_state == "active"
    started = time.monotonic()
    assert await units.stop("stubborn", timeout=1) is False
    took = time.monotonic() - started
    assert 1 <= took < 4
    after = await units.unit("stubborn")
    assert after is not None and (after.active_state, after.sub_state) == ("inactive", "dead")
    # Nothing of the unit is left in the sandbox (the shell and its sleep).
    ps = sandbox.run(["ps", "-eo", "args="]).stdout
    assert "sleep 1000" not in ps, ps
    # And it starts again.
    assert (await start_stubborn()).active_state == "active"
    assert await units.stop("stubborn", timeout=1) is False


@pytest.mark.asyncio
async def test_start_failures_say_why(units: SystemdUnits) -> None:
    with pytest.raises(SystemdError) as err:
        await units.start("missing-program")
    assert str(err.value) == (
        "missing-program.service failed to start: exit status 203 (systemd could not execute "
        "the program); see journalctl -u missing-program.service"
    )
    with pytest.raises(SystemdError) as err:
        await units.start("oneshot-false")
    assert str(err.value) == (
        "oneshot-false.service failed to start: exit status 1; "
        "see journalctl -u oneshot-false.service"
    )
    with pytest.raises(SystemdError) as err:
        await units.start("condition-unmet")
    assert str(err.value) == (
        "condition-unmet.service was not started: a Condition= of the unit is not met"
    )
    with pytest.raises(SystemdError) as err:
        await units.start("assert-fails")
    assert str(err.value) == "assert-fails.service was not started: an Assert= of the unit failed"
    with pytest.raises(SystemdError) as err:
        await units.start("needs-missing-program")
    assert str(err.value) == (
        "needs-missing-program.service was not started: a unit it depends on failed to start"
    )
    # Refused outright: systemd's own message.
    with pytest.raises(SystemdError) as err:
        await units.start("no-such-unit")
    assert str(err.value) == (
        "systemd refused to start no-such-unit.service: Unit no-such-unit.service not found."
    )
    with pytest.raises(SystemdError) as err:
        await units.start("bad-setting")
    assert str(err.value) == (
        "systemd refused to start bad-setting.service: "
        "Unit bad-setting.service has a bad unit file setting."
    )


@pytest.mark.asyncio
async def test_systemd_reexecutes(sandbox: SystemdSandbox, units: SystemdUnits) -> None:
    # Debian's systemd package runs `systemctl daemon-reexec` on upgrade: systemd comes back on
    # the bus under a new unique name, and the watch must still trust what it says.
    state = await units.start("sleeper")
    changes = Changes()
    await units.watch("sleeper", changes)
    sandbox.systemctl("daemon-reexec")
    assert await units.unit("sleeper") == state
    kill_main(sandbox, state)
    down = await changes.until("down after the re-execution", is_down)
    assert exit_detail(down) == ("killed by SIGKILL", False)
    assert (await units.start("sleeper")).active_state == "active"


@pytest.mark.asyncio
async def test_connection_lost(sandbox: SystemdSandbox, units: SystemdUnits) -> None:
    # The bus daemon goes away (as on a dbus restart): the backend says so, calls fail clearly.
    sandbox.run(["systemctl", "kill", "--signal=KILL", "dbus.service"])
    reason = await asyncio.wait_for(units.wait_lost(), DEADLINE)
    assert reason == "the system bus closed the connection"
    with pytest.raises(SystemdError, match=r"^the system bus closed the connection$"):
        await units.start("sleeper")


# Inside the sandbox, as the rearm daemon would run there: the default system bus (no address
# given, $DBUS_SYSTEM_BUS_ADDRESS unset) and PIDs of its own namespace, signalled directly.
def test_inside_the_sandbox_on_the_default_bus(sandbox: SystemdSandbox) -> None:
    script = r"""
import asyncio, json, os, signal
os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
from rearm.backends.systemd import SystemdUnits, exit_detail, is_down

async def main():
    units = await SystemdUnits.connect()
    state = await units.start("sleeper")
    downs = asyncio.Queue()
    await units.watch("sleeper", lambda s: is_down(s) and downs.put_nowait(s))
    os.kill(state.main_pid, signal.SIGKILL)
    down = await asyncio.wait_for(downs.get(), 10)
    restarted = await units.start("sleeper")
    stopped = await units.stop("sleeper", 5)
    await units.close()
    print(json.dumps({"detail": exit_detail(down), "restarted": restarted.active_state,
                      "stopped": stopped}))

asyncio.run(main())
"""
    out = sandbox.run_python(script, timeout=30)
    assert json.loads(out.stdout) == {
        "detail": ["killed by SIGKILL", False],
        "restarted": "active",
        "stopped": True,
    }
