"""`armload /S NAME` for a systemd unit, end to end: the rearm daemon runs inside the systemd
sandbox (a real systemd as PID 1 of private namespaces) and watches units over D-Bus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .systemd_sandbox import SystemdSandbox, require_sandbox, systemd_sandbox

REARM_BIN = Path(sys.executable).parent
UNITS = {
    "napper.service": "[Service]\nExecStart=/bin/sleep 1000\nRestart=no\n",
    # It writes its ready file once the TERM trap is set: armkill must not come before that.
    "stubborn.service": '[Service]\nExecStart=/bin/sh -c \'trap "" TERM; '
    "touch /run/stubborn.ready; while true; do sleep 1; done'\nTimeoutStopSec=600\n",
    "selfish.service": "[Service]\nExecStart=/bin/sleep 1000\nRestart=on-failure\n",
    "broken.service": "[Service]\nType=exec\nExecStart=/nonexistent/program\n",
}


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    require_sandbox()


class Inside:
    """A rearm cluster whose daemon runs inside the sandbox; commands run from the host."""

    def __init__(self, sb: SystemdSandbox) -> None:
        self.sb = sb
        self.home = sb.shared_dir / "home"
        self.env = {**os.environ, "REARM_HOME": str(self.home), "REARM_DRILL": "1"}
        self.daemon: subprocess.Popen[bytes] | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REARM_BIN / args[0]), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 0, f"{args}: {r.stderr}"
        return r.stdout

    def start(self) -> None:
        log = open(self.sb.shared_dir / "daemon.log", "ab")  # noqa: SIM115 -- held by the child
        self.daemon = self.sb.popen(
            [str(REARM_BIN / "rearm"), "daemon"],
            env={"REARM_HOME": str(self.home), "REARM_DRILL": "1"},
            stdout=log,
            stderr=log,
        )
        log.close()
        wait("the daemon", lambda: self.run("rearm", "status").returncode == 0)

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        inner = int((self.home / "run" / "rearm.pid").read_text())
        os.kill(self.sb.host_pid(inner), signal.SIGKILL)
        wait("the daemon to die", lambda: self.run("rearm", "status").returncode != 0)

    def watch(self, watch_id: str) -> dict[str, Any] | None:
        status = json.loads(self.ok("rearm", "status", "--json"))
        return next((w for w in status["watches"] if w["id"] == watch_id), None)

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = self.ok("rearm", "log", "--json", "-n", "100000").splitlines()
        return [e for e in map(json.loads, lines) if e["kind"] == kind]

    def unit_pid(self, unit: str) -> int:
        return int(self.sb.systemctl("show", "-P", "MainPID", unit).stdout.strip())


def wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def inside() -> Iterator[Inside]:
    with systemd_sandbox(UNITS) as sb:
        c = Inside(sb)
        c.ok(
            "rearm",
            "cluster",
            "create",
            "--name",
            "sbx",
            "--ip",
            "127.0.0.1",
            "--server",
            "sandbox-host",
        )
        c.start()
        yield c
        c.run("rearm", "shutdown", "--stop-groups")


def test_a_unit_is_started_watched_restarted_and_escalated(inside: Inside) -> None:
    c = inside
    c.ok("armem", "/M", "reboot")
    c.ok("armload", "NAP", "/S", "/R", "2", "/H", "1", "/INT", "1", "/WAIT", "30", "napper")
    w = c.watch("NAP")
    assert w is not None and w["state"] == "running" and w["backend"] == "systemd"
    assert w["pid"] == c.unit_pid("napper.service")
    for n in (1, 2):
        old = w["pid"]
        began = time.monotonic()
        os.kill(c.sb.host_pid(old), signal.SIGKILL)
        w = wait(
            "the restart",
            lambda old=old: (
                (x := c.watch("NAP"))
                and x["state"] == "running"
                and x["pid"] not in (None, old)
                and x
            ),
        )
        assert time.monotonic() - began >= 1.0, "restarted before /INT 1"
        assert w["restarts"] == n
    assert "killed by SIGKILL" in c.events("fault")[-1]["message"]
    os.kill(c.sb.host_pid(w["pid"]), signal.SIGKILL)
    wait("escalation", lambda: (x := c.watch("NAP")) and x["state"] == "escalated")
    action = c.events("final_action")[-1]["data"]
    assert action["action"] == "reboot" and action["drill"] is True


def test_armkill_stops_the_unit_and_kills_it_after_t(inside: Inside) -> None:
    c = inside
    c.ok("armload", "STUB", "/S", "/R", "1", "/WAIT", "30", "stubborn")
    wait(
        "the TERM trap",
        lambda: c.sb.run(["test", "-e", "/run/stubborn.ready"], check=False).returncode == 0,
    )
    began = time.monotonic()
    out = c.ok("armkill", "STUB", "/T", "1")
    assert 1.0 <= time.monotonic() - began < 15 and "SIGKILL" in out
    state = c.sb.systemctl("show", "-P", "ActiveState", "stubborn.service").stdout.strip()
    assert state in ("inactive", "failed") and c.watch("STUB") is None
    assert not c.events("fault")


def test_units_that_restart_themselves_or_cannot_start_are_refused(inside: Inside) -> None:
    c = inside
    r = c.run("armload", "SELF", "/S", "/R", "1", "selfish")
    assert r.returncode == 1 and "Restart=on-failure" in r.stderr
    r = c.run("armload", "BROKEN", "/S", "/R", "1", "broken")
    assert r.returncode == 1 and "broken.service" in r.stderr
    r = c.run("armload", "NONE", "/S", "/R", "1", "nosuchunit")
    assert r.returncode == 1 and "no systemd unit nosuchunit.service" in r.stderr
    assert c.watch("SELF") is None and c.watch("BROKEN") is None


def test_a_running_unit_needs_a_and_the_daemon_readopts_it(inside: Inside) -> None:
    c = inside
    c.sb.systemctl("start", "napper.service")
    pid = c.unit_pid("napper.service")
    r = c.run("armload", "NAP", "/S", "napper")
    assert r.returncode == 1 and "already running" in r.stderr
    c.ok("armload", "NAP", "/S", "/A", "/R", "3", "napper")
    assert c.watch("NAP")["pid"] == pid  # type: ignore[index]
    c.kill_daemon()
    c.start()
    w = wait("re-adoption", lambda: (x := c.watch("NAP")) and x["state"] == "running" and x)
    assert w["pid"] == pid and c.events("watch_readopt")
    os.kill(c.sb.host_pid(pid), signal.SIGKILL)
    again = wait(
        "the restart by the new daemon",
        lambda: (x := c.watch("NAP")) and x["state"] == "running" and x["pid"] != pid and x,
    )
    assert again["restarts"] == 1
