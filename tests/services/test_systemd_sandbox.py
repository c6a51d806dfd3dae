"""The systemd sandbox (tests/services/systemd_sandbox.py) works, and shows what a systemd backend
will rely on: start/stop over org.freedesktop.systemd1, unit state on D-Bus, and a pushed
PropertiesChanged signal when a service's main process dies (after Manager.Subscribe).

These tests need root and the machine's systemd. On CI (CI=true) a missing prerequisite fails the
tests instead of skipping them, so that the systemd backend is never shipped untested.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .systemd_sandbox import (
    SystemdSandbox,
    require_sandbox,
    systemd_sandbox,
    unit_object_path,
)

SLEEPER = """\
[Unit]
Description=rearm sandbox test: sleeps

[Service]
ExecStart=/bin/sleep infinity
"""


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    require_sandbox()


@pytest.fixture
def sandbox() -> Iterator[SystemdSandbox]:
    with systemd_sandbox({"sleeper.service": SLEEPER}) as sb:
        yield sb


def busctl_property(sb: SystemdSandbox, path: str, interface: str, name: str) -> str:
    """busctl get-property inside the sandbox: 's "active"' -> 'active', 'u 42' -> '42'."""
    out = sb.run(["busctl", "get-property", "org.freedesktop.systemd1", path, interface, name])
    return out.stdout.split(" ", 1)[1].strip().strip('"')


@pytest.mark.parametrize("user_namespace", [True, False], ids=["userns", "no-userns"])
def test_start_and_stop_a_unit(user_namespace: bool) -> None:
    with systemd_sandbox({"sleeper.service": SLEEPER}, user_namespace=user_namespace) as sb:
        assert sb.system_state == "running", sb.console_log()
        assert sb.boot_seconds < 10
        path = unit_object_path("sleeper.service")
        assert path == "/org/freedesktop/systemd1/unit/sleeper_2eservice"

        sb.systemctl("start", "sleeper.service")
        assert sb.systemctl("is-active", "sleeper.service").stdout.strip() == "active"
        unit, service = "org.freedesktop.systemd1.Unit", "org.freedesktop.systemd1.Service"
        assert busctl_property(sb, path, unit, "ActiveState") == "active"
        assert busctl_property(sb, path, unit, "SubState") == "running"
        main_pid = int(busctl_property(sb, path, service, "MainPID"))
        # The PID is one of the sandbox's namespace: /proc inside shows it as /bin/sleep.
        assert sb.run(["cat", f"/proc/{main_pid}/comm"]).stdout.strip() == "sleep"

        # The same bus from the host, through the socket under the sandbox's directory.
        host = subprocess.run(
            ["busctl", f"--address={sb.bus_address}", "get-property",
             "org.freedesktop.systemd1", path, unit, "ActiveState"],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        assert host.stdout.strip() == 's "active"'

        sb.systemctl("stop", "sleeper.service")
        assert busctl_property(sb, path, unit, "ActiveState") == "inactive"
        assert busctl_property(sb, path, unit, "SubState") == "dead"


# Runs inside the sandbox, as a backend would: dbus-fast on the system bus, Subscribe, LoadUnit,
# StartUnit, then kill the main process and wait for the pushed PropertiesChanged signals.
WATCH_SCRIPT = r"""
import asyncio, json, os, signal, sys, time
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

SD, MANAGER_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT, SERVICE = "org.freedesktop.systemd1.Unit", "org.freedesktop.systemd1.Service"
PROPS = "org.freedesktop.DBus.Properties"
WANTED = ("ActiveState", "SubState", "Result", "MainPID", "ExecMainCode", "ExecMainStatus")


