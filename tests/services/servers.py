"""Helpers for the real-server tests: scratch folders, free ports, the processes a server left,
crashing it and timing its recovery.

The servers run as rearm would run them in production (as `postgres`, `redis`...), so their
folders are made in /tmp (pytest's own tmp_path is readable by root only) and handed to the
server's user. Every process of a server is remembered by pid *and* start time, so the check
that nothing was left behind never touches a process that merely reuses a pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..integration.harness import Cluster, start_time, wait_for
from ..integration.template_cli import template_ok

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
INSTALL_HINT = "run 'bash scripts/test-deps-services.sh' as root"


def need(*programs: str) -> None:
    """Skip (outside CI) or fail (in CI) when a server's program is not installed."""
    missing = [p for p in programs if not os.access(p, os.X_OK)]
    if missing:
        reason = f"not installed: {', '.join(missing)} ({INSTALL_HINT})"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    if os.geteuid() != 0:
        # rearm runs the servers as their own users: only root can do that.
        reason = "the real-server tests run as root (rearm switches to the servers' users)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scratch:
    """Folders under /tmp owned by a server's user, removed at the end of the test."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    def folder(self, name: str, owner: str = "root", mode: int = 0o755) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"rearm-{name}-"))
        self.made.append(path)
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(mode)
        return path

    def remove(self) -> None:
        for path in self.made:
            shutil.rmtree(path, ignore_errors=True)


def session_members(sid: int) -> dict[int, int]:
    """Live processes (pid -> start time) of the session `sid`: a server and all it started.

    rearm starts each server as the leader of a new session, and a daemon that forks makes a
    session of its own; either way the main pid names the session.
    """
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            found[int(entry)] = int(fields[19])
    return found


@dataclass
class Seen:
    """Every server process a test saw; at the end none may be left."""

    procs: dict[int, int] = field(default_factory=dict)  # pid -> start time

    def note(self, main_pid: int) -> None:
        self.procs.update(session_members(main_pid))

    def left(self) -> dict[int, int]:
        return {p: s for p, s in self.procs.items() if start_time(p) == s}

    def end(self, complain: bool = True) -> None:
        """Wait for them to be gone; kill what is left (by pid, start time checked) and, when
        `complain`, fail: a test that failed already is not failed twice for its leftovers."""
        try:
            wait_for("the server's processes to end", lambda: not self.left(), timeout=15)
        except AssertionError:
            left = self.left()
            for pid in left:
                if start_time(pid) == left[pid]:
                    os.kill(pid, signal.SIGKILL)
            if complain:
                raise AssertionError(f"processes left after clean-up: {sorted(left)}") from None


def import_template(cluster: Cluster, group: str, template: str, **values: object) -> str:
    """`rearm group template GROUP TEMPLATE --set KEY=VALUE...`"""
    sets = [f"--set={key}={value}" for key, value in values.items()]
    return template_ok(cluster, "group", "template", group, template, *sets)


@dataclass
class Server:
    """A server brought online by rearm from a template, and how to ask it something.

    `values` are the template's --set values that point it at the test's folders and ports.
    """

    cluster: Cluster
    template: str
    values: dict[str, object]
    watch: str
    answers: Callable[[], bool]
    seen: Seen
    group: str = "srv"

    @property
    def name(self) -> str:
        return self.template

    def import_template(self, **extra: object) -> str:
        if self.cluster.group(self.group) is None:
            self.cluster.rearm("group", "create", self.group, "--no-auto-start")
        return import_template(self.cluster, self.group, self.template, **{**self.values, **extra})

    def start(self) -> int:
        out = self.cluster.rearm("group", "start", self.group)
        assert "online" in out, out
        # The start script's armload has /WAIT: online means it answered already.
        assert self.answers(), f"{self.name} does not answer after 'rearm group start'"
        return self.main_pid()

    def main_pid(self, watch: str | None = None) -> int:
        pid = int(self.cluster.wait_running(watch or self.watch, timeout=60)["pid"])
        self.seen.note(pid)
        return pid

    def crash(self, timeout: float = 90, watch: str | None = None) -> float:
        """SIGKILL the main process (of `watch`, default the server's); seconds until the
        server answers again."""
        pid = self.main_pid(watch)
        began = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        # rearm ends what the dead main process left (workers, backends): once the session
        # is empty, whatever answers is the restarted server, not a leftover worker.
        wait_for(f"{self.name}'s old processes to end", lambda: not session_members(pid), 15)
        wait_for(f"{self.name} to answer again", self.answers, timeout, interval=0.02)
        took = time.monotonic() - began
        self.main_pid(watch)
        return took

    def crash_past_threshold(self, retry: int = 3, timeout: float = 90) -> list[float]:
        """Crash it `retry` times (each restarted), then once more: the final action fires."""
        times = [self.crash(timeout) for _ in range(retry)]
        pid = self.main_pid()
        os.kill(pid, signal.SIGKILL)
        self.cluster.wait_state(self.watch, "escalated", timeout=timeout)
        return times


def assert_reboot_drilled(cluster: Cluster, watch: str) -> None:
    """The fault over /R fired the guide's final action, reboot, recorded in drill mode only."""
    actions = wait_for(
        f"the final action for {watch}",
        lambda: [e for e in cluster.events("final_action") if e["watch"] == watch],
    )
    assert [a["data"] for a in actions] == [
        {"action": "reboot", "requested": "reboot", "drill": True, "guarded": False}
    ]


def tcp_greeting(port: int, expect: bytes) -> bool:
    """Whether a server on 127.0.0.1:port greets with `expect` (SMTP 220, IMAP * OK...)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(200).startswith(expect)
    except OSError:
        return False


def run_as(user: str, argv: list[str], cwd: Path) -> None:
    """Run a set-up command (initdb...) as the server's user."""
    r = subprocess.run(
        argv,
        user=user,
        group=pwd.getpwnam(user).pw_gid,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"{argv[0]} failed ({r.returncode}): {r.stderr}{r.stdout}"


def user_of(pid: int) -> str:
    """The name of the real user a process runs as."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return pwd.getpwuid(int(line.split()[1])).pw_name
    raise AssertionError(f"no Uid line for pid {pid}")
