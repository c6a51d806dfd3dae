"""Delivery never delays recovery: restart latency with sinks that hang or refuse stays within
the bound it has without any sink (the real daemon, drill mode, real processes).

Latency is measured by the watched program itself: each start appends its start time to a file,
so the figure is from the SIGKILL to the new process running, with no polling in between.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import time
from pathlib import Path

from tests.integration.harness import Cluster, wait_for

from .conftest import BlackHole, free_port

KILLS = 5
# Both runs must stay within this, and the black-hole run within a small margin of the other.
BOUND = 1.0
MARGIN = 0.25


def _latencies(cluster: Cluster, starts: Path) -> list[float]:
    cluster.ok(
        "armload",
        "LAT",
        "/R",
        "9",
        "/INT",
        "0",
        "/bin/sh",
        "-c",
        f'date +%s.%N >> "{starts}"; exec sleep 1000',
    )
    pid = cluster.wait_running("LAT")["pid"]
    wait_for("the first start", lambda: starts.exists() and starts.read_text().count("\n") == 1)
    out = []
    for n in range(KILLS):
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        lines = wait_for(
            f"start {n + 2}",
            lambda n=n: (t := starts.read_text().splitlines()) and len(t) == n + 2 and t,  # type: ignore[misc]
        )
        out.append(float(lines[-1]) - killed)
        pid = cluster.wait_running("LAT", other_than=pid)["pid"]
    return out


def _run(tmp_path: Path, clusters: list[Cluster], name: str, alerts: str) -> list[float]:
    c = Cluster(tmp_path / name)
    clusters.append(c)
    c.create(manager_port=str(free_port()))  # both daemons run at once: no shared port
    with open(c.home / "etc" / "cluster.toml", "a") as f:
        f.write(alerts)
    c.start_daemon()
    return _latencies(c, tmp_path / f"{name}.starts")


def test_black_hole_sinks_do_not_delay_restarts(tmp_path: Path, black_hole: BlackHole) -> None:
    clusters: list[Cluster] = []
    try:
        baseline = _run(tmp_path, clusters, "plain", "")
        hole = black_hole
        refused = free_port()
        silent_log = tmp_path / "silent.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as never_read:
            never_read.bind(str(silent_log))
            alerts = f"""
[[alerts]]
type = "webhook"
name = "hangs"
url = "http://127.0.0.1:{hole.tcp_port}/hook"
kinds = ["*"]
[[alerts]]
type = "webhook"
name = "refuses"
url = "http://127.0.0.1:{refused}/hook"
kinds = ["*"]
retries = 0
[[alerts]]
type = "mail"
host = "127.0.0.1"
port = {hole.tcp_port}
security = "none"
to = "ops@example.org"
kinds = ["*"]
[[alerts]]
type = "snmp"
target = "127.0.0.1:{hole.udp_port}"
notify = "inform"
kinds = ["*"]
[[alerts]]
type = "syslog"
target = "{silent_log}"
kinds = ["*"]
"""
            holed = _run(tmp_path, clusters, "holes", alerts)
            # The sinks were really in play: the refusing one has failed by now.
            failed = wait_for("an alert_failed event", lambda: clusters[1].events("alert_failed"))
            assert any(e["data"]["sink"] == "refuses" for e in failed)
    finally:
        for c in clusters:
            c.cleanup()
    report = (
        f"restart latency without sinks {[round(x, 3) for x in baseline]}, "
        f"with black-hole sinks {[round(x, 3) for x in holed]}"
    )
    print(report)
    assert max(baseline) < BOUND and max(holed) < BOUND, report
    assert statistics.median(holed) <= statistics.median(baseline) + MARGIN, report
