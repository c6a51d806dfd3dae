"""Groups: scripts with the REARM_* environment, start/stop, declarative watches (SPEC §7)."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

from .harness import Cluster, alive, wait_for


def test_template_scripts_have_the_event_sections(cluster: Cluster) -> None:
    cluster.rearm("group", "create", "web")
    folder = cluster.home / "etc" / "groups" / "web"
    start = (folder / "start.sh").read_text()
    assert start.startswith("#!/bin/sh") and 'case "$REARM_EVENT" in' in start
    assert "START)" in start and "RECOVER)" in start
    assert 'case "$REARM_EVENT" in' in (folder / "stop.sh").read_text()
    assert (folder / "start.sh").stat().st_mode & stat.S_IXUSR
    r = cluster.run("rearm", "group", "create", "web")
    assert r.returncode == 1 and "already exists" in r.stderr
    # The untouched template starts and stops cleanly: an empty group goes online.
    cluster.rearm("group", "start", "web")
    assert cluster.group("web")["state"] == "online"  # type: ignore[index]
    cluster.rearm("group", "stop", "web")
    assert cluster.group("web")["state"] == "offline"  # type: ignore[index]


def test_scripts_get_the_rearm_environment(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "env"
    cluster.write_group(
        "envg",
        f'echo "$REARM_EVENT|$REARM_GROUP|$REARM_CLUSTER|$REARM_SERVER|$REARM_HOME" >> {out}\n'
        f"command -v armload >> {out}; command -v armkill >> {out}; command -v armem >> {out}",
        stop=f'echo "$REARM_EVENT|$REARM_GROUP" >> {out}',
    )
    cluster.rearm("group", "start", "envg")
    cluster.rearm("group", "stop", "envg")
    lines = out.read_text().splitlines()
    assert lines[0] == f"START|envg|testcl|test-server|{cluster.home}"
    # The daemon's own launchers (run/bin, `python -I -S`) come first on the scripts' PATH.
    launchers = cluster.home / "run" / "bin"
    assert lines[1:4] == [str(launchers / name) for name in ("armload", "armkill", "armem")]
    assert lines[4] == "STOP|envg"
    for name in ("armload", "armkill", "armem"):
        first_line = (launchers / name).read_text().splitlines()[0]
        assert first_line.startswith("#!/") and first_line.endswith(" -IS")


def test_launchers_run_the_arm_commands(cluster: Cluster) -> None:
    """run/bin/armload and armkill, run directly: start, refuse a bad line, stop."""
    launchers = cluster.home / "run" / "bin"
    load = str(launchers / "armload")
    loaded = cluster.run(load, "LAUNCHED", "/R", "2", "/bin/sleep", "4127")
    assert loaded.returncode == 0, loaded.stderr
    pid = cluster.wait_running("LAUNCHED")["pid"]
    refused = cluster.run(load, "bad-id", "/bin/true")
    assert refused.returncode == 2 and "watch ID 'bad-id'" in refused.stderr
    killed = cluster.run(str(launchers / "armkill"), "LAUNCHED")
    assert killed.returncode == 0, killed.stderr
    wait_for("the launched sleep to end", lambda: not alive(pid) or None, 10)


def test_group_start_stop_with_script_watches(cluster: Cluster) -> None:
    cluster.write_group(
        "g1",
        "armload G1A /R 2 /bin/sleep 1000\narmload G1B /R 2 /bin/sleep 1001",
        stop="armkill G1A",
    )
    cluster.rearm("group", "start", "g1")
    g = cluster.group("g1")
    assert g is not None and g["state"] == "online"
    pids = {w["id"]: w["pid"] for w in g["watches"]}
    assert set(pids) == {"G1A", "G1B"} and all(pids.values())
    r = cluster.run("rearm", "group", "start", "g1")  # as systemctl start: done, with a note
    assert r.returncode == 0 and "already online" in r.stdout
    cluster.rearm("group", "stop", "g1")
    # stop.sh ended G1A; the group stop ended G1B, which the script forgot: nothing is left.
    g = cluster.group("g1")
    assert g is not None and g["state"] == "offline" and g["watches"] == []
    assert not any(alive(p) for p in pids.values())
    assert not cluster.events("fault")
    out = cluster.rearm("group", "stop", "g1")
    assert "already offline" in out


def test_failing_start_script_sets_error(cluster: Cluster) -> None:
    cluster.write_group("bad", "armload BADW /R 1 /bin/sleep 1000\nexit 7")
    r = cluster.run("rearm", "group", "start", "bad")
    assert r.returncode == 1 and "status 7" in r.stderr
    g = cluster.group("bad")
    assert g is not None and g["state"] == "error" and "status 7" in g["detail"]
    assert cluster.events("group_error")
    r = cluster.run("rearm", "group", "start", "bad")
    assert r.returncode == 1 and "rearm group stop bad" in r.stderr
    # Stopping a group in error ends what its script had started.
    pid = cluster.watch("BADW")["pid"]  # type: ignore[index]
    cluster.rearm("group", "stop", "bad")
    assert not alive(pid) and cluster.group("bad")["state"] == "offline"  # type: ignore[index]


def test_start_script_timeout(cluster: Cluster) -> None:
    cluster.write_group("slow", "sleep 30", extra="")
    toml = cluster.home / "etc" / "groups" / "slow" / "group.toml"
    toml.write_text(toml.read_text().replace("script_timeout = 300", "script_timeout = 1"))
    began = time.monotonic()
    r = cluster.run("rearm", "group", "start", "slow")
    assert r.returncode == 1 and "timeout of 1 s" in r.stderr
    assert time.monotonic() - began < 10
    assert cluster.group("slow")["state"] == "error"  # type: ignore[index]


def test_declarative_watches(cluster: Cluster) -> None:
    cluster.write_service("sleeper", 'command = ["/bin/sleep", "1002.24"]\n')
    cluster.write_group(
        "decl",
        "",
        extra=(
            '[[watches]]\nid = "D1"\ncommand = ["/bin/sleep", "1000"]\nretry = 2\ninterval = 0\n'
            '[[watches]]\nid = "D2"\nservice = "sleeper"\nretry = 1\nhours = 1\n'
        ),
    )
    cluster.rearm("group", "start", "decl")
    ws = {w["id"]: w for w in cluster.group("decl")["watches"]}  # type: ignore[index]
    assert ws["D1"]["retry"] == 2 and ws["D2"]["kind"] == "service" and ws["D2"]["hours"] == 1
    os.kill(ws["D1"]["pid"], signal.SIGKILL)
    cluster.wait_running("D1", other_than=ws["D1"]["pid"])
    cluster.rearm("group", "stop", "decl")
    assert cluster.group("decl")["watches"] == []  # type: ignore[index]


def test_bad_declarative_watch_refused_with_file_and_rule(cluster: Cluster) -> None:
    cluster.write_group(
        "baddecl", "", extra='[[watches]]\nid = "X"\ncommand = ["/bin/true"]\nretry = 12\n'
    )
    r = cluster.run("rearm", "group", "start", "baddecl")
    assert r.returncode == 1
    assert "etc/groups/baddecl/group.toml" in r.stderr and "1 to 9" in r.stderr
    assert cluster.group("baddecl")["state"] == "offline"  # type: ignore[index]


def test_auto_start_at_daemon_start(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.write_group("on", "armload ONW /R 1 /bin/sleep 1000", auto_start=True)
    c.write_group("off", "armload OFFW /R 1 /bin/sleep 1000", auto_start=False)
    c.start_daemon()
    wait_for("the auto_start group online", lambda: c.group("on")["state"] == "online")  # type: ignore[index]
    assert c.group("off")["state"] == "offline"  # type: ignore[index]
    assert c.watch("OFFW") is None


def test_manual_return_mode_leaves_groups_offline(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.rearm("cluster", "set", "return_mode=manual")
    c.write_group("on", "armload ONW /R 1 /bin/sleep 1000", auto_start=True)
    c.start_daemon()
    wait_for("the decision to wait", lambda: c.events("group_waiting"))
    assert c.group("on")["state"] == "offline"  # type: ignore[index]
    assert not c.events("group_start")


def test_group_delete_and_edit_refused_while_online(cluster: Cluster) -> None:
    cluster.write_group("live", "")
    cluster.rearm("group", "start", "live")
    r = cluster.run("rearm", "group", "delete", "live")
    assert r.returncode == 1 and "stop it first" in r.stderr
    r = cluster.run("rearm", "group", "edit", "live", "start", env={"EDITOR": "/bin/true"})
    assert r.returncode == 1 and "stop it before editing" in r.stderr
    cluster.rearm("group", "stop", "live")
    assert (
        cluster.run(
            "rearm", "group", "edit", "live", "start", env={"EDITOR": "/bin/true"}
        ).returncode
        == 0
    )
    cluster.rearm("group", "delete", "live")
    assert not (cluster.home / "etc" / "groups" / "live").exists()


def test_group_show_lists_groups_and_watches(cluster: Cluster) -> None:
    cluster.write_group("shown", "armload SHW /R 1 /bin/sleep 1000")
    cluster.rearm("group", "start", "shown")
    out = cluster.rearm("group", "show")
    assert "shown: online" in out and "SHW" in out and "running" in out
