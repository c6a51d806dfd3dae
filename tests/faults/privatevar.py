"""A cluster whose var/ is a filesystem of its own -- a small tmpfs, or an ext4 image on a loop
device -- mounted in a private mount namespace, so that a test can fill it up or make it fail
without touching the machine's disks or anyone else's view of the filesystem.

A sleeping "holder" process owns the namespace; every daemon of the test runs in it (nsenter),
so a daemon killed with SIGKILL and started again finds the same var/. The test reaches var/
through /proc/HOLDER/root. The watched services live in the namespace too (they inherit it);
it ends with the last of them. Root is needed (mount); outside CI the tests skip without it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import BIN, Cluster, start_time, wait_for

READ_DB = """
import json, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(json.dumps(conn.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()))
"""


def require_namespaces() -> None:
    """Skip without root or util-linux's unshare/nsenter; on CI (CI=true) fail instead."""
    why = None
    if os.geteuid() != 0:
        why = "needs root (mount in a private mount namespace)"
    elif not (shutil.which("unshare") and shutil.which("nsenter")):
        why = "needs unshare and nsenter (util-linux)"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"private var/ unavailable on CI: {why}")
        pytest.skip(why)


def ext4_image(path: Path, size: int = 32 << 20) -> Path:
    """An empty ext4 file system in the file `path`, for a loop mount."""
    if not (shutil.which("mkfs.ext4") and os.path.exists("/dev/loop-control")):
        if os.environ.get("CI") == "true":
            pytest.fail("needs mkfs.ext4 and loop devices")
        pytest.skip("needs mkfs.ext4 and loop devices")
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True, capture_output=True)
    return path


class MountNamespace:
    """A private mount namespace, owned by a sleeping holder process, in which the shell
    command `mount` ran first. The test reaches the namespace's files through
    /proc/HOLDER/root and runs commands in it with nsenter."""

    def __init__(self, mount: str) -> None:
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"{mount} && echo mounted && exec sleep infinity",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != b"mounted":
            self.holder.wait(timeout=10)
            assert self.holder.stderr is not None
            problem = self.holder.stderr.read().decode(errors="replace").strip()
            if os.environ.get("CI") == "true":
                pytest.fail(f"cannot mount in a private namespace: {problem}")
            pytest.skip(f"cannot mount in a private namespace here: {problem}")

    def path(self, inside: Path) -> Path:
        """`inside` (an absolute path in the namespace) as this process can reach it."""
        return Path(f"/proc/{self.holder.pid}/root{inside}")

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.holder.pid), "-m", "--", *argv],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def end(self) -> None:
        """The holder goes, and with the last process in it the namespace and its mounts."""
        if self.holder.poll() is None:
            os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait(timeout=30)
        for pipe in (self.holder.stdout, self.holder.stderr):
            if pipe is not None:
                pipe.close()


class PrivateVarCluster(Cluster):
    """`mount` is a shell command run first in the new namespace; {var} is var/'s path."""

    def __init__(self, home: Path, mount: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(home, extra_env)
        var = home / "var"
        var.mkdir(parents=True, exist_ok=True)
        self.namespace = MountNamespace(mount.format(var=var))
        self.holder = self.namespace.holder
        self.seen_pids: set[tuple[int, int]] = set()

    # --- var/ as the namespace sees it ----------------------------------------------------
    @property
    def var(self) -> Path:
        return self.namespace.path(self.home / "var")

    def in_namespace(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.namespace.run(*argv)

    def db(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the state database. From inside the namespace: SQLite resolves the magic
        /proc/PID/root link to "/" and would look for the file in the machine's view."""
        db = str(self.home / "var" / "state.db")
        r = self.in_namespace(sys.executable, "-c", READ_DB, db, sql, json.dumps(args))
        assert r.returncode == 0, r.stderr
        return [tuple(row) for row in json.loads(r.stdout)]

    def fill(self) -> int:
        """Fill var/ to the last byte with a filler file; returns its size."""
        fd = os.open(self.var / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        total = 0
        try:
            for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
                data = b"\0" * chunk
                while True:
                    try:
                        written = os.write(fd, data)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
                    total += written
                    if written < chunk:
                        break
        finally:
            os.close(fd)
        return total

    def free(self) -> None:
        (self.var / "filler").unlink()

    # --- the daemon, in the namespace -----------------------------------------------------
    def start_daemon(self) -> None:
        assert self.daemon is None or self.daemon.poll() is not None
        log = open(self.daemon_log, "ab")  # noqa: SIM115 -- held by the child
        # nsenter enters the mount namespace and execs: the daemon is this very process.
        self.daemon = subprocess.Popen(
            ["nsenter", "-t", str(self.holder.pid), "-m", "--", str(BIN / "rearm"), "daemon"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        wait_for(
            "the daemon to answer",
            lambda: self.run("rearm", "status").returncode == 0 or self._died(),
        )

    def watch(self, watch_id: str) -> dict[str, Any] | None:
        w = super().watch(watch_id)
        if w and w["pid"] and (start := start_time(w["pid"])) is not None:
            self.seen_pids.add((w["pid"], start))  # ended at clean-up if still there
        return w

    def cleanup(self) -> None:
        self.stop_daemon(stop_groups=True)
        for pid, start in self.seen_pids:
            if start_time(pid) == start:
                os.killpg(pid, signal.SIGKILL)
        self.namespace.end()
