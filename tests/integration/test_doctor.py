"""`rearm doctor` on a temporary REARM_HOME: what it finds, the fixes it names, its exit status.

Safety: doctor only stats the watchdog device (a FIFO stands in for it here: opening one would
block, so a doctor that opened it would hang this test), and only talks to loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster


@pytest.fixture
def units(tmp_path: Path) -> Path:
    folder = tmp_path / "units"
    folder.mkdir()
    return folder


def doctor(cluster: Cluster, units: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.run(
        "rearm",
        "--home",
        str(cluster.home),
        "doctor",
        "--unit-dir",
        str(units),
        *args,
        timeout=30,
    )


def checks(cluster: Cluster, units: Path) -> tuple[int, list[dict[str, Any]]]:
    r = doctor(cluster, units, "--json")
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(r.stdout)["checks"]


def named(found: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c for c in found if c["name"] == name]


def test_a_clean_configuration_passes(offline_cluster: Cluster, units: Path) -> None:
    offline_cluster.write_group("G", "armload W /R 1 /bin/sleep 100")
    r = doctor(offline_cluster, units)
    assert r.returncode == 0, r.stdout
    assert "FAIL" not in r.stdout
    statuses = {line.split()[0] for line in r.stdout.splitlines()[:-1] if line[:1] != " "}
    assert statuses <= {"ok", "warn"}
    code, found = checks(offline_cluster, units)
    assert code == 0
    assert named(found, "kernel pidfd")[0]["status"] == "ok"
    assert named(found, "python")[0]["status"] == "ok"
    assert named(found, "management address")[0]["status"] == "ok"
    assert named(found, "drill")[0]["status"] == "ok"
    # Not running and not installed: warnings, with what to do.
    assert named(found, "daemon")[0]["status"] == "warn"
    unit = named(found, "systemd unit")[0]
    assert unit["status"] == "warn" and unit["fix"] == "rearm install"


def test_a_world_writable_start_script_fails_with_its_fix(
    offline_cluster: Cluster, units: Path
) -> None:
    folder = offline_cluster.write_group("G", "true")
    script = folder / "start.sh"
    script.chmod(0o757)
    r = doctor(offline_cluster, units)
    assert r.returncode == 1
    assert f"fix: chmod o-w {script}" in r.stdout
    code, found = checks(offline_cluster, units)
    assert code == 1
    [problem] = [c for c in found if c["status"] == "FAIL"]
    assert problem["name"] == "permissions" and str(script) in problem["detail"]
    assert problem["fix"] == f"chmod o-w {script}"
    script.chmod(0o777)
    _, found = checks(offline_cluster, units)
    assert [c["fix"] for c in found if c["status"] == "FAIL"] == [f"chmod go-w {script}"]
    script.chmod(0o755)
    assert checks(offline_cluster, units)[0] == 0


def test_a_writable_service_definition_fails(offline_cluster: Cluster, units: Path) -> None:
    offline_cluster.write_service("web", 'command = ["/bin/sleep", "100"]\n')
    path = offline_cluster.home / "etc" / "services" / "web.toml"
    path.chmod(0o664)
    code, found = checks(offline_cluster, units)
    assert code == 1
    assert [c["fix"] for c in found if c["status"] == "FAIL"] == [f"chmod g-w {path}"]


def test_an_address_of_another_host_fails(offline_cluster: Cluster, units: Path) -> None:
    path = offline_cluster.home / "etc" / "cluster.toml"
    # TEST-NET-3 (RFC 5737): documentation only, on no machine. Nothing is sent to it.
    path.write_text(path.read_text().replace('ip = "127.0.0.1"', 'ip = "203.0.113.77"'))
    r = doctor(offline_cluster, units)
    assert r.returncode == 1
    code, found = checks(offline_cluster, units)
    assert code == 1
    [address] = named(found, "management address")
    assert address["status"] == "FAIL"
    assert "203.0.113.77 is not an address of this host" in address["detail"]
    assert "ip=ADDR" in address["fix"]


def test_an_interconnect_on_this_host_in_its_own_network(
    offline_cluster: Cluster, units: Path
) -> None:
    offline_cluster.rearm("cluster", "set", "interconnect=127.0.1.1")
    code, found = checks(offline_cluster, units)
    assert code == 0
    assert [c["status"] for c in named(found, "interconnect")] == ["ok", "ok"]


def test_a_running_daemon_answers(cluster: Cluster, units: Path) -> None:
    code, found = checks(cluster, units)
    assert code == 0
    [daemon] = named(found, "daemon")
    assert daemon["status"] == "ok"
    assert daemon["detail"].startswith(
        f"running (pid {cluster.daemon.pid if cluster.daemon else 0}"
    )
    # var/ and run/ exist now and are the daemon's.
    assert [c["status"] for c in named(found, "permissions")] == ["ok"]


@pytest.fixture
def listeners() -> Iterator[dict[str, int]]:
    """A TCP listener, a bound UDP socket and a Unix socket on loopback, as alert receivers."""
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # a port where nothing listens any more
    try:
        yield {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1], "closed": closed_port}
    finally:
        tcp.close()
        udp.close()


def test_alert_targets(
    offline_cluster: Cluster, units: Path, listeners: dict[str, int], tmp_path: Path
) -> None:
    unix_path = tmp_path / "log.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(str(unix_path))
    path = offline_cluster.home / "etc" / "cluster.toml"
    with open(path, "a") as f:
        f.write(
            f"""
