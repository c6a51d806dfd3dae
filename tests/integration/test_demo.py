"""`rearm demo` (issue 13): its web server does not serve the demo's home (which holds the
Manager's user file), Ctrl-C at any moment leaves no process and no file behind, and the
hints it prints work from a new shell. And README step 4's `rearm daemon --wait-ready`."""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .harness import BIN, Cluster, wait_for


class Demo:
    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REARM_")}
        self.proc = subprocess.Popen(
            [str(BIN / "rearm"), "demo", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
        self.lines: list[str] = []
        self.root: str | None = None
        # Its output is read by a thread: a wait for a line has a deadline even when the demo
        # prints nothing more.
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Read its output until a line matches `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r}: {''.join(self.lines)}"
                ) from None
            if line is None:
                raise AssertionError(f"the demo ended first: {''.join(self.lines)}")
            self.lines.append(line)
            if self.root is None and line.startswith("demo home: "):
                self.root = line.split()[2]
            found = re.search(pattern, line)
            if found:
                return found

    def ctrl_c(self) -> str:
        """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=120)
        rest = []
        while (line := self._queue.get(timeout=30)) is not None:
            rest.append(line)
        return "".join(rest)

    def close(self) -> None:
        """After a failure: end the demo and whatever it left (found by its unique home)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.root is not None:
            for pid in _carrying(self.root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.root, ignore_errors=True)


def _carrying(root: str) -> list[int]:
    """Processes whose command line or environment names the demo's home."""
    needle = root.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            found.append(int(entry))
    return found


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        conn.close()


def _nothing_left(root: str) -> None:
    wait_for("no process of the demo left", lambda: not _carrying(root), timeout=30)
    assert not os.path.exists(root)


def test_the_demo_serves_its_own_page_its_hints_work_and_ctrl_c_cleans_up() -> None:
    demo = Demo()
    try:
        root, hint = demo.until(r"^demo home: (\S+)  \(from any shell: (.+) status\)$").groups()
        port = int(demo.until(r"WEB serves http://127\.0\.0\.1:(\d+)/").group(1))
        demo.until(r"^running; Ctrl-C ends the demo")
        # Its web server serves a page of its own, not the home (etc/, var/, the users file).
        status, body = _get(port, "/")
        assert status == 200 and "Served by the demo's watch WEB" in body
        assert "etc/" not in body and "var/" not in body
        for path in ("/etc/cluster.toml", "/../etc/cluster.toml", "/etc/manager-users.toml"):
            assert _get(port, path)[0] == 404, path
        # Its hint, from a new shell: no venv on PATH, no REARM_HOME.
        shell = subprocess.run(
            ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", "sh", "-c", f"{hint} status"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        assert "Group    demo" in shell.stdout and "Online" in shell.stdout
        rest = demo.ctrl_c()
        assert "demo over" in rest and demo.proc.returncode == 0
        _nothing_left(root)
    finally:
        demo.close()


@pytest.mark.parametrize(
    "moment",
    [
        r"^demo home:",  # creating the cluster
        r"^daemon pid",  # the daemon just started the group
        r"^crashing WEB",  # WEB was just killed: rearm is restarting it
    ],
)
def test_ctrl_c_at_any_moment_leaves_nothing_behind(moment: str) -> None:
    demo = Demo()
    try:
        root = demo.until(r"^demo home: (\S+)").group(1)
        if moment != r"^demo home:":
            demo.until(moment)
        demo.ctrl_c()
        assert demo.proc.returncode == 0, "".join(demo.lines)
        _nothing_left(root)
    finally:
        demo.close()


def test_daemon_wait_ready_returns_once_the_daemon_answers(offline_cluster: Cluster) -> None:
    c = offline_cluster
    began = time.monotonic()
    out = c.rearm("daemon", "--wait-ready")
    assert "the daemon is ready" in out and time.monotonic() - began < 30
    # No race: the very next command is answered.
    status = c.run("rearm", "status")
    assert status.returncode == 0, status.stderr
    assert (c.home / "var" / "log" / "daemon.log").exists()
    assert "already running" in c.rearm("daemon", "--wait-ready")
    c.rearm("shutdown")
    wait_for("the daemon to stop", lambda: c.run("rearm", "status").returncode == 3)
    # A daemon that cannot start says why, with the end of its log.
    (c.home / "etc" / "cluster.toml").write_text("not = [valid\n")
    r = c.run("rearm", "daemon", "--wait-ready", "10")
    assert r.returncode == 1 and "exited with status 2 before it answered" in r.stderr
    assert "| rearm daemon:" in r.stderr
    assert sys.executable  # the daemon ran from this interpreter's environment
