"""A real rearm cluster for tests: a temporary REARM_HOME, the daemon as a child process in
drill mode, the installed commands, and waits on conditions with deadlines (never fixed sleeps).

Clean-up ends only what the test started: the groups are stopped through the daemon, then any
process still recorded in the state database is ended by its process group, after checking its
start time so that a reused pid is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

BIN = Path(sys.executable).parent
T = TypeVar("T")


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.02
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def start_time(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def alive(pid: int) -> bool:
    return start_time(pid) is not None


class Cluster:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "REARM_HOME": str(home),
            "REARM_DRILL": "1",  # belt and braces: the cluster is in drill mode as well
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            **(extra_env or {}),
        }
        self.env.pop("REARM_GROUP", None)
        self.env.pop("REARM_EVENT", None)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_log = home / "daemon.log"
        self.started_pids: list[int] = []

    # --- commands -----------------------------------------------------------------------------
    def run(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        program = args[0]
        path = str(BIN / program) if (BIN / program).exists() else program
        return subprocess.run(
            [path, *args[1:]],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, timeout: float = 60) -> str:
        r = self.run(*args, timeout=timeout)
        assert r.returncode == 0, f"{args} failed ({r.returncode}): {r.stderr}{r.stdout}"
        return r.stdout

    def rearm(self, *args: str) -> str:
        return self.ok("rearm", *args)

    def status(self) -> dict[str, Any]:
        return json.loads(self.rearm("status", "--json"))

    def watches(self) -> dict[str, dict[str, Any]]:
        s = self.status()
        found = {w["id"].upper(): w for w in s["watches"]}
        for g in s["groups"]:
            found.update({w["id"].upper(): w for w in g["watches"]})
        return found

    def watch(self, watch_id: str) -> dict[str, Any] | None:
        return self.watches().get(watch_id.upper())

    def group(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.status()["groups"] if g["name"] == name), None)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = self.rearm("log", "--json", "-n", "100000")
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [e for e in events if kind is None or e["kind"] == kind]

    def wait_running(
        self, watch_id: str, other_than: int | None = None, timeout: float = 15
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            w = self.watch(watch_id)
            if w and w["state"] == "running" and w["pid"] and w["pid"] != other_than:
                return w
            return None

        return wait_for(f"{watch_id} running (not pid {other_than})", check, timeout)

    def wait_state(self, watch_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
        return wait_for(
            f"{watch_id} in state {state}",
            lambda: (w := self.watch(watch_id)) and w["state"] == state and w,
            timeout,
        )

    # --- configuration ------------------------------------------------------------------------
    def create(self, **props: str) -> None:
        self.rearm(
            "cluster", "create", "--name", "testcl", "--ip", "127.0.0.1", "--server", "test-server"
        )
        if props:
            self.rearm("cluster", "set", *(f"{k}={v}" for k, v in props.items()))

    def write_group(
        self, name: str, start: str, stop: str = "", *, auto_start: bool = False, extra: str = ""
    ) -> Path:
        self.rearm("group", "create", name, *([] if auto_start else ["--no-auto-start"]))
        folder = self.home / "etc" / "groups" / name
        (folder / "start.sh").write_text(
            f'#!/bin/sh\ncase "$REARM_EVENT" in\nSTART|RECOVER)\n{start}\n;;\nesac\n'
        )
        (folder / "stop.sh").write_text(
            f'#!/bin/sh\ncase "$REARM_EVENT" in\nSTOP)\n{stop}\n;;\nesac\n'
        )
        if extra:
            with open(folder / "group.toml", "a") as f:
                f.write(extra)
        return folder

    def write_service(self, name: str, text: str) -> None:
        path = self.home / "etc" / "services" / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    # --- the daemon ---------------------------------------------------------------------------
    def start_daemon(self, pass_fds: tuple[int, ...] = (), nofile: int | None = None) -> None:
        """`nofile`: the daemon's descriptor limit, soft and hard (it cannot raise it)."""
        assert self.daemon is None or self.daemon.poll() is not None
        log = open(self.daemon_log, "ab")  # noqa: SIM115 -- held by the child
        limit = None
        if nofile is not None:
            import resource

            def limit() -> None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.daemon = subprocess.Popen(
            [str(BIN / "rearm"), "daemon"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=limit,  # one setrlimit before exec
        )
        log.close()
        wait_for(
            "the daemon to answer",
            lambda: self.run("rearm", "status").returncode == 0 or self._died(),
        )

    def _died(self) -> bool:
        assert self.daemon is not None
        if self.daemon.poll() is not None:
            raise AssertionError(f"the daemon exited: {self.daemon_log.read_text()[-2000:]}")
        return False

    def kill_daemon(self, sig: int = signal.SIGKILL) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(sig)
        self.daemon.wait(timeout=30)

    def stop_daemon(self, stop_groups: bool = True) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        r = self.run("rearm", "shutdown", *(["--stop-groups"] if stop_groups else []))
        if r.returncode == 0:
            try:
                self.daemon.wait(timeout=60)
                return
            except subprocess.TimeoutExpired:
                pass
        self.daemon.kill()
        self.daemon.wait(timeout=30)

    def cleanup(self) -> None:
        self.stop_daemon(stop_groups=True)
        for pid in self.started_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        db = self.home / "var" / "state.db"
        if db.exists():
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT pid, pid_start, own_group FROM watches").fetchall()
            for pid, pid_start, own_group in rows:
                if pid and pid_start is not None and start_time(pid) == pid_start:
                    if own_group:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        """A process the test starts itself (e.g. to be adopted); ended at clean-up."""
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started_pids.append(proc.pid)
        return proc