[[alerts]]
type = "webhook"
url = "http://127.0.0.1:{listeners["tcp"]}/hook"
[[alerts]]
type = "webhook"
url = "http://127.0.0.1:{listeners["closed"]}/hook"
[[alerts]]
type = "snmp"
target = "127.0.0.1:{listeners["udp"]}"
[[alerts]]
type = "snmp"
target = "127.0.0.1:{listeners["closed"]}"
[[alerts]]
type = "webhook"
url = "http://203.0.113.5:8080/hook"
[[alerts]]
type = "mail"
host = "mail.example.com"
[[alerts]]
type = "syslog"
target = "{unix_path}"
"""
        )
    try:
        code, found = checks(offline_cluster, units)
    finally:
        unix.close()
    assert code == 0  # an unreachable receiver loses alerts but does not stop recovery
    alerts = [c for c in found if c["name"].startswith("alert ")]
    assert [(c["name"], c["status"]) for c in alerts] == [
        ("alert 1 (webhook)", "ok"),
        ("alert 2 (webhook)", "warn"),
        ("alert 3 (snmp)", "ok"),
        ("alert 4 (snmp)", "warn"),
        ("alert 5 (webhook)", "warn"),
        ("alert 6 (mail)", "warn"),
        ("alert 7 (syslog)", "ok"),
    ]
    assert "start the receiver" in alerts[1]["fix"]
    assert "not checked (not on this host" in alerts[4]["detail"]
    assert "not checked (a host name, not resolved" in alerts[5]["detail"]


def test_the_watchdog_device_is_never_opened(
    offline_cluster: Cluster, units: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    offline_cluster.rearm("cluster", "set", f"watchdog_device={fifo}")
    code, found = checks(offline_cluster, units)  # opening the FIFO would block: timeout
    [watchdog] = named(found, "watchdog")
    assert code == 1 and watchdog["status"] == "FAIL"
    assert "not a character device" in watchdog["detail"]
    offline_cluster.rearm("cluster", "set", "watchdog_device=/dev/null")
    _, found = checks(offline_cluster, units)
    assert named(found, "watchdog")[0]["status"] == "ok"


def test_drill_off_is_a_warning(offline_cluster: Cluster, units: Path) -> None:
    offline_cluster.rearm("cluster", "set", "drill=false")
    code, found = checks(offline_cluster, units)
    [drill] = named(found, "drill")
    assert code == 0 and drill["status"] == "warn" and "OFF" in drill["detail"]


def test_the_unit_is_seen_installed_enabled_and_out_of_date(
    offline_cluster: Cluster, units: Path
) -> None:
    r = offline_cluster.run(
        "rearm",
        "--home",
        str(offline_cluster.home),
        "install",
        "--unit-dir",
        str(units),
        "--no-systemctl",
    )
    assert r.returncode == 0, r.stderr
    _, found = checks(offline_cluster, units)
    [unit] = named(found, "systemd unit")
    assert unit["status"] == "warn" and "not enabled" in unit["detail"]
    # What `systemctl enable` does in the file system.
    wants = units / "multi-user.target.wants"
    wants.mkdir()
    (wants / "rearm.service").symlink_to(units / "rearm.service")
    _, found = checks(offline_cluster, units)
    assert named(found, "systemd unit")[0]["status"] == "ok"
    offline_cluster.rearm("cluster", "set", "heartbeat_timeout=30")
    _, found = checks(offline_cluster, units)
    [unit] = named(found, "systemd unit")
    assert unit["status"] == "warn" and "+ WatchdogSec=10" in unit["detail"]
    assert unit["fix"].startswith("rearm install")


def test_no_cluster_fails_and_says_how_to_create_one(tmp_path: Path, units: Path) -> None:
    c = Cluster(tmp_path / "empty")
    code, found = checks(c, units)
    [cluster] = named(found, "cluster")
    assert code == 1 and cluster["status"] == "FAIL"
    assert cluster["fix"] == "rearm cluster create --name NAME --ip ADDR"
