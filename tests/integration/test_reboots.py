"""The reboot-loop counter (issue 13): `rearm reboots` shows the count, the window and each
reboot with its cause; `rearm reboots --clear` (the original's reboot-count control command)
sets it back to zero; drill reboots are counted apart from real ones; status JSON carries it,
and it is read from the store when no daemon runs."""

from __future__ import annotations

import json

from .harness import Cluster, wait_for
from .test_final_actions import _exceed


def _reboot(cluster: Cluster, n: int, group_env: dict[str, str]) -> None:
    watch_id = f"L{n}"
    r = cluster.run(
        "armload", watch_id, "/R", "1", "/INT", "0", "/bin/sleep", "1000", env=group_env
    )
    assert r.returncode == 0, r.stderr
    _exceed(cluster, watch_id)
    wait_for(f"final action {n + 1}", lambda: len(cluster.events("final_action")) == n + 1)


def test_show_and_clear_the_reboot_counter(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.rearm("cluster", "set", "max_reboots=2", "reboot_window=3600")
    cluster.write_group("loop", "")
    cluster.rearm("group", "start", "loop")
    env = {"REARM_GROUP": "loop"}
    shown = json.loads(cluster.rearm("reboots", "--json"))
    assert (shown["count"], shown["max"], shown["window"], shown["guard"]) == (0, 2, 3600, False)
    assert shown["reboots"] == [] and "no reboot or panic recorded" in cluster.rearm("reboots")
    for n in range(2):
        _reboot(cluster, n, env)
    shown = json.loads(cluster.rearm("reboots", "--json"))
    assert shown["count"] == 2 and shown["guard"] is True and shown["mode"] == "drill"
    assert shown["real"] == 0 and shown["drill_count"] == 2
    assert [r["cause"] for r in shown["reboots"]] == [
        "watch L0 of group loop",
        "watch L1 of group loop",
    ]
    assert all(r["drill"] and r["counted"] for r in shown["reboots"])
    text = cluster.rearm("reboots")
    assert "2 drill reboot(s)/panic(s) within the last 3600 s, of 2 allowed" in text
    assert "the next reboot or panic becomes stopgroup" in text and "watch L1 of group loop" in text
    status = cluster.status()["cluster"]["reboots"]
    assert status["count"] == 2 and status["guard"] is True
    assert "Reboots  2 of 2 drill within 3600 s" in cluster.rearm("status")

    assert "cleared" in cluster.rearm("reboots", "--clear")
    shown = json.loads(cluster.rearm("reboots", "--json"))
    assert shown["count"] == 0 and shown["guard"] is False and shown["cleared"]
    assert len(shown["reboots"]) == 2 and not any(r["counted"] for r in shown["reboots"])
    assert cluster.events("reboots_cleared")
    # The guard counts from zero: the third reboot is a reboot again, not stopgroup.
    _reboot(cluster, 2, env)
    actions = [e["data"]["action"] for e in cluster.events("final_action")]
    assert actions == ["reboot", "reboot", "reboot"]
    assert not cluster.events("reboot_loop_guard")

    # Without a daemon: read from the store (read-only), and cleared in it.
    cluster.stop_daemon(stop_groups=False)
    shown = json.loads(cluster.rearm("reboots", "--json"))
    assert shown["count"] == 1 and len(shown["reboots"]) == 3
    assert "cleared" in cluster.rearm("reboots", "--clear")
    assert json.loads(cluster.rearm("reboots", "--json"))["count"] == 0
