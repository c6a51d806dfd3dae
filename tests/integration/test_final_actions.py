"""Final actions in drill mode: stopgroup, none, reboot/panic recorded, the reboot-loop guard."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .harness import Cluster, alive, wait_for


def _exceed(cluster: Cluster, watch_id: str, retry: int = 1) -> None:
    """Kill the watch until it is over its threshold."""
    pid = cluster.wait_running(watch_id)["pid"]
    for _ in range(retry):
        os.kill(pid, signal.SIGKILL)
        pid = cluster.wait_running(watch_id, other_than=pid)["pid"]
    os.kill(pid, signal.SIGKILL)


def test_stopgroup_takes_the_group_offline(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "stopgroup")
    cluster.write_group(
        "sg", "armload SGA /R 1 /INT 0 /bin/sleep 1000\narmload SGB /R 1 /bin/sleep 1001"
    )
    cluster.rearm("group", "start", "sg")
    other = cluster.wait_running("SGB")["pid"]
    _exceed(cluster, "SGA")
    wait_for("the group offline", lambda: cluster.group("sg")["state"] == "offline")  # type: ignore[index]
    assert cluster.group("sg")["watches"] == []  # type: ignore[index]
    assert not alive(other)
    action = cluster.events("final_action")[-1]
    assert action["data"]["action"] == "stopgroup" and action["watch"] == "SGA"


def test_none_only_logs(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "none")
    cluster.ok("armload", "NONE", "/R", "1", "/INT", "0", "/bin/sleep", "1000")
    _exceed(cluster, "NONE")
    cluster.wait_state("NONE", "escalated")
    action = wait_for("the event", lambda: cluster.events("final_action"))[-1]
    assert action["data"]["action"] == "none"


def test_panic_and_shutdown_are_recorded_not_executed(cluster: Cluster) -> None:
    for n, mode in enumerate(("panic", "shutdown")):
        cluster.ok("armem", "/M", mode)
        watch_id = f"M{n}"
        cluster.ok("armload", watch_id, "/R", "1", "/INT", "0", "/bin/sleep", "1000")
        _exceed(cluster, watch_id)
        action = wait_for(
            f"the {mode} event",
            lambda w=watch_id: [  # type: ignore[misc]
                e for e in cluster.events("final_action") if e["watch"] == w
            ],
        )[-1]
        assert action["data"] == {
            "action": mode,
            "requested": mode,
            "drill": True,
            "guarded": False,
        }
    # We are still here: the machine was not taken down.
    assert cluster.run("rearm", "status").returncode == 0


def test_reboot_loop_guard_turns_the_fourth_reboot_into_stopgroup(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.rearm("cluster", "set", "max_reboots=3", "reboot_window=3600")
    cluster.write_group("loop", "")
    cluster.rearm("group", "start", "loop")
    for n in range(4):
        watch_id = f"L{n}"
        env_group = {"REARM_GROUP": "loop"}
        r = cluster.run(
            "armload", watch_id, "/R", "1", "/INT", "0", "/bin/sleep", "1000", env=env_group
        )
        assert r.returncode == 0, r.stderr
        _exceed(cluster, watch_id)
        wait_for(f"final action {n + 1}", lambda n=n: len(cluster.events("final_action")) == n + 1)  # type: ignore[misc]
    actions = [e["data"] for e in cluster.events("final_action")]
    assert [a["action"] for a in actions] == ["reboot", "reboot", "reboot", "stopgroup"]
    assert actions[3]["requested"] == "reboot" and actions[3]["guarded"] is True
    assert cluster.events("reboot_loop_guard")
    wait_for("the group offline", lambda: cluster.group("loop")["state"] == "offline")  # type: ignore[index]


def test_drill_reported_in_status(cluster: Cluster) -> None:
    assert cluster.status()["cluster"]["drill"] is True


def test_an_interrupted_stopgroup_is_carried_out_once_after_a_crash(cluster: Cluster) -> None:
    import sqlite3
    import time

    cluster.write_group("cut", "armload CUTW /R 1 /bin/sleep 1000")
    cluster.rearm("group", "start", "cut")
    pid = cluster.wait_running("CUTW")["pid"]
    cluster.kill_daemon(signal.SIGKILL)
    # As if the daemon died between recording the action and carrying it out.
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    with sqlite3.connect(cluster.home / "var" / "state.db") as conn:
        conn.execute(
            "INSERT INTO final_actions (ts, requested, action, watch, grp, drill, boot_id, done)"
            " VALUES (?, 'stopgroup', 'stopgroup', 'CUTW', 'cut', 1, ?, 0)",
            (time.time(), boot),
        )
    cluster.start_daemon()
    wait_for("the group offline", lambda: cluster.group("cut")["state"] == "offline")  # type: ignore[index]
    assert not alive(pid)
    assert len(cluster.events("final_action_resumed")) == 1
    with sqlite3.connect(cluster.home / "var" / "state.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM final_actions WHERE done=0").fetchone()[0] == 0
