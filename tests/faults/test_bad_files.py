"""Bad files under a running or starting daemon: a broken configuration on reload, a corrupt or
truncated state database at start."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.harness import Cluster, alive, start_time, wait_for

from . import scenarios

BROKEN_CLUSTER_FILES: dict[str, Callable[[bytes], bytes]] = {
    "not TOML": lambda good: b"name = [unclosed\n",
    # Cut inside the first string value: an unterminated string, as a crashed editor leaves.
    "truncated": lambda good: good[: good.index(b'"') + 3],
    "name missing": lambda good: b'server = "test-server"\n',
    "unknown key": lambda good: good + b'\nno_such_property = "x"\n',
    "wrong type": lambda good: good + b'\nmax_reboots = "many"\n',
}


def _refused(cluster: Cluster, broken: bytes) -> None:
    """Write a broken cluster.toml, reload: refused, reported, the old configuration kept."""
    path = cluster.home / "etc" / "cluster.toml"
    good = path.read_bytes()
    before = cluster.status()["cluster"]
    errors = len(cluster.events("config_error"))
    path.write_bytes(broken)
    try:
        r = cluster.run("rearm", "reload")
        assert r.returncode != 0, r.stdout
        assert "configuration is kept" in r.stderr and "cluster.toml" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, "one line, no traceback"
        assert cluster.status()["cluster"] == before
        assert len(cluster.events("config_error")) == errors + 1
    finally:
        path.write_bytes(good)


def test_reload_with_a_broken_configuration_keeps_the_old_one(cluster: Cluster) -> None:
    good = (cluster.home / "etc" / "cluster.toml").read_bytes()
    for what, make in BROKEN_CLUSTER_FILES.items():
        print("broken cluster.toml:", what)
        _refused(cluster, make(good))
    # SIGHUP takes the same path: refused, reported, the daemon goes on with the old settings.
    path = cluster.home / "etc" / "cluster.toml"
    before = cluster.status()["cluster"]
    errors = len(cluster.events("config_error"))
    path.write_bytes(b"name = [unclosed\n")
    assert cluster.daemon is not None
    cluster.daemon.send_signal(signal.SIGHUP)
    wait_for("the SIGHUP reload refusal", lambda: len(cluster.events("config_error")) > errors)
    assert cluster.daemon.poll() is None
    assert cluster.status()["cluster"] == before
    path.write_bytes(good)
    assert "configuration reloaded" in cluster.rearm("reload")


def test_reload_with_a_cluster_file_that_is_not_utf8(cluster: Cluster) -> None:
    _refused(cluster, b"\xff\xfe\x00garbage")


def _corrupt(db: Path, how: str) -> None:
    data = db.read_bytes()
    if how == "garbage":
        db.write_bytes(b"this is not an SQLite database\n" * 200)
    elif how == "truncated":
        db.write_bytes(data[: len(data) // 2])
    else:  # the header survives, a page in the middle is overwritten
        middle = len(data) // 2
        db.write_bytes(data[:middle] + os.urandom(4096) + data[middle + 4096 :])


@pytest.mark.parametrize("how", ["garbage", "truncated", "torn-page"])
def test_a_corrupt_state_database_is_backed_up_and_rebuilt(
    offline_cluster: Cluster, prefix: str, how: str
) -> None:
    c = offline_cluster
    c.start_daemon()
    c.ok("armload", f"{prefix}DB", "/R", "3", "/bin/sleep", "1000")
    pid = c.wait_running(f"{prefix}DB")["pid"]
    pid_start = start_time(pid)
    c.kill_daemon(signal.SIGKILL)
    db = c.home / "var" / "state.db"
    # Everything into the main file first, so that the corruption hits the real data.
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # A copy of the good file: put back before clean-up, which finds the watch's pid in it.
    keep = c.home.parent / "state.db.good"
    shutil.copy(db, keep)
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    _corrupt(db, how)
    try:
        c.start_daemon()  # today: AssertionError "the daemon exited" with the traceback
        backups = [p for p in db.parent.iterdir() if p.name.startswith("state.db.")]
        assert backups, "the corrupt file is kept aside for a post-mortem"
        w = c.watch(f"{prefix}DB")
        assert w is not None and w["pid"] == pid, "rebuilt: the live process is watched again"
        assert c.events("state_rebuilt") or any("corrupt" in e["message"] for e in c.events()), (
            "an event (and so an alert) says what happened"
        )
        assert scenarios.target_processes(prefix) == {f"{prefix}DB": [pid]}
    finally:
        c.stop_daemon(stop_groups=False)
        shutil.copy(keep, db)
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        # The watch was started by this test: end it even if the daemon never came back.
        if alive(pid) and start_time(pid) == pid_start:
            os.killpg(pid, signal.SIGKILL)
