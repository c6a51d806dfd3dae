"""The decisions of `rearm doctor`, on plain values: no file, socket or device is touched."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from rearm.doctor import (
    Check,
    Endpoint,
    Status,
    alert_endpoint,
    check_addresses,
    check_drill,
    check_kernel,
    check_python,
    check_setpriv,
    check_watchdog,
    exit_status,
    file_problems,
    kernel_version,
    local_ip,
    render_text,
    to_json,
    udp_bound,
    writable_by,
)
from rearm.model import Cluster

# --- platform ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "version"),
    [("6.1.0-18-amd64", (6, 1)), ("5.4.0", (5, 4)), ("4.19.0-26-amd64", (4, 19)), ("x", None)],
)
def test_kernel_release_is_read(release: str, version: tuple[int, int] | None) -> None:
    assert kernel_version(release) == version


def test_kernel_needs_5_4_for_waitid_on_a_pidfd() -> None:
    assert check_kernel("6.1.0-18-amd64", None).status is Status.OK
    assert check_kernel("5.4.0-150-generic", None).status is Status.OK
    old = check_kernel("5.3.18", None)
    assert old.status is Status.FAIL and "5.4" in old.fix
    broken = check_kernel("6.1.0", "pidfd_open failed: Function not implemented")
    assert broken.status is Status.FAIL and "not implemented" in broken.detail


def test_python_version() -> None:
    assert check_python((3, 11, 2), "/usr/bin/python3").status is Status.OK
    assert check_python((3, 13, 0), "/usr/bin/python3").status is Status.OK
    old = check_python((3, 10, 12), "/usr/bin/python3")
    assert old.status is Status.FAIL and "3.10.12" in old.detail


def test_setpriv_missing_fails_only_when_a_service_needs_it() -> None:
    assert check_setpriv(True, ["redis"]).status is Status.OK
    assert check_setpriv(False, []).status is Status.WARN
    needed = check_setpriv(False, ["redis"])
    assert needed.status is Status.FAIL and "redis" in needed.detail
    assert needed.fix == "apt-get install util-linux"


# --- permissions ------------------------------------------------------------------------------

SCRIPT = "/r/etc/groups/G/start.sh"


def test_a_clean_script_has_no_problem() -> None:
    assert file_problems(SCRIPT, stat.S_IFREG | 0o755, 0, {0}, strict=True) == []
    assert file_problems(SCRIPT, stat.S_IFREG | 0o700, 1000, {0, 1000}, strict=True) == []


@pytest.mark.parametrize(
    ("mode", "fix"),
    [
        (0o757, f"chmod o-w {SCRIPT}"),
        (0o775, f"chmod g-w {SCRIPT}"),
        (0o777, f"chmod go-w {SCRIPT}"),
    ],
)
def test_writable_scripts_fail_with_the_chmod_that_fixes_them(mode: int, fix: str) -> None:
    [problem] = file_problems(SCRIPT, stat.S_IFREG | mode, 0, {0}, strict=True)
    assert problem.status is Status.FAIL
    assert problem.fix == fix
    assert f"{mode:04o}" in problem.detail


def test_a_script_owned_by_someone_else_fails() -> None:
    [problem] = file_problems(SCRIPT, stat.S_IFREG | 0o755, 1000, {0}, strict=True)
    assert problem.status is Status.FAIL and problem.fix == f"chown root {SCRIPT}"


def test_directories_only_must_not_be_writable_by_others() -> None:
    assert file_problems("/r/etc", stat.S_IFDIR | 0o775, 1000, {0}, strict=False) == []
    [problem] = file_problems("/r/etc", stat.S_IFDIR | 0o777, 0, {0}, strict=False)
    assert problem.fix == "chmod o-w /r/etc"


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "user", "groups", "expected"),
    [
        (0o755, 5, 5, 0, [0], True),  # root writes anywhere (DAC)
        (0o755, 5, 5, 5, [5], True),
        (0o555, 5, 5, 5, [5], False),
        (0o775, 0, 7, 5, [7], True),
        (0o755, 0, 7, 5, [7], False),
        (0o777, 0, 0, 5, [5], True),
        (0o770, 0, 0, 5, [5], False),
        (0o733, 0, 0, 5, [5], True),
        (0o722, 0, 0, 5, [5], False),  # write without search is no use
    ],
)
def test_writable_by(
    mode: int, uid: int, gid: int, user: int, groups: list[int], expected: bool
) -> None:
    assert writable_by(mode, uid, gid, user, groups) is expected


# --- addresses --------------------------------------------------------------------------------

CLUSTER = Cluster(name="cl", server="srv", ip="10.1.1.5/24", interconnect="10.2.2.5/24")


def test_addresses_of_this_host_are_ok() -> None:
    checks = check_addresses(CLUSTER, lambda ip: True, lambda version: False)
    assert [c.status for c in checks] == [Status.OK, Status.OK, Status.OK]
    assert checks[-1].name == "interconnect" and "network of its own" in checks[-1].detail


def test_an_address_of_another_host_fails() -> None:
    local = {"10.1.1.5"}
    checks = check_addresses(CLUSTER, lambda ip: ip in local, lambda version: False)
    bad = [c for c in checks if c.status is Status.FAIL]
    assert len(bad) == 1 and bad[0].name == "interconnect"
    assert "10.2.2.5 is not an address of this host" in bad[0].detail
    assert "interconnect=ADDR" in bad[0].fix


def test_nonlocal_bind_makes_the_answer_meaningless() -> None:
    checks = check_addresses(CLUSTER, lambda ip: True, lambda version: version == 4)
    assert checks[0].status is Status.WARN and "ip_nonlocal_bind" in checks[0].detail


# --- alert targets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alert", "endpoint"),
    [
        ({"type": "snmp", "target": "127.0.0.1:162"}, Endpoint("udp", "127.0.0.1", 162)),
        ({"type": "snmp", "target": "127.0.0.1"}, Endpoint("udp", "127.0.0.1", 162)),
        ({"type": "snmp", "target": "[::1]:1162"}, Endpoint("udp", "::1", 1162)),
        ({"type": "snmp", "target": "::1"}, Endpoint("udp", "::1", 162)),
        (
            {"type": "webhook", "url": "http://127.0.0.1:8080/hook"},
            Endpoint("tcp", "127.0.0.1", 8080),
        ),
        (
            {"type": "webhook", "url": "https://hooks.example.com/x"},
            Endpoint("tcp", "hooks.example.com", 443),
        ),
        ({"type": "webhook", "url": "http://[::1]/x"}, Endpoint("tcp", "::1", 80)),
        ({"type": "mail", "host": "127.0.0.1"}, Endpoint("tcp", "127.0.0.1", 587)),
        (
            {"type": "mail", "host": "127.0.0.1", "security": "none"},
            Endpoint("tcp", "127.0.0.1", 25),
        ),
        ({"type": "mail", "host": "::1", "security": "tls"}, Endpoint("tcp", "::1", 465)),
        ({"type": "syslog"}, Endpoint("unix", path="/dev/log")),
        ({"type": "mail", "host": "127.0.0.1", "port": 2525}, Endpoint("tcp", "127.0.0.1", 2525)),
        ({"type": "mail", "url": "smtp://mx.example.com"}, Endpoint("tcp", "mx.example.com", 25)),
        ({"type": "syslog", "target": "/dev/log"}, Endpoint("unix", path="/dev/log")),
        ({"type": "syslog", "target": "tcp://127.0.0.1:601"}, Endpoint("tcp", "127.0.0.1", 601)),
        ({"type": "syslog", "target": "10.0.0.9"}, Endpoint("udp", "10.0.0.9", 514)),
    ],
)
def test_alert_endpoints(alert: dict[str, Any], endpoint: Endpoint) -> None:
    assert alert_endpoint(alert) == endpoint


@pytest.mark.parametrize(
    "alert",
    [
        {"type": "webhook"},
        {"type": "webhook", "url": "ftp://127.0.0.1/"},
        {"type": "webhook", "url": "http://127.0.0.1:99999/"},
        {"type": "snmp", "target": "127.0.0.1:x"},
        {"type": "mail", "host": "127.0.0.1", "port": 0},
        {"type": "custom", "target": "127.0.0.1"},
    ],
)
def test_alerts_that_cannot_be_told_say_why(alert: dict[str, Any]) -> None:
    assert isinstance(alert_endpoint(alert), str)


def test_only_loopback_and_this_hosts_addresses_are_talked_to() -> None:
    mine = {"192.0.2.2"}

    def is_local(ip: str) -> bool:
        return ip in mine

    assert local_ip("127.0.0.1", is_local) == "127.0.0.1"
    assert local_ip("127.3.2.1", is_local) == "127.3.2.1"
    assert local_ip("::1", is_local) == "::1"
    assert local_ip("localhost", is_local) == "127.0.0.1"
    assert local_ip("192.0.2.2", is_local) == "192.0.2.2"
    assert local_ip("192.0.2.3", is_local) is None
    # Names are never resolved: a DNS query could leave the machine.
    assert local_ip("mail.example.com", is_local) is None


PROC_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
  120: 0100007F:00A2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2
  121: 00000000:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2
"""
PROC_UDP6 = """\
  sl  local_address                         remote_address                        st
   5: 00000000000000000000000001000000:0DEA 00000000000000000000000000000000:0000 07
   6: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 07
"""


