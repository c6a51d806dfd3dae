"""A service definition's [limits] are in force in the watched process (/proc/PID/limits)."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from .harness import Cluster, wait_for

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# /proc/PID/limits names each resource in words.
ROWS = {
    "nofile": "Max open files",
    "core": "Max core file size",
    "cpu": "Max cpu time",
    "fsize": "Max file size",
    "as": "Max address space",
    "nproc": "Max processes",
}


def limits_of(pid: int) -> dict[str, tuple[str, str]]:
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return {kind: out[row] for kind, row in ROWS.items()}


def test_a_watched_service_runs_with_its_limits(cluster: Cluster) -> None:
    cluster.write_service(
        "limited",
        'command = ["/bin/sleep", "4242.3"]\n'
        "[limits]\n"
        "nofile = { soft = 321, hard = 654 }\n"
        "core = 0\n"
        "fsize = { soft = 1048576, hard = 2097152 }\n"
        "as = 4294967296\n",
    )
    cluster.ok("armload", "LIMITED", "/S", "/R", "1", "limited")
    pid = cluster.wait_running("LIMITED")["pid"]
    found = limits_of(pid)
    assert found["nofile"] == ("321", "654")
    assert found["core"] == ("0", "0")
    assert found["fsize"] == ("1048576", "2097152")
    assert found["as"] == ("4294967296", "4294967296")
    # What is not set is inherited unchanged, and the program is the service itself (prlimit
    # and the other wrappers exec'd into it).
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"/bin/sleep\x004242.3\x00"
    # After a crash the restarted process has them again.
    os.kill(pid, 9)
    again = cluster.wait_running("LIMITED", other_than=pid)["pid"]
    assert limits_of(again)["nofile"] == ("321", "654")


def test_limits_apply_together_with_a_user_switch(cluster: Cluster) -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("this test needs root, and CI runs as root")
        pytest.skip("switching users needs root (CI runs as root)")
    cluster.write_service(
        "asnobody",
        'command = ["/bin/sleep", "4242.4"]\nuser = "nobody"\n'
        "[limits]\nnofile = { soft = 100, hard = 200 }\nnproc = 50\n",
    )
    cluster.ok("armload", "ASNOBODY", "/S", "asnobody")
    pid = cluster.wait_running("ASNOBODY")["pid"]
    assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam("nobody").pw_uid
    found = limits_of(pid)
    assert found["nofile"] == ("100", "200") and found["nproc"] == ("50", "50")


def test_a_limit_the_kernel_refuses_makes_the_start_fail_visibly(cluster: Cluster) -> None:
    """Above the system's maximum (fs.nr_open) prlimit fails: the watch does not run."""
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    cluster.write_service(
        "toomany", f'command = ["/bin/sleep", "4242.5"]\n[limits]\nnofile = {nr_open + 1}\n'
    )
    cluster.run("armload", "TOOMANY", "/S", "toomany")
    log = cluster.home / "var" / "log" / "watches"
    wait_for(
        "prlimit's complaint in the watch's log",
        lambda: any("NOFILE" in p.read_text() for p in log.glob("*")),
    )
    wait_for(
        "the watch to end",
        lambda: (w := cluster.watch("TOOMANY")) is None or w["state"] in ("stopped", "failed"),
    )
