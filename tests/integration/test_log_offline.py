"""`rearm log` without a daemon (issue 13): it reads var/state.db read-only -- the file and
its folder are left exactly as they were -- and filters by --group, --watch, --kind, --since
and --until, with the daemon or without, like the Manager's event page."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
from pathlib import Path

from .harness import Cluster


def _events(cluster: Cluster, *args: str) -> list[dict[str, object]]:
    out = cluster.rearm("log", "--json", "-n", "1000", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _snapshot(var: Path) -> dict[str, str]:
    return {
        str(p.relative_to(var)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(var.rglob("*"))
        if p.is_file()
    }


def test_log_filters_with_and_without_a_daemon(cluster: Cluster) -> None:
    cluster.write_group("G", "armload GW /R 2 /bin/sleep 1000")
    cluster.rearm("group", "start", "G")
    cluster.ok("armload", "SOLO", "/R", "2", "/INT", "0", "/bin/sleep", "1000")
    pid = cluster.wait_running("SOLO")["pid"]
    os.kill(pid, signal.SIGKILL)
    cluster.wait_running("SOLO", other_than=pid)
    before_all = datetime.datetime.now().astimezone().isoformat()

    def check() -> None:
        faults = _events(cluster, "--watch", "solo", "--kind", "fault")
        assert len(faults) == 1 and faults[0]["watch"] == "SOLO"
        of_group = _events(cluster, "--group", "G")
        assert of_group and {e["group"] for e in of_group} == {"G"}
        assert {"group_start", "group_online"} <= {e["kind"] for e in of_group}
        assert _events(cluster, "--until", "2000-01-01T00:00:00") == []
        assert len(_events(cluster, "--since", "1h")) == len(_events(cluster))
        assert _events(cluster, "--since", "2999-01-01T00:00:00") == []
        assert len(_events(cluster, "--until", before_all)) >= 4
        text = cluster.rearm("log", "--kind", "watch_start", "--watch", "GW")
        assert text.count("watch_start") == 1 and "G/GW" in text

    check()
    cluster.stop_daemon(stop_groups=False)
    var = cluster.home / "var"
    before = _snapshot(var)
    check()  # the same answers, from the store itself
    assert any(e["kind"] == "daemon_stop" for e in _events(cluster))
    assert _snapshot(var) == before  # read-only: not a byte changed, no file added


def test_log_without_a_daemon_or_a_store_says_so(offline_cluster: Cluster) -> None:
    r = offline_cluster.run("rearm", "log")
    assert r.returncode == 1 and "no state database" in r.stderr
    assert not (offline_cluster.home / "var" / "state.db").exists()
