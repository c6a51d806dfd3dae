"""A crash loop must not fill the disk (issue 18, Low): events, faults and watch logs are
bounded by [retention] (rearm.retention), with defaults.

Before the fix every restart appended its run's output to the watch's log and added its events
and fault for good: the loop below left some 60 MB of log and every event behind.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .harness import Cluster, wait_for

RETENTION = """
[retention]
events_max = 300
watch_log_max_mb = 1
watch_log_keep = 2
watch_log_days = 7
"""


def _count(home: Path, table: str) -> int:
    with sqlite3.connect(f"file:{home}/var/state.db?mode=ro", uri=True) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_crash_loop_leaves_bounded_logs_events_and_faults(tmp_path: Path) -> None:
    # An /H hour of 0.1 s: the loop never reaches its threshold, and the window is short.
    c = Cluster(tmp_path / "home", extra_env={"REARM_TEST_HOUR_SECONDS": "0.1"})
    c.create()
    with open(c.home / "etc" / "cluster.toml", "a") as f:
        f.write(RETENTION)
    logs = c.home / "var" / "log" / "watches"
    logs.mkdir(parents=True)
    stale = logs / "GONE.log.1"  # a rotated log of a watch long gone
    stale.write_text("old\n")
    month_ago = time.time() - 30 * 86400
    os.utime(stale, (month_ago, month_ago))
    try:
        c.start_daemon()
        wait_for("the stale rotated log removed", lambda: not stale.exists())
        c.ok(
            "armload",
            "LOOP",
            "/R",
            "9",
            "/H",
            "1",
            "/INT",
            "0",
            "/bin/sh",
            "-c",
            # Killed by a signal: a crash, not a configuration fault (that would end the watch).
            "head -c 300000 /dev/zero; sleep 0.05; kill -KILL $$",
        )
        wait_for(
            "200 restarts",
            lambda: (w := c.watch("LOOP")) is not None and w["restarts"] >= 200,
            timeout=120,
            interval=0.5,
        )
        assert c.watch("LOOP")["state"] in ("running", "restarting", "starting")  # type: ignore[index]
        c.ok("armkill", "LOOP")
        kept = sorted(p.name for p in logs.iterdir())
        assert kept == ["LOOP.log", "LOOP.log.1", "LOOP.log.2"], kept
        used = sum(p.stat().st_size for p in logs.iterdir())
        assert used < 4 * (1 << 20) + 3 * 300_000, used  # 200 runs wrote 60 MB
        assert _count(c.home, "events") <= 300 + 100 + 20
        # Faults older than two /H windows no longer count: gone (200 were recorded).
        assert _count(c.home, "faults") <= 20
    finally:
        c.cleanup()


def test_retention_settings_are_checked(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "home")
    c.create()
    try:
        c.start_daemon()
        with open(c.home / "etc" / "cluster.toml", "a") as f:
            f.write("\n[retention]\nevents_max = 5\n")
        r = c.run("rearm", "reload")
        assert r.returncode != 0
        assert "key 'retention.events_max': must be a whole number from 100 to" in r.stderr
    finally:
        c.cleanup()
