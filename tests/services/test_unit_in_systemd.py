"""`rearm install` in a real systemd (the sandbox of systemd_sandbox.py, PID 1 of private
namespaces): the unit starts the daemon as Type=notify, brings the auto_start group online,
restarts a killed daemon without touching the services (KillMode=process), and leaves the
daemon down after `rearm shutdown`."""

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

REARM = str(Path(sys.executable).parent / "rearm")


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    require_sandbox()


@pytest.fixture
def sandbox() -> Iterator[SystemdSandbox]:
    with systemd_sandbox() as sb:
        yield sb


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(home: Path) -> dict[str, Any] | None:
    r = subprocess.run(
        [REARM, "--home", str(home), "status", "--json"], capture_output=True, text=True
    )
    return json.loads(r.stdout) if r.returncode == 0 else None


def _main_pid(sb: SystemdSandbox) -> int:
    out = sb.systemctl("show", "-P", "MainPID", "rearm.service").stdout.strip()
    return int(out)


def test_installed_unit_runs_the_daemon_and_restarts_it_without_touching_services(
    sandbox: SystemdSandbox,
) -> None:
    sb = sandbox
    home = sb.shared_dir / "home"
    rearm = [REARM, "--home", str(home)]
    subprocess.run(
        [
            *rearm,
            "cluster",
            "create",
            "--name",
            "sbx",
            "--ip",
            "127.0.0.1",
            "--server",
            "sandbox-host",
        ],
        check=True,
    )
    subprocess.run([*rearm, "group", "create", "svc"], check=True)
    (home / "etc/groups/svc/start.sh").write_text(
        '#!/bin/sh\ncase "$REARM_EVENT" in\nSTART) armload SLEEPY /R 3 /bin/sleep 1000 ;;\nesac\n'
    )
    # The real install, inside: the sandbox's private /etc/systemd/system and its systemctl.
    out = sb.run([*rearm, "install"]).stdout
    assert "rearm.service" in out
    assert sb.systemctl("is-active", "rearm.service", check=False).stdout.strip() == "active"
    status = _wait(
        "the group online",
        lambda: (s := _status(home)) and s["groups"][0]["state"] == "online" and s,
    )
    sleepy = status["groups"][0]["watches"][0]["pid"]
    assert status["cluster"]["drill"] is True

    first = _main_pid(sb)
    os.kill(sb.host_pid(first), signal.SIGKILL)
    second = _wait(
        "systemd to restart the daemon",
        lambda: (
            (p := _main_pid(sb)) not in (0, first)
            and sb.systemctl("is-active", "rearm.service", check=False).stdout.strip() == "active"
            and p
        ),
    )
    assert second != first
    status = _wait("the new daemon to answer", lambda: _status(home))
    w = status["groups"][0]["watches"][0]
    assert w["pid"] == sleepy and w["state"] == "running", "KillMode=process kept the service"

    subprocess.run([*rearm, "shutdown"], check=True)
    _wait(
        "the daemon to stay down",
        lambda: (
            sb.systemctl("is-active", "rearm.service", check=False).stdout.strip() == "inactive"
        ),
    )
    # A restart to come would show as SubState auto-restart; "dead" with Result success means
    # systemd took the exit status as a deliberate stop (SuccessExitStatus, RestartPrevent...).
    shown = sb.systemctl("show", "-P", "SubState", "-P", "Result", "rearm.service").stdout.split()
    assert sorted(shown) == ["dead", "success"]
    assert sb.systemctl("is-enabled", "rearm.service", check=False).stdout.strip() == "enabled"