def test_proc_net_udp_is_decoded() -> None:
    assert udp_bound(PROC_UDP.splitlines(), v6=False) == {("127.0.0.1", 162), ("0.0.0.0", 514)}
    assert udp_bound(PROC_UDP6.splitlines(), v6=True) == {("::1", 3562), ("::", 8080)}


# --- watchdog and drill -----------------------------------------------------------------------

CHAR = stat.S_IFCHR | 0o600


def test_watchdog_is_only_looked_at() -> None:
    looked: list[str] = []

    def mode_of(path: str) -> int | None:
        looked.append(path)
        return CHAR

    assert check_watchdog(None, mode_of).status is Status.OK
    assert looked == ["/dev/watchdog"]


def test_watchdog_absent_is_a_warning_unless_configured() -> None:
    absent = check_watchdog(None, lambda path: None)
    assert absent.status is Status.WARN and "softdog" in absent.fix
    configured = check_watchdog("/dev/watchdog1", lambda path: None)
    assert configured.status is Status.FAIL and "/dev/watchdog1" in configured.detail
    fifo = check_watchdog("/tmp/wd", lambda path: stat.S_IFIFO | 0o600)
    assert fifo.status is Status.FAIL and "not a character device" in fifo.detail
    assert check_watchdog("/dev/watchdog1", lambda path: CHAR).status is Status.OK


