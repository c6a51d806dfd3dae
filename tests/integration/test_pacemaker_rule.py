"""Under Pacemaker (`pacemaker = true`): a group's final action reports the group failed (state
error, left running for Pacemaker to stop), reboot/panic stay node-level with the loop guard,
and no group comes online by itself at boot (docs/spec-additions.md, "Final actions under
Pacemaker")."""

from __future__ import annotations

import pytest

from .harness import Cluster, alive, wait_for
from .test_final_actions import _exceed


@pytest.fixture
def pcmk(offline_cluster: Cluster) -> Cluster:
    offline_cluster.rearm("cluster", "set", "pacemaker=true")
    offline_cluster.start_daemon()
    return offline_cluster


@pytest.mark.parametrize("mode", ["stopgroup", "none"])
def test_group_final_action_reports_the_group_failed(pcmk: Cluster, mode: str) -> None:
    pcmk.ok("armem", "/M", mode)
    pcmk.write_group(
        "pg", "armload PGA /R 1 /INT 0 /bin/sleep 1000\narmload PGB /R 1 /bin/sleep 1001"
    )
    pcmk.rearm("group", "start", "pg")
    other = pcmk.wait_running("PGB")["pid"]
    _exceed(pcmk, "PGA")
    group = wait_for(
        "the group in error",
        lambda: (g := pcmk.group("pg")) and g["state"] == "error" and g,
    )
    assert f"final action {mode} for PGA" in group["detail"]
    # Left as it is: Pacemaker stops it (the agent's stop), here or by moving it.
    assert alive(other)
    assert pcmk.watch("PGA")["state"] == "escalated"  # type: ignore[index]
    action = pcmk.events("final_action")[-1]
    assert action["data"]["action"] == mode and action["data"]["pacemaker"] is True
    assert "reported failed to Pacemaker" in action["message"]
    assert [e["group"] for e in pcmk.events("group_failed")] == ["pg"]

    # Pacemaker's stop, then a start on this node later (a fail-back): both work.
    pcmk.rearm("group", "stop", "pg")
    assert pcmk.group("pg")["state"] == "offline"  # type: ignore[index]
    assert pcmk.group("pg")["watches"] == []  # type: ignore[index]
    assert not alive(other)
    pcmk.rearm("group", "start", "pg")
    assert pcmk.group("pg")["state"] == "online"  # type: ignore[index]
    assert {w["id"]: w["state"] for w in pcmk.group("pg")["watches"]} == {  # type: ignore[index]
        "PGA": "running",
        "PGB": "running",
    }


def test_reboot_stays_node_level_and_the_loop_guard_reports_the_group(pcmk: Cluster) -> None:
    pcmk.ok("armem", "/M", "reboot")
    pcmk.rearm("cluster", "set", "max_reboots=1", "reboot_window=3600")
    pcmk.rearm("reload")
    pcmk.write_group("rb", "armload RB1 /R 1 /INT 0 /bin/sleep 1000")
    pcmk.rearm("group", "start", "rb")
    _exceed(pcmk, "RB1")
    first = wait_for("the reboot", lambda: pcmk.events("final_action"))[-1]
    # Node-level: recorded as a reboot (drill), the group is not reported.
    assert first["data"] == {
        "action": "reboot",
        "requested": "reboot",
        "drill": True,
        "guarded": False,
    }
    assert pcmk.group("rb")["state"] == "online"  # type: ignore[index]

    # The second reboot within the window: the guard makes it stopgroup, which under
    # Pacemaker reports the group failed (it moves, instead of the node rebooting in a loop).
    pcmk.rearm("group", "stop", "rb")
    pcmk.rearm("group", "start", "rb")
    _exceed(pcmk, "RB1")
    wait_for("the guard", lambda: len(pcmk.events("final_action")) == 2)
    second = pcmk.events("final_action")[-1]
    assert second["data"]["action"] == "stopgroup" and second["data"]["guarded"] is True
    assert second["data"]["pacemaker"] is True
    assert pcmk.events("reboot_loop_guard")
    wait_for("the group in error", lambda: pcmk.group("rb")["state"] == "error")  # type: ignore[index]


def test_no_group_comes_online_by_itself(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.rearm("cluster", "set", "pacemaker=true")
    c.write_group("auto", "armload AU1 /bin/sleep 1000", auto_start=True)
    c.start_daemon()
    waiting = wait_for("the waiting event", lambda: c.events("group_waiting"))
    assert "waits for Pacemaker" in waiting[0]["message"]
    assert c.group("auto")["state"] == "offline"  # type: ignore[index]
    assert c.status()["cluster"]["pacemaker"] is True
