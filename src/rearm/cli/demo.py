"""`rearm demo`: a whole cluster in a temporary home, in drill mode, to see recovery happen.

It creates a cluster and a group whose start script armloads a small web server, starts the
daemon, crashes the web server once with SIGKILL and shows rearm restarting it, then keeps
running until Ctrl-C (or --seconds) and cleans up everything it started.

- The web server serves a folder of its own (www/, one page), never the demo's home: that holds
  the Manager's user file and the cluster's configuration.
- Ctrl-C at any moment leaves nothing behind: the clean-up cannot be interrupted, stops the
  groups and the daemon, then ends any process still carrying the demo's home (found by its
  environment) and removes the home.
- The hints it prints are whole commands (absolute paths, --home): they work from a new shell.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from rearm.api.client import ApiFailure, DaemonNotRunning, call
from rearm.config import create_group, script_path, write_atomic
from rearm.paths import Home
from rearm.web.users import save_user

DEMO_PORT = 8471
MANAGER_PORT = 8470
START_SCRIPT = """#!/bin/sh
# The demo group's start script: one armload line in the START section.
case "$REARM_EVENT" in
START)
    armload WEB /R 3 /H 1 /INT 1 {python} -m http.server {port} \
        --bind 127.0.0.1 --directory "$REARM_HOME/www"
    ;;
esac
"""
INDEX = "<!doctype html><title>rearm demo</title><p>Served by the demo's watch WEB.</p>\n"
STOP_SCRIPT = """#!/bin/sh
case "$REARM_EVENT" in
STOP)
    armkill WEB
    ;;
esac
"""


def _port_free_or_any(preferred: int) -> int:
    """`preferred` when nothing listens on it, else a free port: the demo must not collide."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (DaemonNotRunning, ApiFailure):
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"demo: timed out waiting for {what}")


def _web_watch(home: Home) -> dict[str, Any] | None:
    for group in call(home.socket, "status")["groups"]:
        for w in group["watches"]:
            if w["id"] == "WEB":
                return dict(w)
    return None


def _rearm_command(root: str) -> list[str]:
    """How to run rearm for this home from any shell: absolute, with --home."""
    beside = os.path.join(os.path.dirname(sys.executable), "rearm")
    if os.access(beside, os.X_OK):
        return [beside, "--home", root]
    return [sys.executable, "-m", "rearm.cli.main", "--home", root]


def run_demo(home_dir: str | None, seconds: float) -> int:
    root = home_dir or tempfile.mkdtemp(prefix="rearm-demo-")
    home = Home.from_env(root)
    daemon: subprocess.Popen[bytes] | None = None
    _started.clear()
    try:
        daemon = _run(root, home, seconds)
    except KeyboardInterrupt:
        daemon = _started.get("daemon", daemon)
    finally:
        # Nothing may interrupt the clean-up: a second Ctrl-C would leave the rest behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _clean_up(root, home, _started.get("daemon", daemon), remove=home_dir is None)
        finally:
            signal.signal(signal.SIGINT, previous)
    print("demo over: group stopped, daemon stopped" + ("" if home_dir else ", home removed"))
    return 0


# The daemon once started, kept where the clean-up finds it even when Ctrl-C falls between its
# start and the assignment of its Popen.
_started: dict[str, subprocess.Popen[bytes]] = {}