def test_drill_off_is_a_warning() -> None:
    assert check_drill(True, False, "reboot").status is Status.OK
    off = check_drill(False, False, "reboot")
    assert off.status is Status.WARN and "OFF" in off.detail and "reboot" in off.detail
    assert "systemd" in check_drill(False, True, "reboot").detail


# --- output -----------------------------------------------------------------------------------

CHECKS = [
    Check(Status.OK, "python", "Python 3.11.2"),
    Check(Status.WARN, "daemon", "not running", "systemctl start rearm"),
    Check(Status.FAIL, "permissions", "start.sh is writable by others", "chmod o-w start.sh"),
]


def test_text_output_shows_status_name_detail_and_fix() -> None:
    text = render_text(CHECKS)
    lines = text.splitlines()
    assert lines[0].split() == ["ok", "python", "Python", "3.11.2"]
    assert lines[3].startswith("FAIL  permissions")
    assert lines[4].strip() == "fix: chmod o-w start.sh"
    assert "1 check(s) FAILED, 1 warning(s)" in lines[-1]


def test_json_output_and_exit_status() -> None:
    data = json.loads(json.dumps(to_json(CHECKS)))
    assert data["failures"] == 1 and data["warnings"] == 1
    assert data["checks"][2] == {
        "status": "FAIL",
        "name": "permissions",
        "detail": "start.sh is writable by others",
        "fix": "chmod o-w start.sh",
    }
    assert exit_status(CHECKS) == 1
    assert exit_status(CHECKS[:2]) == 0
    assert render_text(CHECKS[:2]).splitlines()[-1] == "no failures, 1 warning(s)"
