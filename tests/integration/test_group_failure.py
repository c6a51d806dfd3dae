"""Why a group failed, where it is seen (issue 13): `rearm group start` and `rearm status` show
the last lines of the script's output, not only "exited with status 1, see the log"."""

from __future__ import annotations

import json

from .harness import Cluster

BROKEN = """echo "starting myapp"
echo "myapp: cannot read /etc/myapp.conf: No such file or directory" >&2
exit 1"""


def test_group_start_and_status_show_the_last_lines_of_the_script(cluster: Cluster) -> None:
    cluster.write_group("BROKEN", BROKEN)
    r = cluster.run("rearm", "group", "start", "BROKEN")
    assert r.returncode == 1
    assert "start.sh exited with status 1" in r.stderr
    assert "| myapp: cannot read /etc/myapp.conf: No such file or directory" in r.stderr
    assert "| starting myapp" in r.stderr
    group = cluster.group("BROKEN")
    assert group is not None and group["state"] == "error"
    assert group["output"] == [
        "starting myapp",
        "myapp: cannot read /etc/myapp.conf: No such file or directory",
    ]
    text = cluster.rearm("status")
    assert "Group    BROKEN         Error" in text
    assert "      | myapp: cannot read /etc/myapp.conf: No such file or directory" in text
    assert "cannot read /etc/myapp.conf" in cluster.rearm("status", "BROKEN")
    event = cluster.events("group_error")[-1]
    assert event["data"]["output"][-1].startswith("myapp: cannot read")
    # Only this run's output: a second failing run does not show the first one's lines twice.
    cluster.rearm("group", "stop", "BROKEN")
    cluster.run("rearm", "group", "start", "BROKEN")
    assert json.loads(cluster.rearm("status", "BROKEN", "--json"))["output"] == group["output"]
    # Taken offline, the reason goes with the error.
    cluster.rearm("group", "stop", "BROKEN")
    assert cluster.group("BROKEN")["output"] == []  # type: ignore[index]
