"""Habits people bring from systemd and the original product (issue 13): start and stop succeed
when already done (with a note), `rearm restart WATCHID` is not a fault, `rearm group restart`,
`rearm status WATCHID|GROUP`, and the status text laid out like the original's tree."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from .harness import Cluster, alive


def test_start_of_an_online_group_and_stop_of_an_offline_one_succeed_with_a_note(
    cluster: Cluster,
) -> None:
    cluster.write_group("G", "armload GW /R 2 /bin/sleep 1000")
    assert "is online" in cluster.rearm("group", "start", "G")
    pid = cluster.wait_running("GW")["pid"]
    again = cluster.run("rearm", "group", "start", "G")
    assert again.returncode == 0 and "already online" in again.stdout, again.stderr
    assert cluster.watch("GW")["pid"] == pid  # type: ignore[index]  # nothing was started again
    assert "is offline" in cluster.rearm("group", "stop", "G")
    again = cluster.run("rearm", "group", "stop", "G")
    assert again.returncode == 0 and "already offline" in again.stdout, again.stderr
    assert not alive(pid)


def test_restart_of_a_watch_is_not_a_fault(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.ok("armload", "RW", "/R", "1", "/INT", "0", "/bin/sleep", "1000")
    first = cluster.wait_running("RW")["pid"]
    for n in (1, 2, 3):  # more than /R 1 allows, were they faults
        out = cluster.rearm("restart", "RW")
        assert "started again" in out
        w = cluster.wait_running("RW", other_than=first)
        assert w["restarts"] == n and w["faults_in_window"] == 0
        assert not alive(first)
        first = w["pid"]
    assert not cluster.events("fault") and not cluster.events("final_action")
    assert cluster.events("operator_restart")
    assert cluster.run("rearm", "restart", "NOPE").returncode == 1


def test_restart_brings_back_a_watch_failed_by_its_configuration(
    cluster: Cluster, tmp_path: Path
) -> None:
    program = tmp_path / "app"
    shutil.copy("/bin/sleep", program)
    cluster.ok("armload", "FX", "/R", "1", "/INT", "0", str(program), "1000")
    pid = cluster.wait_running("FX")["pid"]
    program.chmod(0o644)
    os.kill(pid, signal.SIGKILL)
    cluster.wait_state("FX", "failed")
    program.chmod(0o755)  # the operator fixes it
    cluster.rearm("restart", "FX")
    w = cluster.wait_running("FX")
    assert w["faults_in_window"] == 1  # the crash before counts; the configuration did not


def test_group_restart(cluster: Cluster) -> None:
    cluster.write_group("G", "armload GW /R 2 /bin/sleep 1000")
    cluster.rearm("group", "start", "G")
    pid = cluster.wait_running("GW")["pid"]
    out = cluster.rearm("group", "restart", "G")
    assert "is offline" in out and "is online" in out
    assert cluster.wait_running("GW", other_than=pid)["restarts"] == 0
    assert not alive(pid)


def test_status_of_one_group_or_watch_and_the_tree_layout(cluster: Cluster) -> None:
    cluster.write_group("G", "armload GW /R 2 /H 1 /INT 5 /bin/sleep 1000")
    cluster.write_group("H", "exit 0")
    cluster.rearm("group", "start", "G")
    cluster.wait_running("GW")
    text = cluster.rearm("status")
    lines = text.splitlines()
    assert lines[0].startswith("Cluster  testcl") and "drill on" in lines[0]
    assert lines[1].split()[:3] == ["Server", "test-server", "Online"]
    g = next(line for line in lines if line.split()[:2] == ["Group", "G"])
    assert g.split()[2] == "Online"
    h = next(line for line in lines if line.split()[:2] == ["Group", "H"])
    assert h.split()[2] == "Offline"
    w = next(line for line in lines if line.split()[:2] == ["Watch", "GW"])
    assert w.split()[2] == "Online" and "/R 2 /H 1 /INT 5" in w
    # One group, one watch (any case), as text and JSON.
    one = cluster.rearm("status", "G")
    assert "Group    G" in one and "GW" in one and "Group    H" not in one
    assert json.loads(cluster.rearm("status", "gw", "--json"))["id"] == "GW"
    assert "(group G)" in cluster.rearm("status", "GW")
    assert json.loads(cluster.rearm("status", "H", "--json"))["state"] == "offline"
    missing = cluster.run("rearm", "status", "NOPE")
    assert missing.returncode == 1 and "no group or watch named 'NOPE'" in missing.stderr
