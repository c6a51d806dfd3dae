"""A full or read-only var/ (issue 8): services keep running and keep being restarted, the error
is said clearly (daemon log, critical event, `rearm status`), new armloads are refused in one
line, and once var/ takes writes again everything kept in memory is written, so a daemon killed
with SIGKILL and started again re-adopts its services with the right counters.

var/ is a filesystem of its own in a private mount namespace (privatevar.py): a 4 MiB tmpfs
filled to the last byte, or an ext4 image that the kernel turns read-only after an error, as it
does with a failing disk. Nothing of the machine's own filesystems is touched.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import wait_for

from .privatevar import PrivateVarCluster, ext4_image, require_namespaces

SLEEP = "/bin/sleep"


@pytest.fixture
def full_cluster(tmp_path: Path) -> Iterator[PrivateVarCluster]:
    require_namespaces()
    c = PrivateVarCluster(
        tmp_path / "home", "mount -t tmpfs -o size=4m,mode=0755 rearm-test-var {var}"
    )
    try:
        c.create()
        c.start_daemon()
        yield c
    finally:
        c.cleanup()


def test_disk_full_keeps_restarting_refuses_armload_and_recovers(
    full_cluster: PrivateVarCluster,
) -> None:
    c = full_cluster
    c.ok("armload", "WEB", "/R", "9", "/INT", "0", SLEEP, "1000")
    c.ok("armload", "TMP", SLEEP, "1000")
    first = c.wait_running("WEB")["pid"]
    assert c.fill() > 0

    # The service dies while the disk is full: restarted anyway, counted in memory.
    os.kill(first, signal.SIGKILL)
    second = c.wait_running("WEB", other_than=first)
    assert (second["restarts"], second["faults_in_window"]) == (1, 1)
    state = c.status()["state"]
    assert state["writable"] is False and "full" in state["error"], state
    os.kill(second["pid"], signal.SIGKILL)
    third = c.wait_running("WEB", other_than=second["pid"])
    assert (third["restarts"], third["faults_in_window"]) == (2, 2)

    # Said clearly: a critical line in the daemon's log and a line in `rearm status`.
    log = c.daemon_log.read_text()
    assert "CRITICAL state_write_failed: cannot write the state in" in log
    assert "database or disk is full" in log
    assert "STATE NOT WRITTEN" in c.rearm("status")

    # A new watch is refused, in one line; an armkill is accepted (and kept for later).
    refused = c.run("armload", "NEW", SLEEP, "1000")
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "cannot be written" in refused.stderr and "full" in refused.stderr, refused.stderr
    assert c.watch("NEW") is None
    killed = c.run("armkill", "TMP")
    assert killed.returncode == 0, killed.stderr
    assert "armkill: warning:" in killed.stderr  # the operator is told it is not on disk yet
    assert c.watch("TMP") is None

    # Space returns: the state is written again, the outage's events included.
    c.free()
    wait_for("state writes to work again", lambda: c.status()["state"]["writable"], timeout=30)
    assert c.db("SELECT restarts, pid FROM watches WHERE key='WEB'") == [(2, third["pid"])]
    assert c.db("SELECT count(*) FROM faults WHERE watch='WEB'") == [(2,)]
    assert c.db("SELECT count(*) FROM watches WHERE key='TMP'") == [(0,)]
    kinds = [e["kind"] for e in c.events()]
    assert kinds.count("state_write_failed") == 1 and kinds.count("state_write_recovered") == 1
    assert kinds.count("fault") == 2 and kinds.count("restart") == 2
    c.ok("armload", "NEW", SLEEP, "1000")  # taken again

    # A crash now loses nothing: the new daemon re-adopts WEB with its counters.
    c.kill_daemon(signal.SIGKILL)
    c.start_daemon()
    again = c.wait_running("WEB")
    assert (again["pid"], again["restarts"], again["faults_in_window"]) == (third["pid"], 2, 2)
    assert c.wait_running("NEW")


def test_escalation_while_the_disk_is_full(full_cluster: PrivateVarCluster) -> None:
    """Over /R while nothing can be written: the final action still fires (drill: recorded in
    memory, written with the rest once space returns)."""
    c = full_cluster
    c.ok("armem", "/M", "none")
    c.ok("armload", "ONE", "/R", "1", "/INT", "0", SLEEP, "1000")
    pid = c.wait_running("ONE")["pid"]
    c.fill()
    os.kill(pid, signal.SIGKILL)
    pid = c.wait_running("ONE", other_than=pid)["pid"]
    os.kill(pid, signal.SIGKILL)
    c.wait_state("ONE", "escalated")
    c.free()
    wait_for("state writes to work again", lambda: c.status()["state"]["writable"], timeout=30)
    assert c.db("SELECT watch, action, done FROM final_actions") == [("ONE", "none", 1)]
    assert c.db("SELECT state FROM watches WHERE key='ONE'") == [("escalated",)]


@pytest.fixture
def ext4_cluster(tmp_path: Path) -> Iterator[PrivateVarCluster]:
    require_namespaces()
    image = ext4_image(tmp_path / "var.ext4")
    # errors=remount-ro: on an error the kernel makes the filesystem read-only at once, open
    # files and all -- what a failing disk does to var/ (a plain `mount -o remount,ro` is
    # refused while the daemon holds its database open for writing).
    c = PrivateVarCluster(tmp_path / "home", f"mount -o loop,errors=remount-ro {image} {{var}}")
    try:
        c.create()
        c.start_daemon()
        yield c
    finally:
        c.cleanup()


def test_read_only_var_keeps_restarting(ext4_cluster: PrivateVarCluster) -> None:
    c = ext4_cluster
    c.ok("armload", "WEB", "/R", "9", "/INT", "0", SLEEP, "1000")
    first = c.wait_running("WEB")["pid"]
    source = c.in_namespace("findmnt", "-n", "-o", "SOURCE", str(c.home / "var"))
    device = os.path.basename(source.stdout.strip())
    assert device.startswith("loop"), source
    # The ext4 error switch of this loop device's filesystem (and of nothing else).
    Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("1")
    assert c.in_namespace("touch", str(c.home / "var" / "probe")).returncode != 0

    os.kill(first, signal.SIGKILL)
    second = c.wait_running("WEB", other_than=first)
    assert (second["restarts"], second["faults_in_window"]) == (1, 1)
    os.kill(second["pid"], signal.SIGKILL)
    third = c.wait_running("WEB", other_than=second["pid"])
    assert (third["restarts"], third["faults_in_window"]) == (2, 2)
    state = c.status()["state"]
    assert state["writable"] is False, state
    log = c.daemon_log.read_text()
    assert "CRITICAL state_write_failed" in log
    # Its log file in var/ cannot be opened any more: the restart used /dev/null instead.
    assert "watch_log_unwritable" in log
    refused = c.run("armload", "NEW", SLEEP, "1000")
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot be written" in refused.stderr
