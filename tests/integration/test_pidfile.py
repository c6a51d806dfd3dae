"""Daemons that fork: the pid file is followed, and a stale or foreign pid is never adopted."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .harness import Cluster, alive, wait_for

# A classic double-forking daemon: the start command exits once the daemon has written its
# pid file; the daemon runs on in a session of its own.
FORKER = """
import os, sys, time
pidfile = sys.argv[1]
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)
with open(pidfile + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\\n")
os.rename(pidfile + ".tmp", pidfile)
while True:
    time.sleep(1000)
"""


def _service(cluster: Cluster, tmp_path: Path, name: str, delay: float = 0.0) -> Path:
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    pidfile = tmp_path / f"{name}.pid"
    cluster.write_service(
        name,
        f'command = ["{sys.executable}", "{script}", "{pidfile}", '
        f'"{delay}"]\npidfile = "{pidfile}"\n',
    )
    return pidfile


def test_forking_daemon_is_followed_through_its_pid_file(cluster: Cluster, tmp_path: Path) -> None:
    pidfile = _service(cluster, tmp_path, "forky", delay=0.3)
    cluster.ok("armload", "FORKY", "/S", "/R", "2", "/INT", "0", "/WAIT", "20", "forky")
    w = cluster.watch("FORKY")
    assert w is not None and w["state"] == "running"
    real = int(pidfile.read_text())
    assert w["pid"] == real
    os.kill(real, signal.SIGKILL)
    wait_for("a new pid file", lambda: pidfile.exists() and int(pidfile.read_text()) != real)
    again = cluster.wait_running("FORKY", other_than=real)
    assert again["pid"] == int(pidfile.read_text()) and again["restarts"] == 1
    cluster.ok("armkill", "FORKY")
    assert not alive(again["pid"])


def test_a_stale_pid_file_naming_a_foreign_process_is_not_adopted(
    cluster: Cluster, tmp_path: Path
) -> None:
    pidfile = _service(cluster, tmp_path, "stale")
    stranger = cluster.spawn("/bin/sleep", "1000")  # another program holds the pid in the file
    wait_for("the stranger", lambda: alive(stranger.pid))
    pidfile.write_text(f"{stranger.pid}\n")
    cluster.ok("armload", "STALE", "/S", "/A", "/R", "1", "/WAIT", "20", "stale")
    w = cluster.watch("STALE")
    assert w is not None and w["pid"] != stranger.pid
    assert not any(e["kind"] == "watch_adopt" for e in cluster.events() if e["watch"] == "STALE")
    assert w["pid"] == int(pidfile.read_text())
    assert alive(stranger.pid)


def test_a_pid_file_naming_a_dead_process_is_not_adopted(cluster: Cluster, tmp_path: Path) -> None:
    pidfile = _service(cluster, tmp_path, "dead")
    gone = cluster.spawn("/bin/true")
    gone.wait()
    pidfile.write_text(f"{gone.pid}\n")
    cluster.ok("armload", "DEAD", "/S", "/A", "/WAIT", "20", "dead")
    w = cluster.watch("DEAD")
    assert w is not None and w["pid"] not in (None, gone.pid)


def test_a_running_forking_daemon_is_adopted_with_a(cluster: Cluster, tmp_path: Path) -> None:
    pidfile = _service(cluster, tmp_path, "mine")
    script = tmp_path / "forker.py"
    launcher = cluster.spawn(sys.executable, str(script), str(pidfile))
    launcher.wait()
    real = wait_for("its pid file", lambda: pidfile.exists() and int(pidfile.read_text()))
    cluster.started_pids.append(real)
    r = cluster.run("armload", "MINE", "/S", "mine")
    assert r.returncode == 1 and "already running" in r.stderr
    cluster.ok("armload", "MINE", "/S", "/A", "/R", "1", "mine")
    assert cluster.watch("MINE")["pid"] == real  # type: ignore[index]


def test_no_pid_file_is_a_failed_start(cluster: Cluster, tmp_path: Path) -> None:
    cluster.write_service("nofile", f'command = ["/bin/true"]\npidfile = "{tmp_path}/never.pid"\n')
    r = cluster.run("armload", "NOFILE", "/S", "/WAIT", "2", "nofile")
    assert r.returncode == 1 and "did not start" in r.stderr