def _run(root: str, home: Home, seconds: float) -> subprocess.Popen[bytes]:
    rearm = _rearm_command(root)
    shown = shlex.join(rearm)
    env = {**os.environ, "REARM_HOME": root, "REARM_DRILL": "1"}
    print(f"demo home: {root}  (from any shell: {shown} status)", flush=True)
    if not os.path.exists(home.cluster_file):
        subprocess.run(
            [
                *rearm,
                "cluster",
                "create",
                "--name",
                "demo",
                "--ip",
                "127.0.0.1",
                "--server",
                "demo-server",
                "--final-action",
                "reboot",
            ],
            check=True,
            env=env,
        )
        manager_port = _port_free_or_any(MANAGER_PORT)
        subprocess.run(
            [*rearm, "cluster", "set", f"manager_port={manager_port}"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    password = secrets.token_urlsafe(9)  # a new one each run, printed below
    save_user(home, "admin", password, "admin")
    web_port = _port_free_or_any(DEMO_PORT)
    www = os.path.join(root, "www")
    os.makedirs(www, mode=0o755, exist_ok=True)
    write_atomic(os.path.join(www, "index.html"), INDEX)
    if not os.path.exists(home.group_dir("demo")):
        create_group(home, "demo", description="a web server watched by rearm")
        write_atomic(
            script_path(home, "demo", "start"),
            START_SCRIPT.format(python=sys.executable, port=web_port),
            0o755,
        )
        write_atomic(script_path(home, "demo", "stop"), STOP_SCRIPT, 0o755)
    os.makedirs(home.var, exist_ok=True)
    with open(os.path.join(home.var, "daemon.log"), "ab") as daemon_log:
        # Ctrl-C is held while the daemon starts, so that it is always known to the clean-up.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            _started["daemon"] = daemon = subprocess.Popen(
                [*rearm, "daemon"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=daemon_log,
                stderr=daemon_log,
                start_new_session=True,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    web = _wait_for(
        "the demo group to come online",
        lambda: (w := _web_watch(home)) and w["state"] == "running" and w,
    )
    print(
        f"daemon pid {daemon.pid}; group demo online; WEB serves "
        f"http://127.0.0.1:{web_port}/ (pid {web['pid']})"
    )
    url = call(home.socket, "status")["cluster"]["manager_url"]
    print(f"Manager: {url}  (user admin, password {password})")
    print(f"crashing WEB with SIGKILL (pid {web['pid']}) ...")
    os.kill(web["pid"], signal.SIGKILL)
    again = _wait_for(
        "the restart",
        lambda: (
            (w := _web_watch(home)) and w["state"] == "running" and w["pid"] != web["pid"] and w
        ),
    )
    print(
        f"rearm restarted WEB: pid {again['pid']}, restarts {again['restarts']}, "
        f"faults in window {again['faults_in_window']} of 3 allowed"
    )
    subprocess.run([*rearm, "status"], env=env)
    print("event log:")
    subprocess.run([*rearm, "log", "-n", "8"], env=env)
    if seconds > 0:
        print(f"running {seconds:g} s more ...", flush=True)
        time.sleep(seconds)
    else:
        print("running; Ctrl-C ends the demo. Try, from any shell:")
        print(f"  kill -9 {again['pid']}        # crash WEB again")
        print(f"  {shown} status")
        print(f"  {shown} log --follow", flush=True)
        while daemon.poll() is None:
            time.sleep(0.5)
    return daemon


def _clean_up(root: str, home: Home, daemon: subprocess.Popen[bytes] | None, remove: bool) -> None:
    if daemon is not None:
        _stop(home, daemon)
    _end_leftovers(home)
    if remove:
        shutil.rmtree(root, ignore_errors=True)


def _stop(home: Home, daemon: subprocess.Popen[bytes]) -> None:
    try:
        call(home.socket, "shutdown", {"stop_groups": True})
        daemon.wait(timeout=60)
    except (DaemonNotRunning, ApiFailure, subprocess.TimeoutExpired):
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=10)


def _end_leftovers(home: Home) -> None:
    """Every target still carrying this demo's home in its environment (one the daemon had no
    time to stop): the home is unique, so these are the demo's own."""
    # REARM_STATE_DIR is set only for the targets the daemon started (never for a shell that
    # an operator pointed at the demo's home).
    mark = f"REARM_STATE_DIR={home.var}".encode()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = set(f.read().split(b"\0"))
        except OSError:
            continue
        if mark in environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
