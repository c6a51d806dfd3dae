"""A real two-node Pacemaker cluster on this one machine, with a rearm group watching a small web
server (tests/cluster/nodes.py says how the nodes are built).

The group is configured by `rearm export pacemaker --format crm`, loaded with crmsh into the live
cluster. Then:

1. the server killed within /R is restarted by rearm in place: Pacemaker sees no failure
   (fail-count 0 after several monitors) and the group stays where it is;
2. the node running the group dies (its namespaces are killed): the group and its address move
   to the other node, where the client gets its answer again;
3. the dead node is booted again and rejoins; the group stays (stickiness);
4. the server killed beyond /R: rearm reports the group failed, Pacemaker moves it back, with
   fail-count 1 on the node it left and rearm's reason in the failed action.

Each failover is timed from the kill to the first answer the client gets from the other node.
Fencing is disabled (stonith-enabled=false): a fencing device would have to power off a
"machine" that is a set of namespaces; docs/pacemaker.md says why production needs it and how.
The host is checked before and after: no corosync, pacemaker or rearm process of the test left,
the host's interfaces, addresses and routes unchanged, nothing under /etc or /var/lib changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..integration.harness import BIN, wait_for
from ..services.systemd_sandbox import require_sandbox
from .conftest import record_failover, tool
from .nodes import HOME_INSIDE, NET, Node, TwoNodes, two_nodes

GROUP = "web"
RESOURCE = f"rearm-{GROUP}"
ADDRESS = f"{NET}.100"
MONITOR_INTERVAL = 2
CLUSTER_PROCESSES = re.compile(r"^(corosync|pacemakerd|pacemaker-\w+)$")


def free_port() -> int:
    # The nodes' network is private, but the rule is the same everywhere: never a fixed port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_group(port: int, manager_port: int) -> Any:
    def setup(node: Node) -> None:
        node.rearm("cluster", "create", "--name", "web-cl", "--ip", f"{ADDRESS}/24",
                   "--server", node.name, "--no-address-check")  # fmt: skip
        node.rearm("cluster", "set", "pacemaker=true", f"manager_port={manager_port}")
        node.run(str(BIN / "armem"), "/M", "stopgroup")
        node.rearm("group", "create", GROUP)
        folder = node.home / "etc" / "groups" / GROUP
        (folder / "start.sh").write_text(
            '#!/bin/sh\ncase "$REARM_EVENT" in\nSTART|RECOVER)\n'
            f"    armload WEB /R 1 /H 1 /INT 0 /WAIT 10 /usr/bin/python3 -m http.server {port}"
            f" --bind 0.0.0.0 --directory {HOME_INSIDE}/www\n;;\nesac\n"
        )
        (folder / "stop.sh").write_text(
            '#!/bin/sh\ncase "$REARM_EVENT" in\nSTOP)\n    armkill WEB\n;;\nesac\n'
        )
        with open(folder / "group.toml", "a") as f:
            f.write(f"[pacemaker]\nmonitor_interval = {MONITOR_INTERVAL}\n")
        (node.home / "www").mkdir()
        (node.home / "www" / "index.html").write_text(f"{node.name}\n")

    return setup


# --- the host ---------------------------------------------------------------------------------
def host_state(test_dir: Path) -> dict[str, Any]:
    def ip(*args: str) -> str:
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout

    files: dict[str, tuple[object, ...]] = {}
    for top in ("/etc", "/var/lib"):
        for root, dirs, names in os.walk(top):
            for name in dirs + names:
                path = os.path.join(root, name)
                try:
                    st = os.lstat(path)
                    if top == "/etc" and stat.S_ISREG(st.st_mode):
                        # /etc by content: the users of other test runs on a shared machine
                        # come and go in /etc/passwd (the mtime changes, the content returns).
                        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                        files[path] = (st.st_mode, st.st_uid, st.st_gid, digest)
                    else:
                        files[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                       st.st_mtime_ns)  # fmt: skip
                except (FileNotFoundError, PermissionError):
                    continue
    processes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        ours = f"REARM_HOME={HOME_INSIDE}".encode() in environ or str(test_dir).encode() in environ
        if CLUSTER_PROCESSES.match(comm) or ours:
            processes.append(f"{entry.name} {comm}")
    return {
        "links": ip("-o", "link"),
        "addresses": ip("-o", "addr"),
        "routes": ip("route", "show", "table", "all") + ip("-6", "route", "show", "table", "all"),
        "files": files,
        "processes": sorted(processes),
    }


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("links", "addresses", "routes"):
        if before[key] != after[key]:
            problems.append(f"host {key} changed:\n{before[key]}\n->\n{after[key]}")
    changed = sorted(
        p for p in before["files"].keys() | after["files"].keys()
        if before["files"].get(p) != after["files"].get(p)
    )  # fmt: skip
    if changed:
        problems.append(f"host files changed under /etc or /var/lib: {changed[:20]}")
    if after["processes"]:
        problems.append(f"processes left: {after['processes']}")
    return problems


@pytest.fixture
def host() -> Iterator[Path]:
    require_sandbox()
    for name in ("corosync", "pacemakerd", "crm_mon", "crm", "crm_resource", "crm_failcount"):
        tool(name)
    test_dir = Path(tempfile.mkdtemp(prefix="rearm-pcmk-"))
    before = host_state(test_dir)
    assert not before["processes"], f"the host is not clean before the test: {before['processes']}"
    yield test_dir
    after = host_state(test_dir)
    subprocess.run(["rm", "-rf", str(test_dir)], check=True)
    problems = compare(before, after)
    assert not problems, "\n".join(problems)


# --- the test ---------------------------------------------------------------------------------
def other(c: TwoNodes, name: str) -> Node:
    return next(n for n in c.nodes.values() if n.name != name)


def summary(root: ET.Element) -> dict[str, Any]:
    """Resources and constraints of a CIB (or of an export), without ids of inner elements."""
    out: dict[str, Any] = {}
    for p in root.iter("primitive"):
        out[p.get("id", "")] = (
            (p.get("class"), p.get("provider"), p.get("type")),
            {n.get("name"): n.get("value") for n in p.iterfind("instance_attributes/nvpair")},
            {n.get("name"): n.get("value") for n in p.iterfind("meta_attributes/nvpair")},
            {(o.get("name"), o.get("interval")): o.get("timeout") for o in p.iter("op")},
        )
    for tag in ("rsc_colocation", "rsc_order"):
        for e in root.iter(tag):
            out[e.get("id", "")] = dict(e.attrib)
    return out


def load_export(c: TwoNodes, on: Node) -> None:
    """The crm form, loaded with crmsh; it must give the cluster exactly the XML form."""
    crm = on.rearm("export", "pacemaker", "--format", "crm")
    (on.home / "export.crm").write_text(crm)
    on.run("crm", "configure", "load", "update", f"{HOME_INSIDE}/export.crm")
    xml = ET.fromstring(on.rearm("export", "pacemaker"))
    live = ET.fromstring(on.run("cibadmin", "--query", "--scope", "configuration"))
    assert summary(live) == summary(xml)
    # And the XML form checked by crm_verify against the live CIB.
    on.run(str(BIN / "rearm"), "export", "pacemaker", "--check")


def manager_at_address(c: TwoNodes, manager_port: int) -> str:
    """The server whose Manager answers on the management address (/metrics says)."""
    metrics = c.fetch(f"http://{ADDRESS}:{manager_port}/metrics")
    found = re.search(r'rearm_daemon_info\{[^}]*server="([^"]+)"', metrics)
    assert found is not None, metrics
    return found.group(1)


def wait_started(c: TwoNodes, on: Node, timeout: float = 60) -> str:
    def check() -> str | None:
        group, address = c.where(on, RESOURCE), c.where(on, "rearm-address")
        return group if group is not None and group == address else None

    return wait_for(f"{RESOURCE} and its address started", check, timeout, 0.2)


def restarted_in_place(node: Node) -> float:
    """Kill the web server on `node`, wait for rearm to restart it there; when it was killed."""
    old_pid, killed_at = node.kill_watch("WEB")

    def check() -> bool:
        w = node.group(GROUP)["watches"][0]
        return bool(w["state"] == "running" and w["pid"] != old_pid)

    wait_for(f"WEB restarted in place on {node.name}", check, 15, 0.1)
    return killed_at


def test_two_node_cluster(host: Path) -> None:
    port, manager_port = free_port(), free_port()
    started = time.monotonic()
    with two_nodes(host, setup_group(port, manager_port)) as c:
        node1 = c.boot(1)
        c.boot(2)
        c.wait_online(node1, ["node1", "node2"])
        load_export(c, node1)
        first = c.nodes[wait_started(c, node1)]
        second = other(c, first.name)
        assert first.group(GROUP)["state"] == "online"
        assert second.group(GROUP)["state"] == "offline"
        client = c.probe(f"http://{ADDRESS}:{port}/")
        client.first_answer(first.name, 0, 30)
        print(f"cluster up and the group answering after {time.monotonic() - started:.1f} s")

        # 1. Within /R: rearm restarts the server in place; Pacemaker sees no failure.
        seen = len(c.monitors(first, RESOURCE))
        killed_at = restarted_in_place(first)
        back = client.first_answer(first.name, killed_at, 15)
        record_failover("in place (rearm, within /R)", back - killed_at)
        # Pacemaker has run its monitor at least twice since the kill, and saw nothing wrong.
        wait_for("two monitors", lambda: len(c.monitors(first, RESOURCE)) >= seen + 2,
                 8 * MONITOR_INTERVAL, 0.2)  # fmt: skip
        assert set(c.monitors(first, RESOURCE)[seen:]) == {0}
        assert first.group(GROUP)["watches"][0]["restarts"] == 1
        assert c.failcount(first, RESOURCE, first.name) == 0
        assert c.where(first, RESOURCE) == first.name
        assert "Failed Resource Actions" not in c.crm_mon(first)

        # 2. The node dies: the group moves to the other node, address and all.
        first.sb.kill()
        killed_at = time.monotonic()
        moved = client.first_answer(second.name, killed_at, 60)
        record_failover(f"node death ({first.name} -> {second.name})", moved - killed_at)
        assert wait_started(c, second) == second.name
        assert second.group(GROUP)["state"] == "online"
        # The Manager moved with the address (its daemon listens with IP_FREEBIND).
        assert manager_at_address(c, manager_port) == second.name

        # 3. It boots again and rejoins; the group stays where it is.
        first = c.boot(first.number)
        c.wait_online(second, ["node1", "node2"])
        probes = wait_for("its probe", lambda: c.monitors(first, RESOURCE), 30, 0.2)
        assert probes[0] == 7  # OCF_NOT_RUNNING: offline after the reboot
        assert first.group(GROUP)["state"] == "offline"  # no auto_start under Pacemaker
        assert c.where(second, RESOURCE) == second.name

        # 4. Beyond /R: rearm reports the group failed; Pacemaker moves it back.
        restarted_in_place(second)
        _, killed_at = second.kill_watch("WEB")
        moved = client.first_answer(first.name, killed_at, 60)
        record_failover(f"beyond /R ({second.name} -> {first.name})", moved - killed_at)
        assert wait_started(c, first) == first.name
        assert c.failcount(first, RESOURCE, second.name) == 1
        assert c.failcount(first, RESOURCE, first.name) == 0
        mon = c.crm_mon(first)
        assert "group web failed: final action stopgroup for WEB" in mon, mon
        wait_for("the group offline on the node it left",
                 lambda: second.group(GROUP)["state"] == "offline", 30, 0.2)  # fmt: skip
        assert first.group(GROUP)["state"] == "online"
        assert manager_at_address(c, manager_port) == first.name
        print(f"whole scenario: {time.monotonic() - started:.1f} s")


def test_the_host_check_sees_changes() -> None:
    """The check above can fail: a changed file, a new interface, a process left are reported."""
    before = {
        "links": "1: lo\n",
        "addresses": "",
        "routes": "",
        "files": {"/etc/a": (1, 0, 0, 1, 1)},
        "processes": [],
    }
    assert compare(before, before) == []
    after = {
        **before,
        "links": "1: lo\n9: sw1\n",
        "files": {"/etc/a": (1, 0, 0, 2, 2), "/var/lib/pacemaker/x": (1, 0, 0, 1, 1)},
        "processes": ["4242 corosync"],
    }
    problems = "\n".join(compare(before, after))
    assert "host links changed" in problems and "sw1" in problems
    assert "/etc/a" in problems and "/var/lib/pacemaker/x" in problems
    assert "4242 corosync" in problems