async def main(unit):
    bus = await MessageBus(bus_address=os.environ["DBUS_SYSTEM_BUS_ADDRESS"]).connect()

    async def call(path, interface, member, signature="", body=(), destination=SD):
        reply = await bus.call(Message(destination=destination, path=path, interface=interface,
                                       member=member, signature=signature, body=list(body)))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
        return reply.body

    [path] = await call(MANAGER_PATH, MANAGER, "LoadUnit", "s", [unit])
    queue = asyncio.Queue()

    def on_message(msg):
        if (msg.message_type == MessageType.SIGNAL and msg.member == "PropertiesChanged"
                and msg.path == path):
            interface, changed, _ = msg.body
            queue.put_nowait((time.monotonic(), interface,
                              {k: v.value for k, v in changed.items() if k in WANTED}))

    bus.add_message_handler(on_message)
    await call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
               [f"type='signal',sender='{SD}',path='{path}',interface='{PROPS}',"
                "member='PropertiesChanged'"], destination="org.freedesktop.DBus")
    # Without Subscribe, systemd does not emit unit PropertiesChanged signals at all.
    await call(MANAGER_PATH, MANAGER, "Subscribe")
    events, state = [], {}

    async def wait_for(what, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate(state):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: last state {state}")
            at, interface, changed = await asyncio.wait_for(queue.get(), left)
            state.update(changed)
            events.append({"at": at, "interface": interface, **changed})
        return time.monotonic()

    async def get(interface, name):
        [value] = await call(path, PROPS, "Get", "ss", [interface, name])
        return value.value

    result = {"path": path}
    await call(MANAGER_PATH, MANAGER, "StartUnit", "ss", [unit, "replace"])
    await wait_for("active", lambda s: s.get("ActiveState") == "active"
                   and s.get("SubState") == "running")
    main_pid = await get(SERVICE, "MainPID")
    result["main_pid"] = main_pid

    state.clear()
    killed = time.monotonic()
    os.kill(main_pid, signal.SIGKILL)
    seen = await wait_for("failed after kill", lambda s: s.get("ActiveState") == "failed")
    result["kill_to_signal_ms"] = round((seen - killed) * 1000, 2)
    result["after_kill"] = dict(state)
    result["after_kill_get"] = {n: await get(SERVICE, n)
                                for n in ("Result", "ExecMainCode", "ExecMainStatus")}

    await call(MANAGER_PATH, MANAGER, "ResetFailedUnit", "s", [unit])
    state.clear()
    await call(MANAGER_PATH, MANAGER, "StartUnit", "ss", [unit, "replace"])
    await wait_for("active again", lambda s: s.get("ActiveState") == "active")
    state.clear()
    await call(MANAGER_PATH, MANAGER, "StopUnit", "ss", [unit, "replace"])
    await wait_for("stopped", lambda s: s.get("ActiveState") == "inactive"
                   and s.get("SubState") == "dead")
    result["after_stop"] = dict(state)
    result["events"] = events
    bus.disconnect()
    print(json.dumps(result))


asyncio.run(main(sys.argv[1]))
"""


def test_properties_changed_when_the_main_process_is_killed(sandbox: SystemdSandbox) -> None:
    out = sandbox.run_python(WATCH_SCRIPT, "sleeper.service", timeout=25)
    result: dict[str, Any] = json.loads(out.stdout)
    assert result["path"] == unit_object_path("sleeper.service")
    assert result["main_pid"] > 1
    # The Service interface's change (MainPID, Result, ExecMain*) and the Unit interface's
    # change (ActiveState/SubState) are both pushed, promptly.
    after_kill = result["after_kill"]
    assert after_kill["ActiveState"] == "failed"
    assert after_kill["SubState"] == "failed"
    assert after_kill["MainPID"] == 0
    assert after_kill["Result"] == "signal"
    assert after_kill["ExecMainCode"] == 2  # CLD_KILLED
    assert after_kill["ExecMainStatus"] == int(signal.SIGKILL)
    assert result["after_kill_get"] == {"Result": "signal", "ExecMainCode": 2, "ExecMainStatus": 9}
    assert result["kill_to_signal_ms"] < 2000
    assert result["after_stop"]["ActiveState"] == "inactive"
    assert result["after_stop"]["SubState"] == "dead"
    # systemd's own log (its console, kept in the sandbox directory) says the same.
    log = sandbox.console_log()
    assert "sleeper.service: Main process exited, code=killed, status=9/KILL" in log


async def _host_side_watch(sb: SystemdSandbox, unit: str) -> dict[str, Any]:
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_address=sb.bus_address).connect()
    manager = ("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")

    async def call(
        path: str, interface: str, member: str, signature: str = "", body: list[Any] | None = None
    ) -> list[Any]:
        destination = "org.freedesktop.DBus" if member == "AddMatch" else "org.freedesktop.systemd1"
        reply = await bus.call(
            Message(
                destination=destination,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=body or [],
            )
        )
        assert reply is not None
        assert reply.message_type != MessageType.ERROR, (member, reply.error_name, reply.body)
        return list(reply.body)

    [path] = await call(*manager, "LoadUnit", "s", [unit])
    changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_message(msg: Message) -> None:
        signal = msg.message_type == MessageType.SIGNAL and msg.member == "PropertiesChanged"
        if signal and msg.path == path:
            changes.put_nowait({k: v.value for k, v in msg.body[1].items()})

    bus.add_message_handler(on_message)
    rule = (
        "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus."
        f"Properties',member='PropertiesChanged',path='{path}'"
    )
    await call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", [rule])
    await call(*manager, "Subscribe")
    await call(*manager, "StartUnit", "ss", [unit, "replace"])
    state: dict[str, Any] = {}
    while state.get("SubState") != "running":
        state.update(await asyncio.wait_for(changes.get(), 10))
    [main_pid] = await call(
        path, "org.freedesktop.DBus.Properties", "Get", "ss",
        ["org.freedesktop.systemd1.Service", "MainPID"],
    )  # fmt: skip
    inner_pid: int = main_pid.value
    host_pid = sb.host_pid(inner_pid)
    os.kill(host_pid, signal.SIGKILL)
    state.clear()
    while state.get("ActiveState") != "failed":
        state.update(await asyncio.wait_for(changes.get(), 10))
    bus.disconnect()
    return {"inner_pid": inner_pid, "host_pid": host_pid, **state}


def test_host_side_client_with_pid_translation(sandbox: SystemdSandbox) -> None:
    result = asyncio.run(_host_side_watch(sandbox, "sleeper.service"))
    # D-Bus reports the sandbox's PIDs; signalling from the host needs the host PID.
    assert result["inner_pid"] != result["host_pid"]
    assert result["Result"] == "signal"
    assert result["ExecMainStatus"] == 9


def test_sandbox_is_isolated_from_the_host(sandbox: SystemdSandbox) -> None:
    assert sandbox.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    host_name = socket.gethostname()
    sandbox.run(["hostname", "rearm-sandbox-test"])
    assert sandbox.run(["hostname"]).stdout.strip() == "rearm-sandbox-test"
    assert socket.gethostname() == host_name
    # Kernel knobs are read-only, the network is loopback only.
    # (A harmless knob even if it were writable: the host name is per UTS namespace.)
    write = sandbox.run(
        ["sh", "-c", "cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname"], check=False
    )
    assert write.returncode != 0 and "Read-only" in write.stderr
    links = sandbox.run(["ls", "/sys/class/net"]).stdout.split()
    assert links == ["lo"]
    # Writes to the root file system stay in the sandbox's overlay.
    marker = f"/etc/rearm-sandbox-marker-{os.getpid()}"
    sandbox.run(["touch", marker])
    assert not Path(marker).exists()
    # Only the sandbox's cgroup subtree is in view (the v1 hierarchies are not mounted inside).
    cgroup = sandbox.run(["cat", "/proc/1/cgroup"]).stdout.splitlines()
    assert "0::/init.scope" in cgroup
    # In a user namespace, the sandbox's root may not mount kernel file systems.
    debugfs = sandbox.run(["mount", "-t", "debugfs", "none", "/mnt"], check=False)
    assert debugfs.returncode != 0


def test_teardown_leaves_nothing(tmp_path: Path) -> None:
    with systemd_sandbox({"sleeper.service": SLEEPER}, binds=[tmp_path]) as sb:
        sb.systemctl("start", "sleeper.service")
        # A long-running process started inside, the way a test would run the rearm daemon;
        # it can write to the bound tmp_path.
        daemon = sb.popen(["sh", "-c", f"echo $$ > {tmp_path}/inner.pid; exec sleep infinity"])
        deadline = time.monotonic() + 10
        while not (tmp_path / "inner.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "inner.pid").exists()
        directory, cgroups = sb.dir, [sb.cgroup, sb.launcher_cgroup]
        pidns = os.readlink(f"/proc/{sb.pid}/ns/pid")
        inside = sb.processes()
        assert sb.pid in inside and len(inside) >= 5  # systemd, journald, dbus, sleep, sh
    assert daemon.wait(timeout=10) != 0
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _pid_ns(p) == pidns]
    assert left == []
    assert not any(c.exists() for c in cgroups)
    assert not cgroups[0].parent.exists()
    assert not directory.exists()


def _pid_ns(proc: Path) -> str | None:
    try:
        return os.readlink(proc / "ns" / "pid")
    except OSError:
        return None


def test_unit_object_path_escaping() -> None:
    # systemd's bus_label_escape: all but [A-Za-z0-9] as _xx, and a leading digit too.
    assert unit_object_path("rearm-web@1.service") == (
        "/org/freedesktop/systemd1/unit/rearm_2dweb_401_2eservice"
    )
    assert unit_object_path("3proxy.service").endswith("/_33proxy_2eservice")
