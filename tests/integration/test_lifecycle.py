"""Cluster lifecycle: reload without disturbing services, reprep after a hostname change,
addresses that must belong to this host."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .harness import BIN, Cluster, wait_for


def test_reload_applies_a_property_without_restarting_services(cluster: Cluster) -> None:
    cluster.ok("armload", "STAY", "/R", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("STAY")["pid"]
    out = cluster.rearm("cluster", "set", "final_action=stopgroup", "max_reboots=5")
    assert "applied to the running daemon" in out
    assert cluster.status()["cluster"]["final_action"] == "stopgroup"
    w = cluster.watch("STAY")
    assert w is not None and w["pid"] == pid and w["restarts"] == 0


def test_sighup_reloads(cluster: Cluster) -> None:
    path = cluster.home / "etc" / "cluster.toml"
    path.write_text(path.read_text().replace('final_action = "none"', 'final_action = "panic"'))
    assert cluster.daemon is not None
    cluster.daemon.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: cluster.status()["cluster"]["final_action"] == "panic")


def test_changes_that_need_a_restart_are_listed(cluster: Cluster) -> None:
    out = cluster.rearm("cluster", "set", "admin_group=root")
    assert "need a daemon restart" in out and "admin_group" in out


def test_addresses_must_be_on_this_host(cluster: Cluster) -> None:
    r = cluster.run("rearm", "cluster", "set", "ip=192.0.2.10")
    assert r.returncode == 1 and "not an address of this host" in r.stderr
    assert json.loads(cluster.rearm("cluster", "show", "--json"))["ip"] == "127.0.0.1"
    # Preparing a configuration for another machine is allowed when said so.
    cluster.rearm("cluster", "set", "--no-address-check", "ip=192.0.2.10")
    assert json.loads(cluster.rearm("cluster", "show", "--json"))["ip"] == "192.0.2.10"


def _in_new_uts(cluster: Cluster, hostname: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a rearm command in a private UTS namespace whose hostname is `hostname`:
    a real hostname change that this machine never sees."""
    script = 'hostname "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "--uts", "sh", "-c", script, "sh", hostname, str(BIN / "rearm"), *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


needs_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a private UTS namespace needs root and unshare (CI runs as root)",
)


@needs_unshare
def test_reprep_rebinds_to_the_new_hostname(cluster: Cluster) -> None:
    r = _in_new_uts(cluster, "renamed-host", "reprep")
    assert r.returncode == 0, r.stderr
    assert "test-server -> renamed-host" in r.stdout
    assert cluster.status()["cluster"]["server"] == "renamed-host"
    again = _in_new_uts(cluster, "renamed-host", "reprep")
    assert again.returncode == 0 and "already bound" in again.stdout


@needs_unshare
def test_reprep_refuses_when_the_cluster_name_is_now_the_hostname(cluster: Cluster) -> None:
    r = _in_new_uts(cluster, "testcl", "reprep")
    assert r.returncode == 1 and "equals the hostname" in r.stderr
    assert cluster.status()["cluster"]["server"] == "test-server"


def test_require_license_blocks_groups_until_a_valid_license(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster.home / "etc" / "cluster.toml"
    path.write_text(path.read_text() + "require_license = true\n")
    cluster.rearm("reload")
    cluster.write_group("lic", "")
    r = cluster.run("rearm", "group", "start", "lic")
    assert r.returncode == 1 and "no license registered" in r.stderr
    assert cluster.group("lic")["state"] == "offline"  # type: ignore[index]
    vendor = tmp_path / "vendor"
    cluster.rearm("license", "keygen", "--out", str(vendor))
    keys = cluster.home / "etc" / "license-keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "test-vendor.pub").write_bytes((vendor / "rearm-vendor.pub").read_bytes())
    key = cluster.rearm(
        "license",
        "issue",
        "--private-key",
        str(vendor / "rearm-vendor.key"),
        "--serial",
        "AA000001",
    ).strip()
    cluster.rearm("license", "register", "--serial", "AA000001", "--key", key)
    cluster.rearm("group", "start", "lic")
    assert cluster.group("lic")["state"] == "online"  # type: ignore[index]
