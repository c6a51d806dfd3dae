"""Two Pacemaker nodes on this one machine, for tests (docs/pacemaker.md, "How the tests run a
cluster").

Each node is a systemd sandbox (tests/services/systemd_sandbox.py, docs/systemd-testing.md): the
host's own systemd as PID 1 of private user, PID, mount, cgroup, network, UTS and IPC namespaces,
on an overlay of the host's root whose upper layer is a tmpfs. corosync (knet) and pacemakerd
run there from Debian's packages through their own units; what they write (/etc/corosync,
/var/lib/pacemaker, /var/log) stays in the overlay. Each node's REARM_HOME is a host scratch
folder bound at /srv/rearm inside, and its rearm daemon runs inside in drill mode, with a boot id
of its own (a node that is killed and booted again has been rebooted).

The network is the test's own: a "switch" network namespace (held by a `sleep` of the test's,
created without touching the host's namespace) with a bridge, and one veth pair per node from
the switch into the node's namespace, with private addresses in NET. The test's client probes
the groups from the switch, as their users would. Killing a node's sandbox removes its veth pair
with it; the other node's link stays up, as on a real switch.

Everything ends by SIGKILL of processes the test started (each sandbox's PID 1, the switch's
sleep); parent-death signals end them too if the test process dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rearm.pacemaker import EMPTY_CIB

from ..integration.harness import BIN, wait_for
from ..services.systemd_sandbox import SystemdSandbox, systemd_sandbox

NET = "10.213.7"
HOME_INSIDE = "/srv/rearm"
CLUSTER_NAME = "rearmpcmk"

COROSYNC_CONF = """\
# Written by tests/cluster/nodes.py: two nodes on the test's own switch.
totem {{
    version: 2
    cluster_name: {cluster}
    transport: knet
    # The switch is private to the test: no encryption needed (production: crypto_cipher
    # aes256, crypto_hash sha256 and an authkey, see docs/pacemaker.md).
    crypto_cipher: none
    crypto_hash: none
    # A node is declared lost after 1 s of silence (token) + consensus (1.2 s).
    token: 1000
}}
nodelist {{
{nodes}
}}
quorum {{
    provider: corosync_votequorum
    two_node: 1
}}
logging {{
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_syslog: no
    to_stderr: no
    timestamp: on
}}
"""

# The CIB a fresh node starts with: without it, the controller waits dc-deadtime (20 s) for
# peers before the first election. Fencing is disabled: see docs/pacemaker.md ("Fencing").
SEED_CIB = EMPTY_CIB.replace(
    '<nvpair id="cib-bootstrap-options-stonith-enabled"',
    '<nvpair id="cib-bootstrap-options-dc-deadtime" name="dc-deadtime" value="3s"/>\n'
    '        <nvpair id="cib-bootstrap-options-stonith-enabled"',
)

# Run in the switch namespace: GET the URL over and over, one line per request:
# "<sent> <answered> <body or -error>" in CLOCK_MONOTONIC seconds, which is the same clock for
# every process of the machine: the test times failovers against its own clock.
PROBE = r"""
import sys, time, urllib.request
url = sys.argv[1]
while True:
    sent = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            body = r.read().decode().strip()
    except Exception as e:
        body = "-" + type(e).__name__
        time.sleep(0.02)
    print(f"{sent:.4f} {time.monotonic():.4f} {body}", flush=True)
    time.sleep(0.01)
