"""ocf:rearm:group against a real rearm daemon: Debian's ocf-tester passes, and each action maps
rearm's state as docs/pacemaker.md says (online 0, offline 7, error or escalated 1 with the
reason, start failing with the script's reason)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from ..integration.harness import Cluster, wait_for
from .conftest import tool

OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_UNIMPLEMENTED = 0, 1, 3
OCF_ERR_INSTALLED, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 5, 6, 7


def run_agent(
    agent: Path, action: str, cluster: Cluster, group: str, *, interval: int = 10000
) -> subprocess.CompletedProcess[str]:
    """The agent as Pacemaker's executor runs it: a bare environment with the OCF variables."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": f"rearm-{group}",
        "OCF_RESKEY_group": group,
        "OCF_RESKEY_home": str(cluster.home),
        "OCF_RESKEY_CRM_meta_interval": str(interval),
        "OCF_RESKEY_CRM_meta_timeout": "20000",
    }
    return subprocess.run(
        [str(agent), action], env=env, capture_output=True, text=True, timeout=120
    )


def reason(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ocf-exit-reason:")]
    return lines[-1].removeprefix("ocf-exit-reason:") if lines else ""


def test_ocf_tester_passes(agent: Path, pcmk_cluster: Cluster) -> None:
    pcmk_cluster.write_group("ocfg", "armload OT1 /R 2 /INT 0 /bin/sleep 1000", "armkill OT1")
    r = subprocess.run(
        [tool("ocf-tester"), "-v", "-n", "rearm-ocfg", "-o", "group=ocfg",
         "-o", f"home={pcmk_cluster.home}", str(agent)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{agent} passed all tests" in r.stdout
    # It really drove the group: started twice, stopped twice, as the daemon's log says.
    kinds = [e["kind"] for e in pcmk_cluster.events() if e.get("group") == "ocfg"]
    assert kinds.count("group_online") == 2 and kinds.count("group_offline") == 2, kinds
    assert pcmk_cluster.group("ocfg")["state"] == "offline"  # type: ignore[index]


def test_monitor_maps_rearm_states(agent: Path, pcmk_cluster: Cluster) -> None:
    c = pcmk_cluster
    c.write_group("mg", "armload MG1 /R 1 /INT 0 /bin/sleep 1000")
    assert run_agent(agent, "monitor", c, "mg").returncode == OCF_NOT_RUNNING
    assert run_agent(agent, "start", c, "mg").returncode == OCF_SUCCESS
    assert c.group("mg")["state"] == "online"  # type: ignore[index]
    assert run_agent(agent, "monitor", c, "mg").returncode == OCF_SUCCESS

    # Within /R: rearm restarts the watch in place, the monitor stays 0.
    pid = c.wait_running("MG1")["pid"]
    os.kill(pid, signal.SIGKILL)
    pid = c.wait_running("MG1", other_than=pid)["pid"]
    assert run_agent(agent, "monitor", c, "mg").returncode == OCF_SUCCESS

    # Beyond /R: the group is reported failed; the monitor says so, with the reason.
    os.kill(pid, signal.SIGKILL)
    wait_for("the group in error", lambda: c.group("mg")["state"] == "error")  # type: ignore[index]
    r = run_agent(agent, "monitor", c, "mg")
    assert r.returncode == OCF_ERR_GENERIC
    assert reason(r) == "group mg failed: final action stopgroup for MG1"

    # Pacemaker's recovery here: stop (0, offline), then a start works again.
    assert run_agent(agent, "stop", c, "mg").returncode == OCF_SUCCESS
    assert run_agent(agent, "monitor", c, "mg").returncode == OCF_NOT_RUNNING
    assert run_agent(agent, "stop", c, "mg").returncode == OCF_SUCCESS
    assert run_agent(agent, "start", c, "mg").returncode == OCF_SUCCESS
    assert run_agent(agent, "monitor", c, "mg").returncode == OCF_SUCCESS


def test_an_escalated_watch_fails_the_monitor_whatever_the_final_action(
    agent: Path, pcmk_cluster: Cluster
) -> None:
    c = pcmk_cluster
    c.ok("armem", "/M", "reboot")  # node-level: the group itself is not reported (drill)
    c.write_group("eg", "armload EG1 /R 1 /INT 0 /bin/sleep 1000")
    assert run_agent(agent, "start", c, "eg").returncode == OCF_SUCCESS
    for _ in range(2):
        pid = c.wait_running("EG1")["pid"]
        os.kill(pid, signal.SIGKILL)
    c.wait_state("EG1", "escalated")
    assert c.group("eg")["state"] == "online"  # type: ignore[index]
    r = run_agent(agent, "monitor", c, "eg")
    assert r.returncode == OCF_ERR_GENERIC
    assert reason(r) == "watch EG1 exceeded its /R threshold"


def test_start_fails_with_the_scripts_reason(agent: Path, pcmk_cluster: Cluster) -> None:
    c = pcmk_cluster
    c.write_group("bad", "echo no database >&2; exit 3")
    r = run_agent(agent, "start", c, "bad")
    assert r.returncode == OCF_ERR_GENERIC
    assert "start.sh exited with status 3" in reason(r)
    assert run_agent(agent, "monitor", c, "bad").returncode == OCF_ERR_GENERIC
    assert run_agent(agent, "stop", c, "bad").returncode == OCF_SUCCESS
    assert run_agent(agent, "monitor", c, "bad").returncode == OCF_NOT_RUNNING


def test_configuration_problems(agent: Path, pcmk_cluster: Cluster, tmp_path: Path) -> None:
    c = pcmk_cluster
    assert run_agent(agent, "validate-all", c, "").returncode == OCF_ERR_CONFIGURED
    assert run_agent(agent, "validate-all", c, "no/such").returncode == OCF_ERR_CONFIGURED
    # A group this node does not have: not installed here; a probe says "not running".
    r = run_agent(agent, "validate-all", c, "absent")
    assert r.returncode == OCF_ERR_INSTALLED and "no rearm group 'absent'" in reason(r)
    assert run_agent(agent, "monitor", c, "absent", interval=0).returncode == OCF_NOT_RUNNING
    assert run_agent(agent, "stop", c, "absent").returncode == OCF_SUCCESS
    assert run_agent(agent, "promote", c, "absent").returncode == OCF_ERR_UNIMPLEMENTED
    # A node whose rearm is not set up for Pacemaker refuses to start groups for it.
    c.write_group("np", "")
    c.rearm("cluster", "set", "pacemaker=false")
    r = run_agent(agent, "start", c, "np")
    assert r.returncode == OCF_ERR_INSTALLED and "pacemaker = true" in reason(r)
    assert c.group("np")["state"] == "offline"  # type: ignore[index]


def test_daemon_not_running(agent: Path, pcmk_cluster: Cluster) -> None:
    c = pcmk_cluster
    c.write_group("dn", "")
    c.stop_daemon()
    r = run_agent(agent, "monitor", c, "dn")
    assert r.returncode == OCF_ERR_GENERIC and "daemon is not running" in reason(r)
