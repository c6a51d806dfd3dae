"""A crash of the daemon leaves services running; the next daemon re-adopts them (SPEC §3)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from .harness import Cluster, alive, start_time, wait_for


def test_kill_9_of_the_daemon_then_restart_readopts_with_counters(cluster: Cluster) -> None:
    cluster.ok("armload", "DUR", "/R", "5", "/H", "1", "/INT", "0", "/bin/sleep", "1000")
    pid = cluster.wait_running("DUR")["pid"]
    for _ in range(2):
        os.kill(pid, signal.SIGKILL)
        pid = cluster.wait_running("DUR", other_than=pid)["pid"]
    before = cluster.watch("DUR")
    assert before is not None and before["restarts"] == 2 and before["faults_in_window"] == 2

    cluster.kill_daemon(signal.SIGKILL)
    assert alive(pid), "the service must outlive the daemon"
    cluster.start_daemon()
    after = cluster.watch("DUR")
    assert after is not None
    assert after["pid"] == pid and after["state"] == "running"
    assert after["restarts"] == 2 and after["faults_in_window"] == 2
    assert any(e["watch"] == "DUR" for e in cluster.events("watch_readopt"))
    # The new daemon keeps restarting it, and counts on from the old counters.
    os.kill(pid, signal.SIGKILL)
    again = cluster.wait_running("DUR", other_than=pid)
    assert again["restarts"] == 3 and again["faults_in_window"] == 3


def test_a_service_that_died_while_no_daemon_watched_is_restarted(cluster: Cluster) -> None:
    cluster.ok("armload", "GONE", "/R", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("GONE")["pid"]
    cluster.kill_daemon(signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    wait_for("the old process to end", lambda: not alive(pid))
    cluster.start_daemon()
    w = cluster.wait_running("GONE", other_than=pid)
    assert w["restarts"] == 1 and w["faults_in_window"] == 1
    faults = [e for e in cluster.events("fault") if e["watch"] == "GONE"]
    assert "while the daemon was not running" in faults[-1]["message"]


def test_a_reused_pid_is_never_adopted(cluster: Cluster) -> None:
    """The stored pid now belongs to another process: its start time tells them apart."""
    cluster.ok("armload", "REUSE", "/R", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("REUSE")["pid"]
    cluster.kill_daemon(signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    wait_for("the old process to end", lambda: not alive(pid))
    # A process the test owns stands in for "another program that got the same pid".
    stranger = cluster.spawn("/bin/sleep", "2000")
    wait_for("the stranger to run", lambda: alive(stranger.pid))
    db = cluster.home / "var" / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE watches SET pid=? WHERE key='REUSE'", (stranger.pid,))
    cluster.start_daemon()
    w = cluster.wait_running("REUSE", other_than=stranger.pid)
    assert w["pid"] != stranger.pid and w["restarts"] == 1
    assert alive(stranger.pid), "rearm must not touch a process it does not own"


def test_crash_between_spawn_and_record_adopts_instead_of_duplicating(cluster: Cluster) -> None:
    """Simulate a crash right after a spawn: the row says STARTING with no pid recorded."""
    cluster.ok("armload", "TOK", "/R", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("TOK")["pid"]
    cluster.kill_daemon(signal.SIGKILL)
    db = cluster.home / "var" / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE watches SET state='starting', pid=NULL, pid_start=NULL")
    cluster.start_daemon()
    w = cluster.wait_running("TOK")
    assert w["pid"] == pid, "the process started before the crash is adopted, not duplicated"
    assert w["restarts"] == 0
    sleepers = [
        p
        for p in os.listdir("/proc")
        if p.isdigit()
        and _cmdline(int(p)) == b"/bin/sleep\x001000\x00"
        and _environ_has(int(p), b"REARM_WATCH=TOK")
    ]
    assert sleepers == [str(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def test_pending_restart_survives_a_daemon_crash(cluster: Cluster) -> None:
    cluster.ok("armload", "LATER", "/R", "3", "/INT", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("LATER")["pid"]
    os.kill(pid, signal.SIGKILL)
    cluster.wait_state("LATER", "restarting")
    killed = time.monotonic()
    cluster.kill_daemon(signal.SIGKILL)
    cluster.start_daemon()
    assert cluster.watch("LATER")["state"] == "restarting"  # type: ignore[index]
    w = cluster.wait_running("LATER", timeout=10)
    assert time.monotonic() - killed < 8
    assert w["restarts"] == 1


def test_service_logs_survive_the_daemon(cluster: Cluster) -> None:
    cluster.ok(
        "armload",
        "TICK",
        "/R",
        "1",
        "/bin/sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done",
    )
    log = cluster.home / "var" / "log" / "watches" / "TICK.log"
    wait_for("ticks", lambda: log.exists() and "tick 2" in log.read_text())
    cluster.kill_daemon(signal.SIGKILL)
    size = log.stat().st_size
    wait_for("the service to keep writing without a daemon", lambda: log.stat().st_size > size)
    cluster.start_daemon()


def test_group_state_survives_and_auto_start_is_not_rerun(
    offline_cluster: Cluster, tmp_path: Path
) -> None:
    c = offline_cluster
    trace = tmp_path / "trace"
    c.write_group(
        "auto", f"echo $REARM_EVENT >> {trace}\narmload AUTOW /R 2 /bin/sleep 1000", auto_start=True
    )
    c.start_daemon()
    wait_for("auto start", lambda: (g := c.group("auto")) and g["state"] == "online")
    pid = c.wait_running("AUTOW")["pid"]
    c.kill_daemon(signal.SIGKILL)
    c.start_daemon()
    assert c.group("auto")["state"] == "online"  # type: ignore[index]
    assert c.watch("AUTOW")["pid"] == pid  # type: ignore[index]
    assert trace.read_text() == "START\n", "the start script must not run twice in one boot"
    assert start_time(pid) is not None
