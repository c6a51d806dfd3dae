"""The heartbeat: a hung daemon is noticed from outside its loop (drill mode, fake device)."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

from .harness import Cluster, wait_for


def _events(home: Path, kind: str) -> list[dict[str, Any]]:
    """Read the store directly: a stopped daemon cannot answer `rearm log`."""
    with sqlite3.connect(home / "var" / "state.db") as conn:
        rows = conn.execute("SELECT message, data FROM events WHERE kind=?", (kind,)).fetchall()
    return [{"message": m, "data": json.loads(d) if d else {}} for m, d in rows]


def test_sigstop_triggers_the_heartbeat_action_in_drill(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.rearm("cluster", "set", "heartbeat_timeout=2", "heartbeat_action=panic")
    c.start_daemon()
    c.ok("armload", "HB", "/R", "1", "/bin/sleep", "1000")
    assert c.daemon is not None
    c.daemon.send_signal(signal.SIGSTOP)
    try:
        timeout = wait_for(
            "a heartbeat_timeout event", lambda: _events(c.home, "heartbeat_timeout"), timeout=10
        )
    finally:
        c.daemon.send_signal(signal.SIGCONT)
    assert len(timeout) == 1
    assert timeout[0]["data"] == {"action": "panic", "drill": True, "timeout": 2}
    assert "drill" in timeout[0]["message"]
    wait_for("heartbeat_resumed", lambda: _events(c.home, "heartbeat_resumed"), timeout=10)
    # The daemon goes on as before: still answering, the watch still there.
    assert c.watch("HB")["state"] == "running"  # type: ignore[index]


def test_a_healthy_daemon_never_times_out(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.rearm("cluster", "set", "heartbeat_timeout=2")
    c.start_daemon()
    log = c.home / "var" / "state.db"
    # Let several timeouts' worth of time pass while the daemon runs normally.
    wait_for("three seconds of beats", lambda: _uptime(c) > 3.0, timeout=10, interval=0.2)
    assert log.exists() and not _events(c.home, "heartbeat_timeout")


def _uptime(c: Cluster) -> float:
    import time

    return time.time() - float(c.status()["daemon"]["since"])


def test_keepalives_reach_the_watchdog_device_and_a_clean_stop_disarms(
    offline_cluster: Cluster, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-watchdog"  # a plain file: never a real watchdog device in tests
    fake.write_bytes(b"")
    c = offline_cluster
    c.rearm("cluster", "set", "heartbeat_timeout=2", f"watchdog_device={fake}")
    c.start_daemon()
    wait_for("three keepalives", lambda: len(fake.read_bytes()) >= 3, timeout=10)
    assert set(fake.read_bytes()) == {0}
    c.stop_daemon(stop_groups=True)
    assert fake.read_bytes().endswith(b"V"), "the magic close disarms the watchdog"


def test_a_killed_daemon_is_not_a_hang(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.rearm("cluster", "set", "heartbeat_timeout=2")
    c.start_daemon()
    keeper = _keeper_pid(c)
    c.kill_daemon(signal.SIGKILL)
    wait_for("the keeper to leave", lambda: not Path(f"/proc/{keeper}").exists(), timeout=10)
    assert not _events(c.home, "heartbeat_timeout")


def _keeper_pid(c: Cluster) -> int:
    assert c.daemon is not None
    children = Path(f"/proc/{c.daemon.pid}/task/{c.daemon.pid}/children").read_text().split()
    for pid in children:
        if b"rearm.keeper" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(pid)
    raise AssertionError("no keeper process")
