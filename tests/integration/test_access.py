"""The control socket checks who calls (SO_PEERCRED): other users may only read, or nothing."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rearm.api.client import ApiFailure, DaemonNotRunning, call

from .harness import Cluster
from .pid_at import process_at_pid, wait_exec
from .unix_users import Accounts, as_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root (CI is root)")


def _as_user(user: str, socket_path: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call the daemon from a child process running as `user` (credentials set before connect)."""
    entry = pwd.getpwnam(user)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop every privilege, then talk to the socket
        try:
            os.initgroups(entry.pw_name, entry.pw_gid)  # its own groups, none of root's
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            try:
                answer: dict[str, Any] = {"ok": True, "result": call(socket_path, op, args)}
            except (ApiFailure, DaemonNotRunning) as e:
                answer = {"ok": False, "error": str(e)}
            os.write(write_fd, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


@pytest.fixture
def open_home() -> Iterator[Path]:
    """A home that another user can walk into (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="rearm-access-"))
    root.chmod(0o755)
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_other_users_cannot_even_connect_by_default(open_home: Path) -> None:
    c = Cluster(open_home)
    c.create()
    c.start_daemon()
    try:
        answer = _as_user("nobody", str(open_home / "run" / "rearm.sock"), "status", {})
        assert not answer["ok"] and "permission denied" in answer["error"]
    finally:
        c.cleanup()


def test_with_read_access_everyone_others_read_but_change_nothing(open_home: Path) -> None:
    c = Cluster(open_home)
    c.create(read_access="everyone")
    c.start_daemon()
    try:
        sock = str(open_home / "run" / "rearm.sock")
        c.ok("armload", "GUARDED", "/R", "1", "/bin/sleep", "1000")
        status = _as_user("nobody", sock, "status", {})
        assert status["ok"] and status["result"]["watches"][0]["id"] == "GUARDED"
        kill = _as_user("nobody", sock, "armkill", {"watch_id": "GUARDED"})
        assert not kill["ok"] and "may only read" in kill["error"]
        load = _as_user(
            "nobody", sock, "armload", {"request": {"watch_id": "EVIL", "argv": ["/bin/sh"]}}
        )
        assert not load["ok"] and "may only read" in load["error"]
        stop = _as_user("nobody", sock, "shutdown", {})
        assert not stop["ok"]
        assert c.watch("GUARDED")["state"] == "running"  # type: ignore[index]
        assert c.watch("EVIL") is None
        assert not c.events("reboots_cleared") and not c.events("operator_restart")
    finally:
        c.cleanup()


# Every op that changes something, with arguments that would work for an admin.
MUTATING_OPS: dict[str, dict[str, Any]] = {
    "armload": {"request": {"watch_id": "EVIL", "argv": ["/bin/sleep", "1000"]}},
    "armkill": {"watch_id": "GUARDED"},
    "reload": {},
    "group_start": {"group": "off"},
    "group_stop": {"group": "on"},
    "shutdown": {"stop_groups": True},
    "restart": {"watch_id": "GUARDED"},
    "reboots_clear": {},
}


def test_the_list_of_mutating_ops_is_complete() -> None:
    """A new op on the socket must be added to MUTATING_OPS (and so tested) or be read-only."""
    from types import SimpleNamespace

    from rearm.api.access import READ_ONLY_OPS
    from rearm.daemon.control import Control

    registered: list[str] = []
    server = SimpleNamespace(
        register=lambda op, handler: registered.append(op),
        register_stream=lambda op, handler: registered.append(op),
    )
    Control(SimpleNamespace(server=server)).register()  # type: ignore[arg-type]
    assert set(registered) - READ_ONLY_OPS == set(MUTATING_OPS)


def test_every_mutating_op_is_refused_to_other_users_and_changes_nothing(
    open_home: Path,
) -> None:
    c = Cluster(open_home)
    c.create(read_access="everyone")
    marker = open_home.parent / "started"
    c.write_group("off", f"touch {marker}")
    c.write_group("on", "armload ONW /bin/sleep 1000")
    c.start_daemon()
    try:
        c.rearm("group", "start", "on")
        c.ok("armload", "GUARDED", "/R", "1", "/bin/sleep", "1000")
        guarded = c.watch("GUARDED")["pid"]  # type: ignore[index]
        # A change waiting in cluster.toml that only a reload would apply.
        cluster_toml = open_home / "etc" / "cluster.toml"
        cluster_toml.write_text(
            cluster_toml.read_text().replace('final_action = "none"', 'final_action = "reboot"')
        )
        sock = str(open_home / "run" / "rearm.sock")
        for op, args in MUTATING_OPS.items():
            answer = _as_user("nobody", sock, op, args)
            assert not answer["ok"], op
            assert "permission denied" in answer["error"] and "may only read" in answer["error"]
            assert f"'{op}' needs root" in answer["error"]
        status = c.status()  # the daemon still answers: shutdown was refused
        assert status["cluster"]["final_action"] == "none"  # reload was refused
        assert c.group("off")["state"] == "offline" and not marker.exists()  # type: ignore[index]
        assert c.group("on")["state"] == "online"  # type: ignore[index]
        assert c.watch("ONW")["state"] == "running"  # type: ignore[index]
        assert c.watch("GUARDED")["pid"] == guarded  # type: ignore[index]
        assert c.watch("EVIL") is None
        assert not c.events("reboots_cleared") and not c.events("operator_restart")
        # Reading stays allowed.
        assert _as_user("nobody", sock, "events", {"limit": 5})["ok"]
    finally:
        c.cleanup()


def test_members_of_admin_group_may_change_things(open_home: Path) -> None:
    nogroup = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    c = Cluster(open_home)
    c.create(admin_group=nogroup)
    c.start_daemon()
    try:
        sock = str(open_home / "run" / "rearm.sock")
        request = {"watch_id": "BYADMIN", "argv": ["/bin/sleep", "1000"]}
        answer = _as_user("nobody", sock, "armload", {"request": request})
        assert answer["ok"], answer
        assert c.wait_running("BYADMIN")
    finally:
        c.cleanup()


# The attacker: connects, says its pid, and ends; a child of it keeps the connection open and
# sends the request only when told to (once the pid belongs to someone else).
_HOLD_THEN_SEND = r"""
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
print(os.getpid(), flush=True)
if os.fork():
    os._exit(0)
sys.stdin.readline()
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline().strip(), flush=True)
"""


def test_groups_are_those_of_connect_time_not_of_whoever_has_the_pid_later(
    unix: Accounts, open_dir: Path
) -> None:
    """High 1: a user holds a connection until its pid belongs to a process of a member of
    admin_group. Judged by /proc/PID/status at request time (main before the fix), the request
    ran as root; judged by the credentials the kernel recorded at connect(), it is refused."""
    admins = unix.group("radm")
    admin = unix.user("radm", groups=(admins.gr_name,))
    attacker = unix.user("ratk")
    c = Cluster(open_dir / "home")
    c.create(admin_group=admins.gr_name, read_access="everyone")
    c.start_daemon()
    marker = open_dir / "ran-as-root"
    holder: subprocess.Popen[str] | None = None
    at_pid: subprocess.Popen[str] | None = None
    reused = 0
    try:
        request = {
            "op": "armload",
            "args": {
                "request": {"watch_id": "EVIL", "argv": ["/bin/sh", "-c", f"id -u > {marker}"]}
            },
        }
        holder = subprocess.Popen(
            [
                "/usr/bin/python3",
                "-c",
                _HOLD_THEN_SEND,
                c.home.joinpath("run", "rearm.sock").as_posix(),
                json.dumps(request),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            **as_user(attacker),  # type: ignore[arg-type]
        )
        assert holder.stdin is not None and holder.stdout is not None
        reused = int(holder.stdout.readline())
        holder.wait(timeout=10)  # the connecting process has ended: its pid is free
        at_pid = process_at_pid(
            reused,
            [
                "/usr/bin/setpriv",
                f"--reuid={admin.pw_name}",
                f"--regid={admin.pw_gid}",
                "--init-groups",
                "/bin/sleep",
                "300",
            ],
        )
        wait_exec(reused, "/bin/sleep")
        status = Path(f"/proc/{reused}/status").read_text()
        groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
        assert str(admins.gr_gid) in groups.split(), "the pid is not an admin's process yet"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        answer = json.loads(holder.stdout.readline())
        assert not answer["ok"], answer
        assert (
            "permission denied" in answer["error"] and f"uid {attacker.pw_uid}" in answer["error"]
        )
        assert c.watch("EVIL") is None
        assert not marker.exists()
    finally:
        if reused and at_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(reused, signal.SIGKILL)
            at_pid.wait(timeout=10)
        if holder is not None:
            holder.kill()
        c.cleanup()


def test_a_supplementary_group_of_connect_time_makes_an_admin(
    unix: Accounts, open_dir: Path
) -> None:
    """The groups the kernel recorded at connect() (SO_PEERGROUPS) count, not only the
    primary group: a member of admin_group by /etc/group may change things."""
    admins = unix.group("radm")
    admin = unix.user("radm", groups=(admins.gr_name,))
    c = Cluster(open_dir / "home")
    c.create(admin_group=admins.gr_name)
    c.start_daemon()
    try:
        sock = str(c.home / "run" / "rearm.sock")
        request = {"watch_id": "BYMEMBER", "argv": ["/bin/sleep", "1000"]}
        answer = _as_user(admin.pw_name, sock, "armload", {"request": request})
        assert answer["ok"], answer
        assert c.wait_running("BYMEMBER")
    finally:
        c.cleanup()