"""


@dataclass
class Node:
    name: str
    number: int
    home: Path  # host path; HOME_INSIDE inside
    sb: SystemdSandbox
    boot_id: str
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{NET}.{self.number}"

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        env = {"REARM_HOME": HOME_INSIDE, "REARM_DRILL": "1"}
        return self.sb.run(list(argv), check=check, timeout=timeout, env=env).stdout

    def rearm(self, *args: str) -> str:
        return self.run(str(BIN / "rearm"), *args)

    def status(self) -> dict[str, Any]:
        return json.loads(self.rearm("status", "--json"))  # type: ignore[no-any-return]

    def group(self, name: str) -> dict[str, Any]:
        return next(g for g in self.status()["groups"] if g["name"] == name)

    def kill_watch(self, watch_id: str) -> tuple[int, float]:
        """SIGKILL the watch's process; returns its pid (inside the node) and the monotonic
        time right after the kill (sent from here, by its host pid: no delay to guess)."""
        watch = next(w for g in self.status()["groups"] for w in g["watches"]
                     if w["id"] == watch_id)  # fmt: skip
        assert watch["state"] == "running" and watch["pid"], watch
        os.kill(self.sb.host_pid(watch["pid"]), signal.SIGKILL)
        return int(watch["pid"]), time.monotonic()

    def log(self, path: str) -> str:
        return self.run("cat", path, check=False)


@dataclass
class TwoNodes:
    dir: Path
    stack: contextlib.ExitStack
    switch: subprocess.Popen[bytes]
    nodes: dict[str, Node] = field(default_factory=dict)
    group_setup: Callable[[Node], None] | None = None

    # --- the network --------------------------------------------------------------------------
    def in_switch(self, *argv: str) -> str:
        r = subprocess.run(
            ["nsenter", f"--net=/proc/{self.switch.pid}/ns/net", "--", *argv],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if r.returncode != 0:
            raise AssertionError(f"in the switch: {argv}: {r.stderr}")
        return r.stdout

    def cable(self, node: Node) -> None:
        """A veth pair from the switch's bridge into the node (created inside the switch's
        namespace, its far end moved straight into the node's)."""
        port = f"sw{node.number}"
        self.in_switch("ip", "link", "add", port, "type", "veth",
                       "peer", "name", "eth0", "netns", str(node.sb.pid))  # fmt: skip
        self.in_switch("ip", "link", "set", port, "master", "br0", "up")
        node.run("ip", "link", "set", "lo", "up")
        node.run("ip", "addr", "add", f"{node.address}/24", "dev", "eth0")
        node.run("ip", "link", "set", "eth0", "up")

    def fetch(self, url: str) -> str:
        """One GET from the switch (a client's view)."""
        code = (
            "import sys, urllib.request\n"
            "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        )
        return self.in_switch(sys.executable, "-c", code, url)

    def probe(self, url: str) -> Prober:
        proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--",
             "nsenter", f"--net=/proc/{self.switch.pid}/ns/net", "--",
             "setpriv", "--pdeathsig", "KILL", "--", sys.executable, "-c", PROBE, url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        prober = Prober(proc)
        self.stack.callback(prober.stop)
        return prober

    # --- nodes --------------------------------------------------------------------------------
    def boot(self, number: int) -> Node:
        """Boot node NUMBER (again): sandbox, cable, corosync and pacemaker configuration, the
        rearm configuration (its home survives a reboot), the rearm daemon, then the cluster
        stack (rearm.service comes before pacemaker.service, as docs/pacemaker.md says)."""
        name = f"node{number}"
        home = self.dir / name
        home.mkdir(exist_ok=True)
        sb = self.stack.enter_context(systemd_sandbox(binds=[(home, HOME_INSIDE)]))
        node = Node(name, number, home, sb, boot_id=f"{name}-{uuid.uuid4().hex[:8]}")
        self.nodes[name] = node
        node.run("hostname", name)
        self.cable(node)
        members = "\n".join(
            f"    node {{\n        name: node{n}\n        nodeid: {n}\n"
            f"        ring0_addr: {NET}.{n}\n    }}"
            for n in (1, 2)
        )
        conf = COROSYNC_CONF.format(cluster=CLUSTER_NAME, nodes=members)
        sb.run(["sh", "-c", "cat > /etc/corosync/corosync.conf"], input=conf)
        # The executor's debug log records every run of an operation and its exit status,
        # recurring monitors too: the test reads what Pacemaker saw of a group.
        sb.run(["sh", "-c", "cat > /etc/default/pacemaker"], input="PCMK_debug=pacemaker-execd\n")
        cib = "/var/lib/pacemaker/cib/cib.xml"
        sb.run(["sh", "-c", f"umask 077 && cat > {cib} && chown hacluster:haclient {cib}"],
               input=SEED_CIB)  # fmt: skip
        if not (home / "etc" / "cluster.toml").exists() and self.group_setup is not None:
            self.group_setup(node)
        node.rearm("ocf", "install")  # the real path, in this node's overlay
        node.daemon = sb.popen(
            [str(BIN / "rearm"), "daemon"],
            env={"REARM_HOME": HOME_INSIDE, "REARM_DRILL": "1", "REARM_TEST_BOOT_ID": node.boot_id},
            stdout=subprocess.DEVNULL,
            stderr=(home / "daemon.log").open("ab"),
        )

        def answers() -> bool:
            return node.run(str(BIN / "rearm"), "status", check=False) != "" or self._died(node)

        wait_for(f"the rearm daemon on {name}", answers, 30, 0.1)
        sb.systemctl("start", "--no-block", "corosync.service", "pacemaker.service")
        return node

    def _died(self, node: Node) -> bool:
        assert node.daemon is not None
        if node.daemon.poll() is not None:
            raise AssertionError(f"rearm daemon on {node.name} exited: "
                                 f"{(node.home / 'daemon.log').read_text()[-2000:]}")  # fmt: skip
        return False

    def crm_mon(self, on: Node) -> str:
        return on.run("crm_mon", "-1", "-r", "--show-detail", check=False)

    def wait_online(self, on: Node, names: list[str], timeout: float = 90) -> None:
        def check() -> bool:
            out = self.crm_mon(on)
            online = set(re.findall(r"Node (\S+) \(\d+\): online", out))
            return online == set(names) and re.search(r"Current DC: node\d", out) is not None

        wait_for(f"{names} online as seen from {on.name}", check, timeout, 0.2)

    def where(self, on: Node, resource: str) -> str | None:
        """The node a resource is started on, as Pacemaker on `on` sees it."""
        out = on.run("crm_resource", "--locate", "--resource", resource, check=False)
        m = re.search(r"is running on: (\S+)", out)
        return m.group(1) if m else None

    def monitors(self, on: Node, resource: str) -> list[int]:
        """The exit status of each monitor of `resource` that the executor of `on` has run,
        probes and recurring ones, from its debug log."""
        log = on.log("/var/log/pacemaker/pacemaker.log")
        done = rf" {re.escape(resource)} monitor \(call \d+, PID \d+\) exited with status (\d+)"
        return [int(code) for code in re.findall(done, log)]

    def failcount(self, on: Node, resource: str, node: str) -> int:
        out = on.run("crm_failcount", "--query", "--resource", resource, "--node", node)
        m = re.search(r"value=(\S+)", out)
        assert m is not None, out
        return (
            0 if m.group(1) in ("(null)", "0") else int(m.group(1).replace("INFINITY", "1000000"))
        )


class Prober:
    """The client's view: the lines of the PROBE loop, read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[tuple[float, float, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sent, answered, body = line.strip().split(" ", 2)
            with self._lock:
                self.lines.append((float(sent), float(answered), body))

    def first_answer(self, body: str, after: float, timeout: float) -> float:
        """When the answer `body` came to the first request sent after the monotonic time
        `after` that got it (a request sent before `after` does not count)."""

        def check() -> float | None:
            with self._lock:
                return next((t for s, t, b in self.lines if s > after and b == body), None)

        return wait_for(f"the answer {body!r}", check, timeout, 0.05)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@contextlib.contextmanager
def two_nodes(dir: Path, group_setup: Callable[[Node], None]) -> Iterator[TwoNodes]:
    with contextlib.ExitStack() as stack:
        switch = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--net", "--", "sleep", "infinity"],
            stdin=subprocess.DEVNULL,
        )

        def end_switch() -> None:
            switch.kill()
            switch.wait(timeout=10)

        stack.callback(end_switch)
        cluster = TwoNodes(dir, stack, switch, group_setup=group_setup)
        # unshare has made the namespace once it has become `sleep`.
        comm = Path(f"/proc/{switch.pid}/comm")
        wait_for("the switch namespace", lambda: comm.read_text().strip() == "sleep", 10)
        cluster.in_switch("ip", "link", "add", "br0", "type", "bridge")
        cluster.in_switch("ip", "link", "set", "br0", "up")
        cluster.in_switch("ip", "addr", "add", f"{NET}.254/24", "dev", "br0")
        cluster.in_switch("ip", "link", "set", "lo", "up")
        yield cluster
